"""Instability analysis: children from W_k, linear interpolation, error barriers."""

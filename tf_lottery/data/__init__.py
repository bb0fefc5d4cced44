"""Seeded TFDS input pipelines: batches are a pure function of (seeds, step)."""

"""IMP with rewinding: TFMOT wrappers holding fixed masks, masks, rewinding, levels."""

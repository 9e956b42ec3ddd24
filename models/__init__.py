"""Drape's vision models: the garment/user encoder, person analysis, garment
preprocessing and the runners that serve them (in-process or through Triton)."""

"""Drape's vision models: the garment/user encoder, person analysis, garment
preprocessing, the try-on GAN and the runners that serve them (in-process or through Triton)."""

# From a checkout the folder also sits on sys.path as a top-level name; importing it that
# way would load a second copy of every module, so only the package name works.
if __name__ != "drape.models":
    raise ImportError(f"import drape.models, not {__name__} (install Drape: pip install -e .)")

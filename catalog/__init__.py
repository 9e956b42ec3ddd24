"""The garment catalog's way in: a feed validated, its images stored content-addressed
(`images`), embedded and indexed, and the catalog published (`ingest`)."""

# From a checkout the folder also sits on sys.path as a top-level name; importing it that
# way would load a second copy of every module, so only the package name works.
if __name__ != "drape.catalog":
    raise ImportError(f"import drape.catalog, not {__name__} (install Drape: pip install -e .)")

"""Drape's six gRPC microservices and the runtime they share (`runtime/`)."""

# From a checkout the folder also sits on sys.path as a top-level name; importing it that
# way would load a second copy of every module, so only the package name works.
if __name__ != "drape.services":
    raise ImportError(f"import drape.services, not {__name__} (install Drape: pip install -e .)")

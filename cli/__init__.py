"""`drape`: the one command line. Each command is a module here that registers its own
sub-parser (see `main`)."""

# From a checkout the folder also sits on sys.path as a top-level name; importing it that
# way would load a second copy of every module, so only the package name works.
if __name__ != "drape.cli":
    raise ImportError(f"import drape.cli, not {__name__} (install Drape: pip install -e .)")

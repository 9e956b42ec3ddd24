"""The generated world that demos, tests and benchmarks run on: the vocabulary of categories,
colours and patterns, a catalog, shoppers with known tastes, and rendered product shots."""

# From a checkout the folder also sits on sys.path as a top-level name; importing it that
# way would load a second copy of every module, so only the package name works.
if __name__ != "drape.synthetic":
    raise ImportError(f"import drape.synthetic, not {__name__} (install Drape: pip install -e .)")

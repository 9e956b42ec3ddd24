"""The recommender: interactions, ALS, sequential rules, the FAISS embedding index, the hybrid
ranker, experiments and offline evaluation."""

# From a checkout the folder also sits on sys.path as a top-level name; importing it that
# way would load a second copy of every module, so only the package name works.
if __name__ != "drape.recsys":
    raise ImportError(f"import drape.recsys, not {__name__} (install Drape: pip install -e .)")

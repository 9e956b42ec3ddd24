"""Nearest-neighbour search over garment embeddings with FAISS.

FAISS: Johnson, Douze & Jégou, "Billion-scale similarity search with GPUs" (2017);
HNSW: Malkov & Yashunin (2018); IVF-PQ: Jégou, Douze & Schmid (2011).

Vectors are L2-normalised and searched by inner product (cosine), or searched
by raw inner product (``metric="ip"``: maximum inner product search, used for
ALS item factors). Three kinds
behind one interface: ``flat`` (exact; small catalogs), ``hnsw`` (default),
``ivfpq`` (compressed; large catalogs). With faiss-gpu and a GPU, flat and
IVF-PQ indexes search on the GPU; HNSW has no GPU form and stays on CPU.

Garment ids map to int64 labels that are never reused. Removal marks a label
dead (all kinds support it the same way, HNSW included); searches over-fetch
and skip dead labels, and the index rebuilds itself once a fifth is dead.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

Kind = Literal["flat", "hnsw", "ivfpq"]
# IVF-PQ candidates fetched per result, then re-ranked exactly.
REFINE_FACTOR = 8


@dataclass(frozen=True)
class IndexSpec:
    kind: Kind | Literal["auto"] = "auto"
    metric: Literal["cosine", "ip"] = "cosine"
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    # IVF lists; 0 = about 4 * sqrt(n).
    nlist: int = 0
    nprobe: int = 16
    # PQ sub-quantizers; 0 = dim / 4 (one byte each).
    pq_m: int = 0
    use_gpu: bool | None = None


def configure_for_serving() -> None:
    """One OpenMP thread for FAISS searches made by the calling thread: serving runs one
    query per request, where the thread pool's hand-off costs ~10x the search itself
    (measured: HNSW 1.05 ms -> 0.11 ms per query on 100k garments). Concurrency comes from
    the RPC workers. OpenMP keeps this setting per thread, and a new thread starts from
    the process default (one per core): every thread that searches must call this, as the
    recommend service's handler threads do when they start."""
    faiss.omp_set_num_threads(1)


def choose_kind(n: int) -> Kind:
    """Exact search is fast enough below 20k garments; IVF-PQ pays off past a few million."""
    if n <= 20_000:
        return "flat"
    return "hnsw" if n <= 5_000_000 else "ivfpq"


def normalise(vectors: np.ndarray, unit: bool = True) -> np.ndarray:
    """Checked float32 rows, scaled to unit length when ``unit``."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ValueError("vectors contain NaN or infinity")
    if not unit:
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class EmbeddingIndex:
    """Cosine nearest neighbours of garment embeddings, keyed by garment id."""

    def __init__(self, dim: int, spec: IndexSpec = IndexSpec()) -> None:
        self.dim = dim
        self.spec = spec
        self.kind: Kind = "flat" if spec.kind == "auto" else spec.kind
        self._ids = np.empty(0, dtype=object)  # label -> garment id
        self._label: dict[str, int] = {}  # live garment id -> label
        self._vectors = np.empty((0, dim), dtype=np.float32)  # by label
        self._alive = np.empty(0, dtype=bool)
        self._index: faiss.Index | None = None

    # -- building -------------------------------------------------------------------
    @classmethod
    def build(
        cls, ids: list[str] | np.ndarray, vectors: np.ndarray, spec: IndexSpec = IndexSpec()
    ) -> EmbeddingIndex:
        vectors = normalise(vectors, spec.metric == "cosine")
        index = cls(vectors.shape[1], spec)
        if spec.kind == "auto":
            index.kind = choose_kind(len(vectors))
        index.add(ids, vectors)
        return index

    def _new_faiss_index(self, train: np.ndarray) -> faiss.Index:
        d = self.dim
        if self.kind == "flat":
            base: faiss.Index = faiss.IndexFlatIP(d)
        elif self.kind == "hnsw":
            base = faiss.IndexHNSWFlat(d, self.spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = self.spec.ef_construction
            base.hnsw.efSearch = self.spec.ef_search
        else:
            n = max(len(train), 1)
            nlist = self.spec.nlist or max(1, min(int(4 * np.sqrt(n)), n // 39 or 1))
            pq_m = self.spec.pq_m or next(
                m for m in (d // 4, d // 8, d // 16, 1) if m and d % m == 0
            )
            base = faiss.IndexIVFPQ(
                faiss.IndexFlatIP(d), d, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT
            )
            base.train(train)
            base.nprobe = min(self.spec.nprobe, nlist)
        index = faiss.IndexIDMap2(base)
        return self._maybe_gpu(index)

    def _maybe_gpu(self, index: faiss.Index) -> faiss.Index:
        use_gpu = self.spec.use_gpu
        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if use_gpu is None:
            use_gpu = gpus > 0
        if use_gpu and gpus > 0 and self.kind != "hnsw":
            return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        return index

    def add(self, ids: list[str] | np.ndarray, vectors: np.ndarray) -> None:
        """Adds garments; an id already present is replaced by its new vector."""
        ids = np.asarray(list(ids), dtype=object)
        vectors = normalise(vectors, self.spec.metric == "cosine")
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, the index {self.dim}")
        if len(set(ids.tolist())) != len(ids):
            raise ValueError("duplicate ids in one add()")
        self.remove([i for i in ids if i in self._label])
        start = len(self._ids)
        labels = np.arange(start, start + len(ids), dtype=np.int64)
        self._ids = np.concatenate([self._ids, ids])
        self._vectors = np.concatenate([self._vectors, vectors])
        self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])
        self._label.update(zip(ids.tolist(), labels.tolist(), strict=True))
        if self._index is None or (self.kind == "ivfpq" and not self._index.is_trained):
            self._rebuild()
        else:
            self._index.add_with_ids(vectors, labels)

    def remove(self, ids: list[str]) -> int:
        """Removes garments (unknown ids are ignored); returns how many were removed."""
        labels = [self._label.pop(i) for i in ids if i in self._label]
        self._alive[labels] = False
        dead = len(self._alive) - int(self._alive.sum())
        if labels and dead > max(100, len(self._alive) // 5):
            self._rebuild()
        return len(labels)

    def _rebuild(self) -> None:
        """Re-indexes the live vectors (drops dead labels from the FAISS structure)."""
        live = np.flatnonzero(self._alive)
        self._index = self._new_faiss_index(self._vectors[live])
        if live.size:
            self._index.add_with_ids(self._vectors[live], live.astype(np.int64))

    # -- queries --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._label)

    def __contains__(self, garment_id: object) -> bool:
        return garment_id in self._label

    def vector(self, garment_id: str) -> np.ndarray:
        return self._vectors[self._label[garment_id]]

    def vectors(self, garment_ids: list[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, found mask) for ``garment_ids``; missing ids give zero rows."""
        labels = np.array([self._label.get(g, -1) for g in garment_ids], dtype=np.int64)
        found = labels >= 0
        out = np.zeros((len(labels), self.dim), dtype=np.float32)
        out[found] = self._vectors[labels[found]]
        return out, found

    def search(self, queries: np.ndarray, k: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Top-``k`` (garment ids, scores) for each query row, best first."""
        labels, scores = self.search_labels(queries, k)
        return [self._ids[row] for row in labels], scores

    @property
    def label_ids(self) -> np.ndarray:
        """Garment id of every label (row) the index has ever held, removed ones included."""
        return self._ids

    def search_labels(
        self, queries: np.ndarray, k: int
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """As :meth:`search`, with labels (indexes into :attr:`label_ids`) instead of ids, for
        callers that map labels to their own positions once rather than ids every time."""
        queries = normalise(np.atleast_2d(queries), self.spec.metric == "cosine")
        if self._index is None or len(self) == 0 or k <= 0:
            empty = [np.empty(0, dtype=np.int64)] * len(queries)
            return empty, [np.empty(0, dtype=np.float32)] * len(queries)
        dead = len(self._alive) - len(self)
        # PQ distances are approximate: fetch more and re-rank on the exact vectors.
        wanted = k * REFINE_FACTOR if self.kind == "ivfpq" else k
        fetch = min(wanted + dead, self._index.ntotal)
        scores, labels = self._index.search(queries, fetch)
        out_ids, out_scores = [], []
        for query, row_scores, row_labels in zip(queries, scores, labels, strict=True):
            keep = row_labels >= 0
            keep[keep] = self._alive[row_labels[keep]]
            row_labels, row_scores = row_labels[keep], row_scores[keep]
            if self.kind == "ivfpq":
                row_scores = self._vectors[row_labels] @ query
                order = np.argsort(-row_scores, kind="stable")
                row_labels, row_scores = row_labels[order], row_scores[order]
            out_ids.append(row_labels[:k].astype(np.int64))
            out_scores.append(row_scores[:k])
        return out_ids, out_scores

    def exact_search(
        self, queries: np.ndarray, k: int
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Reference brute-force search over the live vectors (for recall checks)."""
        queries = normalise(np.atleast_2d(queries), self.spec.metric == "cosine")
        live = np.flatnonzero(self._alive)
        sims = queries @ self._vectors[live].T
        k = min(k, live.size)
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return [self._ids[live[t]] for t in top], [s[t] for s, t in zip(sims, top, strict=True)]

    def recall(self, queries: np.ndarray, k: int) -> float:
        """Mean recall@k of :meth:`search` against :meth:`exact_search`."""
        approx, _ = self.search(queries, k)
        exact, _ = self.exact_search(queries, k)
        hits = [
            len(set(a.tolist()) & set(e.tolist())) / max(len(e), 1)
            for a, e in zip(approx, exact, strict=True)
        ]
        return float(np.mean(hits))

    # -- persistence ----------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        index = self._index
        if (
            index is not None
            and hasattr(faiss, "index_gpu_to_cpu")
            and "Gpu" in type(index).__name__
        ):
            index = faiss.index_gpu_to_cpu(index)
        if index is not None:
            faiss.write_index(index, str(directory / "faiss.index"))
        np.save(directory / "vectors.npy", self._vectors)
        np.save(directory / "alive.npy", self._alive)
        (directory / "ids.txt").write_text("\n".join(map(str, self._ids)))
        (directory / "index.json").write_text(
            json.dumps({"dim": self.dim, "kind": self.kind, "spec": asdict(self.spec)})
        )

    @classmethod
    def load(cls, directory: Path) -> EmbeddingIndex:
        directory = Path(directory)
        meta = json.loads((directory / "index.json").read_text())
        index = cls(meta["dim"], IndexSpec(**meta["spec"]))
        index.kind = meta["kind"]
        text = (directory / "ids.txt").read_text()
        index._ids = np.asarray(text.split("\n") if text else [], dtype=object)
        index._vectors = np.load(directory / "vectors.npy")
        index._alive = np.load(directory / "alive.npy")
        index._label = {g: i for i, g in enumerate(index._ids.tolist()) if index._alive[i]}
        if (directory / "faiss.index").exists():
            index._index = index._maybe_gpu(faiss.read_index(str(directory / "faiss.index")))
            if index.kind == "hnsw":
                faiss.downcast_index(index._index.index).hnsw.efSearch = index.spec.ef_search
        return index

"""The recommend service's model state, refreshed in the background.

Every ``refresh_s`` seconds the state reads the events stored since its last read
(popularity and every user's recent interactions move with live traffic; see
:mod:`drape.recsys.live`) and checks whether the catalog changed or `drape train recsys`
published a new version: only then is the whole log read again. Each refresh builds a
complete :class:`ModelSet` and swaps one reference, so a request always sees one consistent
set and none is dropped during a switch.
"""

from __future__ import annotations

import calendar
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from drape.recsys import artifacts as recsys_artifacts
from drape.recsys.catalog import Catalog
from drape.recsys.coded import EventCoder
from drape.recsys.hybrid import BlendWeights, HybridModel, als_item_index
from drape.recsys.index import EmbeddingIndex
from drape.recsys.live import LiveLog, LiveSnapshot
from drape.recsys.memory import release_free_memory
from drape.recsys.popularity import PopularityRanker
from drape.recsys.ranking import Ranked, RankRequest
from drape.services.events.store import EventStore, Watermark
from drape.services.recommend.shared import SharedBases
from drape.services.runtime import FailedPrecondition
from drape.services.runtime.config import RecommendConfig
from drape.services.runtime.storage import ObjectStorage

log = logging.getLogger("drape.recommend")

# Baseline strategies are the hybrid restricted to one kind of channel.
STRATEGY_WEIGHTS = {
    "als": BlendWeights.only("collaborative"),
    "embedding": replace(BlendWeights.only("visual"), photo=1.0),
}


@dataclass(frozen=True)
class ModelSet:
    catalog: Catalog
    popularity: PopularityRanker
    hybrid: HybridModel | None
    artifact_version: str | None

    def model_version(self, strategy: str) -> str:
        if strategy == "popularity" or self.hybrid is None:
            return self.popularity.version
        return f"{strategy}-{self.artifact_version}"

    def rank(self, strategy: str, request: RankRequest, photo: np.ndarray | None) -> list[Ranked]:
        if strategy == "popularity":
            return self.popularity.rank(request)
        if self.hybrid is None:
            raise FailedPrecondition(
                f"strategy {strategy!r} needs a trained recommender and none is published; "
                "run `drape train recsys`"
            )
        return self.hybrid.rank(request, photo, STRATEGY_WEIGHTS.get(strategy))

    @property
    def embedding_dim(self) -> int | None:
        if self.hybrid is None or self.hybrid.embeddings is None:
            return None
        return self.hybrid.embeddings.dim


def _created(manifest: dict[str, object]) -> float:
    """The manifest's "created" time in Unix seconds (0 when a version lacks it: stale)."""
    try:
        return calendar.timegm(time.strptime(str(manifest["created"]), "%Y-%m-%dT%H:%M:%SZ"))
    except (KeyError, ValueError):
        return 0.0


def _state_key(catalog: Catalog, trained: recsys_artifacts.ArtifactSet | None) -> str:
    """What the log's aggregates and the ALS item index are built for, as a file name: the
    catalog by content (each worker of a pod may have pulled its own copy of the file, and
    a reread of the same catalog keeps both) and the trained version."""
    return f"catalog-{catalog.fingerprint}-version-{trained.version if trained else None}"


@dataclass(frozen=True)
class _Live:
    """The log's running aggregates, what they were built for (catalog, trained version),
    where the last read of the store stopped, and which of the pod's shared bases they
    started from (0: none)."""

    key: str  # what it was built for (see _state_key)
    log: LiveLog
    mark: Watermark
    generation: int


class RecommendState:
    """Holds the current :class:`ModelSet`; rebuilds it every ``refresh_s`` seconds."""

    def __init__(
        self,
        catalog_path: Path,
        store: EventStore,
        config: RecommendConfig,
        artifacts_root: Path,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
        storage: ObjectStorage | None = None,
        shared: SharedBases | None = None,
    ) -> None:
        self.catalog_path = Path(catalog_path)
        self.artifacts_root = Path(artifacts_root)
        self.store = store
        self.config = config
        self.storage = storage  # where the catalog and trained versions are pulled from
        self._clock = clock
        self._current: ModelSet | None = None
        # The catalog file's (mtime, size) and what was read from it.
        self._catalog: tuple[tuple[int, int], Catalog] | None = None
        self._artifacts: recsys_artifacts.ArtifactSet | None = None
        # The ALS item index and the state key (see _state_key) it was built for.
        self._als_index: tuple[str, EmbeddingIndex | None] | None = None
        # The log's running aggregates, what they were built for (catalog, trained version)
        # and where the last read of the store stopped.
        self._live: _Live | None = None
        self.shared = shared  # the bases this pod's workers share (see shared.py)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""
        registry = registry or CollectorRegistry()
        self.refreshes = Counter(
            "drape_recommend_refreshes",
            "Model refreshes (catalog, event store, published version), by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("ok", "failed"):
            self.refreshes.labels(outcome)
        self.refresh_seconds = Histogram(
            "drape_recommend_refresh_seconds",
            "Time a refresh took: a full read of the event log (at start, and when the catalog "
            "or the trained version changes), the mapping of a full read another worker of the "
            "pod saved (shared), or an incremental read (the events since the last).",
            ["kind"],
            buckets=(0.01, 0.03, 0.1, 0.3, 0.5, 1, 3, 10, 30, 100),
            registry=registry,
        )
        self.events_read = Counter(
            "drape_recommend_events_read",
            "Events read from the store by refreshes, by kind of read.",
            ["kind"],
            registry=registry,
        )
        for kind in ("full", "shared", "incremental"):
            self.refresh_seconds.labels(kind)
        for kind in ("full", "incremental"):
            self.events_read.labels(kind)
        self.trained_at = Gauge(
            "drape_recommend_model_trained_timestamp_seconds",
            "When the served recommender version was trained (Unix seconds; absent before the "
            "first `drape train recsys`).",
            registry=registry,
        )

    def current(self) -> ModelSet:
        current = self._current
        if current is None:
            raise FailedPrecondition(
                f"no catalog loaded from {self.catalog_path} ({self.last_error or 'not loaded yet'}); "
                "create one with `drape ingest` or `drape demo`"
            )
        return current

    def _load_artifacts(self) -> recsys_artifacts.ArtifactSet | None:
        version = recsys_artifacts.current_version(self.artifacts_root)
        if version is None:
            return None
        if self._artifacts is None or self._artifacts.version != version:
            self._artifacts = recsys_artifacts.load(self.artifacts_root, version, id_maps=False)
            log.info("loaded recommender artifacts", extra={"version": version})
        return self._artifacts

    def _load_catalog(self) -> Catalog:
        """The catalog, re-read only when its file changed (cached indexes stay valid)."""
        if not self.catalog_path.exists():
            return Catalog.load(self.catalog_path)  # raises "no catalog at ..."
        stat = self.catalog_path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._catalog is None or self._catalog[0] != stamp:
            self._catalog = (stamp, Catalog.load(self.catalog_path))
        return self._catalog[1]

    def _full_build(
        self, catalog: Catalog, trained: recsys_artifacts.ArtifactSet | None, now_us: int
    ) -> tuple[LiveLog, Watermark]:
        # The trained rows keep their indexes; their ids are loaded for this build only.
        users, items = (
            recsys_artifacts.load_ids(self.artifacts_root, trained.version)
            if trained is not None
            else (None, None)
        )
        # The log coded a chunk at a time: never a frame of its strings (see recsys/coded.py).
        coder = EventCoder()
        mark = self.store.read_new_chunks(None, coder.add)
        events = coder.finish()
        del coder
        release_free_memory()  # the coder's id tables, before the build takes more
        live = LiveLog(
            catalog, events, self.config.weights.model_dump(), self.config.half_life_days,
            self.config.exclude_after, now_us, users, items,
        )  # fmt: skip
        del users, items
        self.events_read.labels("full").inc(len(events))
        del events  # the build's inputs and temporaries: their memory back to the system
        release_free_memory()
        return live, mark

    def _load_shared(self, path: Path, catalog: Catalog) -> LiveLog:
        return LiveLog.load(path, catalog, self.config.weights.model_dump(),
                            self.config.half_life_days, self.config.exclude_after)  # fmt: skip

    def _shared_build(
        self,
        shared: SharedBases,
        key: str,
        catalog: Catalog,
        trained: recsys_artifacts.ArtifactSet | None,
        now_us: int,
    ) -> tuple[LiveLog, Watermark, int, str]:
        """The pod's saved base for ``key`` mapped, or the log read, saved and mapped."""
        with shared.locked():
            saved = shared.latest()
            if saved is not None and saved.key == key:
                try:
                    live = self._load_shared(saved.path, catalog)
                    return live, saved.watermark, saved.generation, "shared"
                except (OSError, ValueError, KeyError, EOFError) as exc:
                    log.warning("shared base unreadable; reading the log",
                                extra={"path": str(saved.path), "error": str(exc)})  # fmt: skip
            live, mark = self._full_build(catalog, trained, now_us)
            generation = saved.generation + 1 if saved is not None else 1
            try:
                saved = shared.save(live, key, mark, generation)
            except (OSError, ValueError) as exc:  # a full disk: this worker keeps its own
                log.warning("shared base not saved", extra={"error": str(exc)})
                return live, mark, 0, "full"
            del live
            release_free_memory()
            return self._load_shared(saved.path, catalog), mark, generation, "full"

    def _share_compacted(self, shared: SharedBases, held: _Live, catalog: Catalog) -> _Live:
        """After ``held``'s added entries were merged into a new base: that base saved for the
        pod and mapped, or a newer one another worker saved mapped and read on from."""
        with shared.locked():
            saved = shared.latest()
            if saved is not None and saved.key == held.key and saved.generation > held.generation:
                live = self._load_shared(saved.path, catalog)
                events, mark = self.store.read_new(saved.watermark)
                live.add(events, held.log.read_us)
                self.events_read.labels("incremental").inc(len(events))
                return _Live(held.key, live, mark, saved.generation)
            generation = max(held.generation, saved.generation if saved else 0) + 1
            try:
                saved = shared.save(held.log, held.key, held.mark, generation)
            except (OSError, ValueError) as exc:
                log.warning("shared base not saved", extra={"error": str(exc)})
                return held
        live = self._load_shared(saved.path, catalog)
        release_free_memory()
        return _Live(held.key, live, held.mark, generation)

    def _read_log(
        self,
        key: str,
        catalog: Catalog,
        trained: recsys_artifacts.ArtifactSet | None,
        now_us: int,
    ) -> LiveSnapshot:
        """The log's aggregates at ``now_us``: the events since the last read added, or the
        whole log read when the catalog or the trained version (``key``) changed."""
        started = time.perf_counter()
        held = self._live
        self._live = None  # a read that fails half way must not be added twice
        if held is not None and held.key == key:
            kind = "incremental"
        else:
            if self.shared is None:
                live, mark = self._full_build(catalog, trained, now_us)
                generation, kind = 0, "full"
            else:
                live, mark, generation, kind = self._shared_build(
                    self.shared, key, catalog, trained, now_us
                )
            held = _Live(key, live, mark, generation)
        if kind != "full":  # the events stored since the last read, or since the saved base
            events, mark = self.store.read_new(held.mark)
            merges = held.log.compactions
            held.log.add(events, now_us)
            self.events_read.labels("incremental").inc(len(events))
            held = replace(held, mark=mark)
            if self.shared is not None and held.log.compactions != merges:
                held = self._share_compacted(self.shared, held, catalog)  # a new base
        self._live = held
        self.refresh_seconds.labels(kind).observe(time.perf_counter() - started)
        return held.log.snapshot(now_us)

    def _hybrid(
        self, key: str, catalog: Catalog, trained: recsys_artifacts.ArtifactSet, view: LiveSnapshot
    ) -> HybridModel:
        cached = self._als_index[1] if self._als_index and self._als_index[0] == key else None
        if cached is None and self.shared is not None and trained.als is not None:
            als = trained.als
            cached = self.shared.als_index(
                key,
                lambda: als_item_index(catalog.positions(view.interactions.items.ids), als),
            )
        model = HybridModel(
            catalog, view.interactions, trained.als, trained.embeddings, view.excluded,
            trained.params, trained.version, als_index=cached, sequential=trained.sequential,
            repurchase=view.repurchase, now_us=view.now_us,
        )  # fmt: skip
        self._als_index = (key, model.als_index)
        return model

    def refresh(self) -> bool:
        """Brings the models up to date with the catalog, the event store and the artifacts."""
        try:
            if self.storage is not None:
                self.storage.pull_catalog()
                self.storage.pull_current()
            catalog = self._load_catalog()
            trained = self._load_artifacts()
            now_us = int(self._clock() * 1_000_000)
            key = _state_key(catalog, trained)
            view = self._read_log(key, catalog, trained, now_us)
            popularity = PopularityRanker(
                catalog, view.popularity, view.excluded,
                version=f"pop-{view.events}ev-{now_us // 1_000_000}",
            )  # fmt: skip
            hybrid = self._hybrid(key, catalog, trained, view) if trained is not None else None
        except Exception as exc:
            self.last_error = str(exc)
            self.refreshes.labels("failed").inc()
            log.warning("refresh failed", extra={"error": str(exc)})
            return False
        self._current = ModelSet(catalog, popularity, hybrid, hybrid.version if hybrid else None)
        self.refreshes.labels("ok").inc()
        if self._artifacts is not None and hybrid is not None:
            self.trained_at.set(_created(self._artifacts.manifest))
        self.last_error = ""
        log.info(
            "models refreshed",
            extra={
                "garments": len(catalog),
                "events": view.events,
                "artifacts": self._current.artifact_version,
            },
        )
        return True

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="recommend-refresh", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.config.refresh_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.refresh()

    def request_reload(self) -> None:
        """Refresh now (SIGHUP): a just-published version is served without waiting for the
        next ``refresh_s`` tick."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)

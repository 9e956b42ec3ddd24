"""The recommend service's model state: catalog + rankers, refreshed in the background.

Readers take the current :class:`RankerSet` reference; a refresh builds a new one
and swaps the reference, so requests never see a half-built state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recsys.catalog import Catalog
from recsys.popularity import PopularityRanker
from recsys.ranking import Ranker
from services.events.store import EventStore
from services.runtime import FailedPrecondition
from services.runtime.config import RecommendConfig

log = logging.getLogger("drape.recommend")


@dataclass(frozen=True)
class RankerSet:
    catalog: Catalog
    rankers: dict[str, Ranker]
    version: str

    def ranker(self, strategy: str) -> Ranker:
        try:
            return self.rankers[strategy]
        except KeyError:
            raise FailedPrecondition(
                f"strategy {strategy!r} has no trained model; run `drape train recsys`"
            ) from None


class RecommendState:
    """Holds the current :class:`RankerSet` and rebuilds it every ``refresh_s`` seconds."""

    def __init__(
        self,
        catalog_path: Path,
        store: EventStore,
        config: RecommendConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalog_path = Path(catalog_path)
        self.store = store
        self.config = config
        self._clock = clock
        self._current: RankerSet | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""

    def current(self) -> RankerSet:
        current = self._current
        if current is None:
            raise FailedPrecondition(
                f"no catalog loaded from {self.catalog_path} ({self.last_error or 'not loaded yet'}); "
                "create one with `drape ingest` or `drape demo`"
            )
        return current

    def refresh(self) -> bool:
        """Rebuilds the rankers from the catalog and the event store; False if it could not."""
        try:
            catalog = Catalog.load(self.catalog_path)
            events = self.store.read_frame()
        except Exception as exc:
            self.last_error = str(exc)
            log.warning("refresh failed", extra={"error": str(exc)})
            return False
        now_us = int(self._clock() * 1_000_000)
        popularity = PopularityRanker.fit(
            catalog,
            events,
            self.config.weights.model_dump(),
            self.config.half_life_days,
            now_us,
            version=f"pop-{len(events)}ev-{now_us // 1_000_000}",
        )
        self._current = RankerSet(catalog, {"popularity": popularity}, popularity.version)
        self.last_error = ""
        log.info("rankers refreshed", extra={"garments": len(catalog), "events": len(events)})
        return True

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="recommend-refresh", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.config.refresh_s):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

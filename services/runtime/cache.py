"""A bounded, expiring, single-flight cache for request-derived data (person analyses of a
shopper's photo, try-on previews, photo embeddings).

Bounded by entry count and by bytes (least recently used go first); every entry expires
``ttl_s`` after it was made, whether or not it is read again, and a sweeper thread drops
expired entries even when no request comes, so shoppers' photos and what was derived from
them never outlive the TTL in memory. Concurrent callers asking for the same missing key
wait for one computation (single flight) instead of each doing the work.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge

V = TypeVar("V")

# One pair of metric families per registry, a `cache` label per cache (a service holds several).
_FAMILIES: weakref.WeakKeyDictionary[CollectorRegistry, tuple[Counter, Gauge]] = (
    weakref.WeakKeyDictionary()
)
_FAMILIES_LOCK = threading.Lock()


def _families(registry: CollectorRegistry) -> tuple[Counter, Gauge]:
    with _FAMILIES_LOCK:
        if registry not in _FAMILIES:
            _FAMILIES[registry] = (
                Counter("drape_cache_lookups", "Lookups in a cache, by cache and result (hit, miss).",
                        ["cache", "result"], registry=registry),
                Gauge("drape_cache_bytes", "Bytes held by a cache.", ["cache"], registry=registry),
            )  # fmt: skip
        return _FAMILIES[registry]


@dataclass
class _Entry(Generic[V]):
    value: V
    size: int
    expires: float


class TtlCache(Generic[V]):
    def __init__(
        self,
        name: str,
        max_entries: int,
        max_bytes: int,
        ttl_s: float,
        size_of: Callable[[V], int] = lambda value: 0,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1 or ttl_s <= 0:
            raise ValueError("a cache needs max_entries >= 1, max_bytes >= 1 and ttl_s > 0")
        self.name, self.max_entries, self.max_bytes, self.ttl_s = (
            name,
            max_entries,
            max_bytes,
            ttl_s,
        )
        self._size_of, self._clock = size_of, clock
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[Hashable, Future[V]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._lookups = self._gauge = None
        if registry is not None:
            lookups, held = _families(registry)
            self._lookups = lookups
            self._gauge = held.labels(name)
            self._gauge.set_function(lambda: self._bytes)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def _count(self, result: str) -> None:
        if self._lookups is not None:
            self._lookups.labels(self.name, result).inc()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires <= self._clock():
                self._drop(key)
                entry = None
            if entry is not None:
                self._entries.move_to_end(key)
        self._count("hit" if entry is not None else "miss")
        return entry.value if entry is not None else None

    def put(self, key: Hashable, value: V) -> None:
        size = self._size_of(value)
        with self._lock:
            if key in self._entries:
                self._drop(key)
            if size > self.max_bytes:
                return  # larger than the whole cache: serve it, never keep it
            self._entries[key] = _Entry(value, size, self._clock() + self.ttl_s)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> tuple[V, bool]:
        """The cached value (``True``) or one computed now (``False``). Callers that miss on
        the same key while it is being computed wait for that computation; an exception is
        raised to all of them and nothing is cached."""
        value = self.get(key)
        if value is not None:
            return value, True
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires > self._clock():
                return entry.value, True  # made while this caller was looking
            future = self._inflight.get(key)
            owner = future is None
            if owner:
                future = self._inflight[key] = Future()
        if not owner:
            return future.result(), False
        try:
            value = compute()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            self.put(key, value)
            future.set_result(value)
            return value, False
        finally:
            with self._lock:
                del self._inflight[key]

    def sweep(self) -> int:
        """Drops expired entries; returns how many."""
        now = self._clock()
        with self._lock:
            expired = [key for key, entry in self._entries.items() if entry.expires <= now]
            for key in expired:
                self._drop(key)
        return len(expired)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _drop(self, key: Hashable) -> None:
        self._bytes -= self._entries.pop(key).size

    def start_sweeper(self, interval_s: float | None = None) -> TtlCache[V]:
        """Sweeps in a daemon thread every ``interval_s`` (default a quarter of the TTL, at
        most a second), so an entry is gone at most that long after it expires."""
        interval = interval_s if interval_s is not None else min(self.ttl_s / 4, 1.0)

        def loop() -> None:
            while not self._stop.wait(interval):
                self.sweep()

        self._sweeper = threading.Thread(
            target=loop, name=f"{self.name}-cache-sweeper", daemon=True
        )
        self._sweeper.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
        self.clear()

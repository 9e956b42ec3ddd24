"""The bounded, expiring, single-flight cache behind previews, photo embeddings and person
analyses."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from drape.services.runtime.cache import TtlCache
from tests.conftest import wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_the_ttl_even_when_read():
    clock = Clock()
    cache = TtlCache("t", 10, 1000, ttl_s=5, clock=clock)
    cache.put("a", "A")
    clock.now += 4
    assert cache.get("a") == "A"  # reading does not extend its life
    clock.now += 1
    assert cache.get("a") is None and len(cache) == 0


def test_bounded_by_entries_and_bytes_least_recently_used_first():
    cache = TtlCache("t", max_entries=3, max_bytes=10, ttl_s=60, size_of=len)
    for key in "abc":
        cache.put(key, key * 3)  # 3 bytes each
    assert cache.get("a") == "aaa"  # a is now the most recent
    cache.put("d", "ddd")  # 4 entries > 3: b goes
    assert cache.get("b") is None and cache.get("a") == "aaa" and cache.get("d") == "ddd"
    cache.put("e", "eeee")  # 3 + 3 + 3 + 4 = 13 bytes > 10: c, the least recent, goes
    assert [k for k in "acde" if cache.get(k) is not None] == ["a", "d", "e"]
    assert cache.bytes == 10
    cache.put("huge", "x" * 11)  # bigger than the whole cache: not kept, nothing evicted
    assert cache.get("huge") is None and cache.bytes == 10


def test_the_sweeper_drops_expired_entries_without_any_lookup():
    cache = TtlCache("t", 10, 1000, ttl_s=0.2, size_of=len).start_sweeper(interval_s=0.05)
    try:
        cache.put("photo", "pixels")
        assert len(cache) == 1
        assert wait_until(lambda: len(cache) == 0, timeout=3)
        assert cache.bytes == 0
    finally:
        cache.close()


def test_concurrent_misses_on_one_key_compute_once():
    cache = TtlCache("t", 10, 1000, ttl_s=60)
    calls = []
    gate = threading.Event()

    def compute() -> str:
        calls.append(1)
        gate.wait(5)
        return "value"

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_compute("k", compute)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(5)
    assert len(calls) == 1
    assert sorted(results) == [("value", False)] * 8
    assert cache.get_or_compute("k", compute) == ("value", True) and len(calls) == 1


def test_a_failed_computation_reaches_every_waiter_and_is_not_cached():
    cache = TtlCache("t", 10, 1000, ttl_s=60)

    def fail() -> str:
        raise RuntimeError("backend down")

    with pytest.raises(RuntimeError, match="backend down"):
        cache.get_or_compute("k", fail)
    assert cache.get_or_compute("k", lambda: "ok") == ("ok", False)


def test_lookups_and_bytes_are_exported():
    registry = CollectorRegistry()
    cache = TtlCache("preview", 10, 1000, ttl_s=60, size_of=len, registry=registry)
    cache.put("a", "12345")
    cache.get("a")
    cache.get("b")
    value = registry.get_sample_value
    photos = TtlCache("photo", 10, 1000, ttl_s=60, size_of=len, registry=registry)
    photos.put("p", "12")
    assert value("drape_cache_lookups_total", {"cache": "preview", "result": "hit"}) == 1
    assert value("drape_cache_lookups_total", {"cache": "preview", "result": "miss"}) == 1
    assert value("drape_cache_bytes", {"cache": "preview"}) == 5
    assert value("drape_cache_bytes", {"cache": "photo"}) == 2


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="ttl_s > 0"):
        TtlCache("t", 10, 1000, ttl_s=0)

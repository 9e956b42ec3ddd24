"""Both event stores honour one contract (SQLite always; PostgreSQL against a real server)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from drape.services.events.store import (
    COLUMNS,
    EventStore,
    ExposedItem,
    SqliteEventStore,
    StoredEvent,
    StoredExposure,
    open_event_store,
)


def _event(
    event_id: str,
    type_: str = "view",
    user: str = "u1",
    garment: str = "g1",
    at: int = 1_800_000_000_000_000,
) -> StoredEvent:
    return StoredEvent(event_id, type_, user, garment, at, at, "exp", "a", 0, "", 0)


@pytest.fixture
def store(event_store: EventStore) -> EventStore:
    return event_store


def test_append_then_read_back(store: EventStore):
    events = [_event(f"e{i}", user=f"u{i % 3}") for i in range(10)]
    assert store.append(events) == [True] * 10
    frame = store.read_frame()
    assert sorted(frame["event_id"]) == sorted(e.event_id for e in events)
    assert frame["occurred_at_us"].dtype == "int64"
    assert store.count() == 10


def test_a_read_comes_in_chunks_and_misses_nothing(store: EventStore, monkeypatch):
    # The rows of a full read are fetched a chunk at a time (bounded memory): 10 rows in
    # chunks of 3 (a PostgreSQL read uses a server-side cursor) come back whole and typed.
    from drape.services.events import store as module

    monkeypatch.setattr(module, "READ_CHUNK_ROWS", 3)
    events = [_event(f"e{i}", user=f"u{i % 4}", at=1_000 + i) for i in range(10)]
    store.append(events)
    frame = store.read_frame(columns=("event_id", "user_id", "occurred_at_us"))
    assert sorted(frame["event_id"]) == sorted(e.event_id for e in events)
    assert frame.index.tolist() == list(range(10))
    assert sorted(frame["occurred_at_us"]) == list(range(1_000, 1_010))
    assert frame["occurred_at_us"].dtype == "int64"
    assert list(store.read_frame(since_us=1_008)["event_id"].sort_values()) == ["e8", "e9"]


def test_idempotent_on_event_id(store: EventStore):
    assert store.append([_event("a"), _event("b")]) == [True, True]
    # A retry of "a", a new "c", and "c" again within the same batch.
    assert store.append([_event("a", type_="purchase"), _event("c"), _event("c")]) == [
        False,
        True,
        False,
    ]
    frame = store.read_frame().set_index("event_id")
    assert frame.loc["a", "type"] == "view"  # the duplicate changed nothing
    assert store.count() == 3


def test_read_since(store: EventStore):
    store.append([_event("old", at=1_000), _event("new", at=5_000)])
    assert list(store.read_frame(since_us=2_000)["event_id"]) == ["new"]


def test_empty_batch_and_empty_store(store: EventStore):
    assert store.append([]) == []
    assert store.read_frame().empty
    assert store.count() == 0


def test_concurrent_writers_never_double_store(store: EventStore):
    ids = [f"shared-{i}" for i in range(200)]
    outcomes: list[list[bool]] = []
    lock = threading.Lock()

    def writer() -> None:
        flags = store.append([_event(i) for i in ids])
        with lock:
            outcomes.append(flags)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Each id was stored by exactly one writer.
    assert [sum(column) for column in zip(*outcomes, strict=True)] == [1] * len(ids)
    assert store.count() == len(ids)


def test_sqlite_is_in_wal_mode_with_full_sync(tmp_path: Path):
    store = SqliteEventStore(tmp_path / "e.db")
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_unknown_url_scheme():
    with pytest.raises(ValueError, match="unsupported event store URL"):
        open_event_store("mysql://x")


def test_read_selected_columns(store: EventStore):
    from drape.services.events.store import INTERACTION_COLUMNS

    store.append([_event("a", at=7)])
    frame = store.read_frame(columns=INTERACTION_COLUMNS)
    assert list(frame.columns) == list(INTERACTION_COLUMNS)
    assert frame["occurred_at_us"].tolist() == [7]
    with pytest.raises(ValueError, match="unknown event columns"):
        store.read_frame(columns=("event_id", "password"))


def _open_together(path: str, barrier) -> None:
    barrier.wait(timeout=60)
    store = SqliteEventStore(Path(path))
    try:
        assert store.count() == 0
    finally:
        store.close()


def test_processes_opening_a_new_database_together_all_succeed(tmp_path: Path):
    # The workers of one service open the same fresh database at once; switching it to WAL
    # used to fail in some of them with "database is locked".
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for round_ in range(6):
        path = str(tmp_path / f"events-{round_}.db")
        barrier = context.Barrier(6)
        procs = [context.Process(target=_open_together, args=(path, barrier)) for _ in range(6)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=90)
        assert [proc.exitcode for proc in procs] == [0] * 6, f"round {round_}"


def _exposure(rid: str, user: str = "u1", garments=("g1", "g2")) -> StoredExposure:
    at = 1_800_000_000_000_000
    return StoredExposure(rid, user, at, at, "popularity", "pop-1", 12.5,
                          (("exp", "a", "v1"), ("other", "b", "v9")),
                          tuple(ExposedItem(r, g, "ok") for r, g in enumerate(garments, 1)))  # fmt: skip


def test_exposures_are_idempotent_on_recommendation_id(store: EventStore):
    assert store.append_exposures([_exposure("r1"), _exposure("r2", "u2"), _exposure("r1")]) == [
        True, True, False]  # fmt: skip
    assert store.append_exposures([_exposure("r2", "u2", ("g9",)), _exposure("r3")]) == [
        False,
        True,
    ]
    assert store.query("SELECT count(*) FROM exposures") == [(3,)]
    assert store.query("SELECT count(*) FROM exposure_items") == [(6,)]  # r2's retry added none
    served = store.exposures_of(["r1", "r2", "nope"])
    assert {rid: user for rid, (user, _) in served.items()} == {"r1": "u1", "r2": "u2"}
    assert served["r1"][1] == {"exp": "a", "other": "b"}


def test_definitions_are_kept_once_per_version(store: EventStore):
    store.record_definitions([("exp", "v1", '{"a": 1}'), ("exp", "v2", '{"a": 2}')])
    store.record_definitions([("exp", "v1", '{"a": 1}')])
    assert store.query("SELECT experiment, version FROM experiment_definitions ORDER BY version") == [
        ("exp", "v1"), ("exp", "v2")]  # fmt: skip


def test_reading_again_and_again_leaks_no_files(tmp_path):
    """The recommend service reads the whole store on every refresh: each read's connection
    is closed when it ends, not left to the garbage collector (a 10-minute soak showed its
    open files doubling)."""
    import gc
    import os

    from drape.services.events.store import open_event_store

    store = open_event_store(f"sqlite:///{tmp_path / 'events.db'}")
    try:
        gc.disable()  # what a cycle-held connection would wait for
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(50):
            store.read_frame()
            store.query("SELECT count(*) FROM events")
        assert len(os.listdir("/proc/self/fd")) <= before + 2
    finally:
        gc.enable()
        store.close()


def test_incremental_reads_return_each_event_once(store: EventStore, monkeypatch):
    from drape.services.events import store as module

    monkeypatch.setattr(module, "READ_CHUNK_ROWS", 4)
    first, mark = store.read_new(None, module.INTERACTION_COLUMNS)
    assert first.empty
    store.append([_event(f"a{i}", at=1_000 + i) for i in range(10)])
    frame, mark = store.read_new(mark, module.INTERACTION_COLUMNS)
    assert list(frame["event_id"]) == [f"a{i}" for i in range(10)]  # storage order
    assert frame["occurred_at_us"].dtype == "int64"
    again, mark = store.read_new(mark)
    assert again.empty
    store.append([_event("b0"), _event("a3")])  # a3 is a duplicate: not stored again
    frame, mark = store.read_new(mark, ("event_id", "user_id"))
    assert list(frame["event_id"]) == ["b0"]
    whole, _ = store.read_new(None)
    assert len(whole) == 11 and list(whole.columns) == list(module.RANKING_COLUMNS)


def test_a_read_in_chunks_hands_over_what_a_whole_read_returns(store: EventStore, monkeypatch):
    # A full read coded as it comes (the recommend service's start) sees the same events as
    # one frame: the stored events a chunk at a time, then the compacted ones' aggregates.
    import pandas as pd

    from drape.services.events import store as module

    monkeypatch.setattr(module, "READ_CHUNK_ROWS", 3)
    store.append([_event(f"e{i}", user=f"u{i % 4}", garment=f"g{i % 3}", at=1_000 + i)
                  for i in range(10)])  # fmt: skip
    store.compact(1_004, half_life_days=14.0)  # e0-e3 become aggregates
    store.append([_event("e10", at=2_000)])
    chunks: list[pd.DataFrame] = []
    mark = store.read_new_chunks(None, chunks.append)
    whole, whole_mark = store.read_new(None)
    assert mark == whole_mark
    assert [len(c) for c in chunks] == [3, 3, 1, 4]  # the 7 events left, then 4 aggregates
    assert all("strength" not in c.columns for c in chunks[:-1])
    joined = pd.concat(chunks, ignore_index=True).fillna({"strength": 1.0})
    pd.testing.assert_frame_equal(joined, whole)
    assert len(whole) == 11 and whole["strength"].notna().all()

    store.append([_event("e11", at=3_000), _event("e12", at=3_001)])
    chunks = []
    later = store.read_new_chunks(mark, chunks.append, ("event_id", "occurred_at_us"))
    assert [c["event_id"].tolist() for c in chunks] == [["e11", "e12"]]  # no aggregates again
    assert store.read_new(later)[0].empty


@pytest.mark.parametrize("event_store", ["postgres"], indirect=True)
def test_an_event_committed_late_is_not_skipped(event_store: EventStore):
    # On PostgreSQL a transaction that began first can commit after a later one: the event
    # it writes has an older write order than events already read, and must still be read.
    # (SQLite has one writer at a time: its rows commit in rowid order.)
    import psycopg

    event_store.append([_event("before")])
    slow = psycopg.connect(event_store.url)
    try:
        slow.execute("SELECT pg_current_xact_id()")  # takes its transaction id now
        event_store.append([_event("after")])
        frame, mark = event_store.read_new(None, ("event_id",))
        assert sorted(frame["event_id"]) == ["after", "before"]
        slow.execute(
            f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES "
            "('late', 'view', 'u1', 'g1', 1, 1, '', '', 0, '', 0)"
        )
        slow.commit()
    finally:
        slow.close()
    frame, mark = event_store.read_new(mark, ("event_id",))
    assert list(frame["event_id"]) == ["late"]
    frame, _ = event_store.read_new(mark)
    assert frame.empty and "event_id" not in frame.columns

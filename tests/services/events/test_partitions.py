"""PostgreSQL's events table is partitioned by week of occurrence: ids stay unique across
partitions, retention drops whole weeks (and only what it read), a plain table as stored
before is moved into partitions, and a week that cannot get a partition still stores."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from drape.services.events.partitions import PERIOD_US, partition_name, period_start
from drape.services.events.store import PostgresEventStore, StoredEvent

pytestmark = pytest.mark.postgres

WEEK0 = period_start(1_800_000_000_000_000)  # the start of a week (2027-01-14)
HALF_LIFE = 14.0


def _event(event_id: str, at: int, user: str = "u1", garment: str = "g1") -> StoredEvent:
    return StoredEvent(event_id, "view", user, garment, at, at, "exp", "a", 0, "", 0)


@pytest.fixture
def schema_url(postgres_url: str) -> Iterator[str]:
    schema = f"s{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{postgres_url}?options=-csearch_path%3D{schema}"


def _partitions(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE p.relname = 'events' AND n.nspname = current_schema()"
        ).fetchall()
    return {r[0] for r in rows}


def _rows(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_weeks_get_partitions_and_ids_stay_unique_across_them(schema_url: str):
    store = PostgresEventStore(schema_url)
    try:
        now_week = partition_name(period_start(time.time_ns() // 1000))
        assert now_week in _partitions(schema_url)  # made at open, ahead of traffic
        events = [_event(f"e{w}", WEEK0 + w * PERIOD_US + 3600 * 10**6) for w in range(5)]
        assert store.append(events) == [True] * 5
        made = _partitions(schema_url)
        assert {partition_name(WEEK0 + w * PERIOD_US) for w in range(5)} <= made
        assert _rows(schema_url, "events_default") == 0
        # The same id again, even dated in another week (another partition): a duplicate.
        again = [_event("e0", WEEK0 + 9 * PERIOD_US), _event("e5", WEEK0), _event("e5", WEEK0)]
        assert store.append(again) == [False, True, False]
        assert store.count() == 6 and _rows(schema_url, "event_ids") == 6
    finally:
        store.close()


def test_compaction_drops_whole_weeks_and_deletes_the_rest(schema_url: str):
    store = PostgresEventStore(schema_url)
    try:
        # Four weeks of 5 events, cut in the middle of the third week.
        store.append([_event(f"w{w}-{i}", WEEK0 + w * PERIOD_US + i * 86_400 * 10**6,
                             user=f"u{i}") for w in range(4) for i in range(5)])  # fmt: skip
        cut = WEEK0 + 2 * PERIOD_US + 3 * 86_400 * 10**6  # days 0-2 of week 2 are before it
        done = store.compact(cut, HALF_LIFE)
        assert done.events == 5 + 5 + 3 and done.dropped == 10
        left = _partitions(schema_url)
        assert partition_name(WEEK0) not in left and partition_name(WEEK0 + PERIOD_US) not in left
        assert partition_name(WEEK0 + 2 * PERIOD_US) in left
        assert store.count() == 20 - 13 and _rows(schema_url, "event_ids") == 7
        assert sorted(store.read_frame(since_us=0)["event_id"]) == sorted(
            [f"w2-{i}" for i in (3, 4)] + [f"w3-{i}" for i in range(5)]
        )
        assert int(store.read_aggregates()["events"].sum()) == 13
    finally:
        store.close()


def test_a_week_written_to_during_a_compaction_keeps_what_was_not_read(schema_url: str):
    store = PostgresEventStore(schema_url)
    try:
        store.append([_event(f"old-{i}", WEEK0 + i) for i in range(4)])
        store.append([_event("recent", WEEK0 + 5 * PERIOD_US)])
        # A late event for the old week, in a transaction still open when compaction reads:
        # compaction must neither read it nor remove it.
        writer = psycopg.connect(schema_url)
        writer.execute("INSERT INTO event_ids (event_id, occurred_at_us) VALUES ('late', %s)",
                       (WEEK0 + 10,))  # fmt: skip
        writer.execute(
            "INSERT INTO events (event_id, type, user_id, garment_id, occurred_at_us, "
            "received_at_us, experiment, variant, rating, recommendation_id, value_minor) "
            "VALUES ('late', 'view', 'u9', 'g1', %s, %s, '', '', 0, '', 0)",
            (WEEK0 + 10, WEEK0 + 10),
        )
        committed = threading.Timer(3.0, writer.commit)  # after the compaction's lock wait
        committed.start()
        try:
            done = store.compact(WEEK0 + 2 * PERIOD_US, HALF_LIFE)
        finally:
            committed.join()
            writer.close()
        assert done.events == 4 and done.dropped == 0  # read 4, deleted those 4, kept the week
        assert partition_name(WEEK0) in _partitions(schema_url)
        assert sorted(store.read_frame(since_us=0)["event_id"]) == ["late", "recent"]
        # The next compaction takes the late one, and the empty week goes with it.
        again = store.compact(WEEK0 + 2 * PERIOD_US, HALF_LIFE)
        assert again.events == 1 and again.dropped == 1
        assert partition_name(WEEK0) not in _partitions(schema_url)
    finally:
        store.close()


def test_a_plain_events_table_is_moved_into_partitions(schema_url: str):
    from drape.services.events.store import COLUMNS, EVENT_COLUMNS_SQL

    with psycopg.connect(schema_url) as conn:  # as stored before partitioning
        conn.execute(f"CREATE TABLE events ({EVENT_COLUMNS_SQL}, PRIMARY KEY (event_id))")
        conn.execute("CREATE INDEX events_occurred ON events (occurred_at_us)")
        for i in range(6):
            at = WEEK0 + i * PERIOD_US // 2
            conn.execute(f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES "
                         f"('p{i}', 'view', 'u1', 'g1', {at}, {at}, '', '', 0, '', 0)")  # fmt: skip
    store = PostgresEventStore(schema_url)
    try:
        assert {partition_name(WEEK0 + w * PERIOD_US) for w in range(3)} <= _partitions(schema_url)
        assert store.count() == 6 and _rows(schema_url, "events_default") == 0
        frame, _ = store.read_new(None, ("event_id",))
        assert sorted(frame["event_id"]) == [f"p{i}" for i in range(6)]
        assert store.append([_event("p3", WEEK0), _event("p6", WEEK0)]) == [False, True]
    finally:
        store.close()
    PostgresEventStore(schema_url).close()  # opened again: nothing more to move
    assert _rows(schema_url, "events") == 7


def test_a_week_without_a_partition_is_stored_in_the_default_one(schema_url: str):
    store = PostgresEventStore(schema_url)
    week = WEEK0 + 20 * PERIOD_US
    try:
        with psycopg.connect(schema_url) as conn:  # a row of that week already in the default
            conn.execute(
                "INSERT INTO events_default (event_id, type, user_id, garment_id, occurred_at_us, "
                "received_at_us, experiment, variant, rating, recommendation_id, value_minor) "
                "VALUES ('stray', 'view', 'u1', 'g1', %s, %s, '', '', 0, '', 0)",
                (week, week),
            )
            conn.execute("INSERT INTO event_ids (event_id, occurred_at_us) VALUES ('stray', %s)",
                         (week,))  # fmt: skip
        assert store.append([_event("d1", week + 5)]) == [True]  # stored, in the default
        assert _rows(schema_url, "events_default") == 2
        assert partition_name(week) not in _partitions(schema_url)
        done = store.compact(week + PERIOD_US, HALF_LIFE)
        assert done.events == 2 and done.dropped == 0
        assert _rows(schema_url, "events_default") == 0
    finally:
        store.close()

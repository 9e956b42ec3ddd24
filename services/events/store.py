"""The durable event log: one interface, SQLite (default) and PostgreSQL implementations.

``append`` returns only after the events are committed to disk, so an
acknowledged event survives the process being killed. It is idempotent on
``event_id``: an id already stored (or repeated within the batch) is reported
as a duplicate and left untouched.

The same database holds the exposure log (what each shopper was shown: one row per
recommendation list in ``exposures``, its experiment arms in ``exposure_arms`` and its
garments in ``exposure_items``, idempotent on ``recommendation_id``) and every version of every
experiment definition that assigned anyone (``experiment_definitions``), so a result is
always read with the definition that produced it. ``exposure_arms`` and ``exposure_items``
repeat the user and the time of their list, so a report reads them without a join.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from drape.services.events import partitions
from drape.services.events.retention import (
    AGGREGATE_COLUMNS,
    AGGREGATE_SCHEMA,
    Archive,
    Compaction,
    aggregate,
    as_events,
    merge,
    with_aggregates,
)

# What training and ranking read: a quarter of the columns, a fraction of the time.
INTERACTION_COLUMNS = ("event_id", "type", "user_id", "garment_id", "occurred_at_us")
# What the recommender's models are built from: no event ids (unique strings, about a fifth
# of a full read's memory).
RANKING_COLUMNS = ("type", "user_id", "garment_id", "occurred_at_us")
T = TypeVar("T")
EVENT_TYPES = ("impression", "view", "tryon_view", "add_to_cart", "purchase", "rating")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A validated event as stored; times are microseconds since the Unix epoch (UTC)."""

    event_id: str
    type: str
    user_id: str
    garment_id: str
    occurred_at_us: int
    received_at_us: int
    experiment: str = ""
    variant: str = ""
    rating: int = 0
    recommendation_id: str = ""
    value_minor: int = 0


COLUMNS = tuple(f.name for f in fields(StoredEvent))
EVENT_COLUMNS_SQL = """
    event_id          TEXT NOT NULL,
    type              TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    garment_id        TEXT NOT NULL,
    occurred_at_us    BIGINT NOT NULL,
    received_at_us    BIGINT NOT NULL,
    experiment        TEXT NOT NULL,
    variant           TEXT NOT NULL,
    rating            INTEGER NOT NULL,
    recommendation_id TEXT NOT NULL,
    value_minor       BIGINT NOT NULL"""
# SQLite's events; PostgreSQL's are partitioned by time (see partitions.py).
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS events ({EVENT_COLUMNS_SQL},
    PRIMARY KEY (event_id)
)"""
_EXPOSURE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS exposures (
    recommendation_id TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL,
    served_at_us      BIGINT NOT NULL,
    received_at_us    BIGINT NOT NULL,
    strategy          TEXT NOT NULL,
    model_version     TEXT NOT NULL,
    latency_ms        REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS exposure_arms (
    recommendation_id TEXT NOT NULL,
    experiment        TEXT NOT NULL,
    variant           TEXT NOT NULL,
    version           TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    served_at_us      BIGINT NOT NULL,
    PRIMARY KEY (recommendation_id, experiment)
)""",
    """CREATE TABLE IF NOT EXISTS exposure_items (
    recommendation_id TEXT NOT NULL,
    rank              INTEGER NOT NULL,
    garment_id        TEXT NOT NULL,
    preview_status    TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    served_at_us      BIGINT NOT NULL,
    PRIMARY KEY (recommendation_id, rank)
)""",
    AGGREGATE_SCHEMA,
    """CREATE TABLE IF NOT EXISTS experiment_definitions (
    experiment        TEXT NOT NULL,
    version           TEXT NOT NULL,
    definition        TEXT NOT NULL,
    first_seen_us     BIGINT NOT NULL,
    PRIMARY KEY (experiment, version)
)""",
)
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_occurred ON events (occurred_at_us)",
    "CREATE INDEX IF NOT EXISTS events_variant ON events (experiment, variant)",
    # A report's exposed users: one experiment's rows, grouped by user, read from the index.
    "CREATE INDEX IF NOT EXISTS exposure_arms_user "
    "ON exposure_arms (experiment, user_id, served_at_us, variant)",
)


@dataclass(frozen=True, slots=True)
class ExposedItem:
    rank: int
    garment_id: str
    preview_status: str  # ok, cached, skipped, failed, ... (the PreviewStatus name)


@dataclass(frozen=True, slots=True)
class StoredExposure:
    """One recommendation list served: who saw it, under which experiment arms
    ((experiment, variant, version) each), and which garments with which previews."""

    recommendation_id: str
    user_id: str
    served_at_us: int
    received_at_us: int
    strategy: str
    model_version: str
    latency_ms: float
    arms: tuple[tuple[str, str, str], ...]
    items: tuple[ExposedItem, ...]

    def rows(self) -> tuple[tuple[object, ...], list[tuple[object, ...]], list[tuple[object, ...]]]:
        """Its rows of exposures, exposure_arms and exposure_items."""
        head = (self.recommendation_id, self.user_id, self.served_at_us, self.received_at_us,
                self.strategy, self.model_version, float(self.latency_ms))  # fmt: skip
        arms = [(self.recommendation_id, e, v, ver, self.user_id, self.served_at_us)
                for e, v, ver in self.arms]  # fmt: skip
        items = [(self.recommendation_id, i.rank, i.garment_id, i.preview_status, self.user_id,
                  self.served_at_us) for i in self.items]  # fmt: skip
        return head, arms, items


_EXPOSURE_INSERTS = (
    "INSERT INTO exposure_arms (recommendation_id, experiment, variant, version, user_id, "
    "served_at_us) VALUES ({})".format(", ".join(["{p}"] * 6)),
    "INSERT INTO exposure_items (recommendation_id, rank, garment_id, preview_status, user_id, "
    "served_at_us) VALUES ({})".format(", ".join(["{p}"] * 6)),
)
_EXPOSURE_HEAD = (
    "INSERT INTO exposures (recommendation_id, user_id, served_at_us, received_at_us, strategy, "
    "model_version, latency_ms) VALUES ({})".format(", ".join(["{p}"] * 7))
)


@dataclass(frozen=True, slots=True)
class Watermark:
    """Where an incremental read stopped. Every event stored below ``position`` has been read;
    ``seen`` names the events at or above it that were read too.

    SQLite orders events by rowid: one writer at a time, so a row never commits below one
    already visible, and ``seen`` stays empty. PostgreSQL orders them by the id of the
    transaction that wrote them, and transactions commit out of order: a reader's position
    is the oldest transaction still open when it read (everything older has committed or
    rolled back), so the next read starts there again and skips what ``seen`` lists.
    """

    position: int = 0
    seen: frozenset[str] = frozenset()


def _sql(template: str, placeholder: str) -> str:
    return template.replace("{p}", placeholder)


class EventStore(Protocol):
    """What every event store offers."""

    url: str

    def append(self, events: Sequence[StoredEvent]) -> list[bool]:
        """Stores events atomically and durably; True per event newly stored, False if duplicate."""
        ...

    def read_frame(
        self, since_us: int | None = None, columns: Sequence[str] = COLUMNS
    ) -> pd.DataFrame:
        """Events (optionally those occurred at or after ``since_us``) as a DataFrame of ``columns``."""
        ...

    def read_new(
        self, after: Watermark | None, columns: Sequence[str] = RANKING_COLUMNS
    ) -> tuple[pd.DataFrame, Watermark]:
        """The events stored since ``after`` (all of them for None), in storage order, and the
        watermark to read from next time: each event is returned by exactly one read."""
        ...

    def read_new_chunks(
        self,
        after: Watermark | None,
        consume: Callable[[pd.DataFrame], None],
        columns: Sequence[str] = RANKING_COLUMNS,
    ) -> Watermark:
        """``read_new``'s events handed to ``consume`` a chunk at a time, in storage order,
        instead of gathered into one frame; returns the watermark. A reader that keeps them in
        a compact form of its own never holds the whole log as Python strings."""
        ...

    def count(self) -> int: ...

    def compact(
        self, before_us: int, half_life_days: float, archive: Archive | None = None
    ) -> Compaction:
        """Turns the events that occurred before ``before_us`` into aggregates (see
        :mod:`drape.services.events.retention`), archiving them first when given where."""
        ...

    def append_exposures(self, exposures: Sequence[StoredExposure]) -> list[bool]:
        """Stores exposures atomically and durably; True per exposure newly stored."""
        ...

    def exposures_of(
        self, recommendation_ids: Sequence[str]
    ) -> dict[str, tuple[str, dict[str, str]]]:
        """Per recommendation list stored: the user it was served to and its arms
        (experiment -> variant)."""
        ...

    def record_definitions(self, definitions: Sequence[tuple[str, str, str]]) -> None:
        """Keeps (experiment, version, definition JSON) rows not already kept."""
        ...

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """A read-only query; ``?`` placeholders on every backend."""
        ...

    def close(self) -> None: ...


def _flags(
    events: Sequence[StoredEvent], existing: set[str]
) -> tuple[list[bool], list[StoredEvent]]:
    seen = set(existing)
    flags, fresh = [], []
    for event in events:
        is_new = event.event_id not in seen
        flags.append(is_new)
        if is_new:
            seen.add(event.event_id)
            fresh.append(event)
    return flags, fresh


# Rows fetched and turned into typed columns at a time: a full read holds at most one chunk
# of Python row tuples (about 0.4 KB a row) beside the columnar frame, instead of every row.
READ_CHUNK_ROWS = 50_000


def _chunks(cursor: Any, columns: Sequence[str]) -> Iterator[pd.DataFrame]:
    while rows := cursor.fetchmany(READ_CHUNK_ROWS):
        yield _typed_frame(rows, columns)


def _frame_in_chunks(cursor: Any, columns: Sequence[str]) -> pd.DataFrame:
    return _joined(list(_chunks(cursor, columns)), columns)


def _joined(parts: list[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    if not parts:
        return _typed_frame([], columns)
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _typed_frame(rows: list[tuple[object, ...]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    for column in ("occurred_at_us", "received_at_us", "value_minor", "xact"):
        if column in frame:
            frame[column] = frame[column].astype("int64")
    if "rating" in frame:
        frame["rating"] = frame["rating"].astype("int16")
    return frame


def _with_aggregates(columns: Sequence[str] | pd.Index) -> bool:
    """Whether a full read of ``columns`` takes the compacted events' aggregates in."""
    return "user_id" in columns and "garment_id" in columns


def _select(
    columns: Sequence[str], since_us: int | None, placeholder: str
) -> tuple[str, tuple[int, ...]]:
    """The SELECT for ``read_frame`` (columns checked against the schema)."""
    unknown = set(columns) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown event columns {sorted(unknown)}")
    query = f"SELECT {', '.join(columns)} FROM events"
    if since_us is None:
        return query, ()
    return f"{query} WHERE occurred_at_us >= {placeholder}", (since_us,)


class _Reads:
    """What both stores read the same way, through their ``query``."""

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        raise NotImplementedError

    def read_aggregates(self) -> pd.DataFrame:
        """The compacted events' aggregates (:data:`AGGREGATE_COLUMNS`)."""
        rows = self.query(f"SELECT {', '.join(AGGREGATE_COLUMNS)} FROM event_aggregates")
        frame = pd.DataFrame(rows, columns=list(AGGREGATE_COLUMNS))
        return frame.astype({"events": "int64", "strength": "float64", "last_us": "int64",
                             "half_life_days": "float64"})  # fmt: skip

    def _full(self, events: pd.DataFrame) -> pd.DataFrame:
        """A read of the whole log: the events and, when there are any, the aggregates of
        compacted ones (with a ``strength`` column)."""
        if not _with_aggregates(events.columns):
            return events
        return with_aggregates(events, self.read_aggregates())

    def read_new(
        self, after: Watermark | None, columns: Sequence[str] = RANKING_COLUMNS
    ) -> tuple[pd.DataFrame, Watermark]:
        parts: list[pd.DataFrame] = []
        mark = self._read_new_rows(after, columns, parts.append)
        frame = _joined(parts, columns)
        return (self._full(frame) if after is None else frame), mark

    def read_new_chunks(
        self,
        after: Watermark | None,
        consume: Callable[[pd.DataFrame], None],
        columns: Sequence[str] = RANKING_COLUMNS,
    ) -> Watermark:
        """A read of the whole log (``after`` None) ends with one chunk of the compacted
        events' aggregates, with a ``strength`` column, when there are any; the chunks of
        stored events before it have no such column (their strength is 1)."""
        mark = self._read_new_rows(after, columns, consume)
        if after is None and _with_aggregates(columns):
            aggregates = self.read_aggregates()
            if not aggregates.empty:
                consume(as_events(aggregates, columns))
        return mark

    def _read_new_rows(
        self,
        after: Watermark | None,
        columns: Sequence[str],
        consume: Callable[[pd.DataFrame], None],
    ) -> Watermark:
        """The stored events since ``after``, a chunk at a time, and the next watermark."""
        raise NotImplementedError

    def compact(
        self, before_us: int, half_life_days: float, archive: Archive | None = None
    ) -> Compaction:
        with self._old_events(before_us) as (bound, chunks):
            read = [0]

            def kept(chunk: pd.DataFrame) -> pd.DataFrame:
                read[0] += len(chunk)
                if archive is not None:
                    archive.write(chunk)
                return chunk

            new = aggregate((kept(c) for c in chunks), half_life_days)
        where = archive.close() if archive is not None else None
        if not read[0]:
            return Compaction(before_us, 0, len(self.read_aggregates()), where)
        merged = merge(self.read_aggregates(), new, half_life_days)
        dropped = self._replace_old(before_us, bound, merged, read[0])
        return Compaction(before_us, read[0], len(merged), where, dropped)

    def _old_events(
        self, before_us: int
    ) -> contextlib.AbstractContextManager[tuple[int, Iterator[pd.DataFrame]]]:
        raise NotImplementedError

    def _replace_old(
        self, before_us: int, bound: int, aggregates: pd.DataFrame, expected: int
    ) -> int:
        raise NotImplementedError

    def count(self) -> int:
        return int(self.query("SELECT count(*) FROM events")[0][0])

    def exposures_of(
        self, recommendation_ids: Sequence[str]
    ) -> dict[str, tuple[str, dict[str, str]]]:
        found: dict[str, tuple[str, dict[str, str]]] = {}
        for rid, user, experiment, variant in self._in_chunks(
            "SELECT x.recommendation_id, x.user_id, a.experiment, a.variant FROM exposures x "
            "LEFT JOIN exposure_arms a ON a.recommendation_id = x.recommendation_id "
            "WHERE x.recommendation_id IN ({})", recommendation_ids,
        ):  # fmt: skip
            arms = found.setdefault(str(rid), (str(user), {}))[1]
            if experiment is not None:
                arms[str(experiment)] = str(variant)
        return found

    def _in_chunks(self, template: str, ids: Sequence[str]) -> list[tuple[object, ...]]:
        """``template``'s rows for ``ids``, 500 placeholders at a time."""
        unique = list(dict.fromkeys(ids))
        rows: list[tuple[object, ...]] = []
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            rows.extend(self.query(template.format(",".join("?" * len(chunk))), chunk))
        return rows


class SqliteEventStore(_Reads):
    """SQLite in WAL mode; one writer connection, reads on their own connections."""

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self._set_up(synchronous, deadline=time.monotonic() + 30)
        placeholders = ", ".join("?" * len(COLUMNS))
        self._insert = f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({placeholders})"

    def _set_up(self, synchronous: str, deadline: float) -> None:
        """WAL mode and the schema. Processes opening a new database together (the workers
        of one service) race for it: switching to WAL can fail at once with "database is
        locked" without waiting for the busy timeout (SQLite refuses to wait where waiting
        could deadlock), so it is retried until the deadline."""
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(f"PRAGMA synchronous={synchronous}")
                for statement in (_SCHEMA, *_EXPOSURE_SCHEMA, *_INDEXES):
                    self._db.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def append(self, events: Sequence[StoredEvent]) -> list[bool]:
        if not events:
            return []
        ids = list({e.event_id for e in events})

        # IMMEDIATE (in _write) takes the write lock before reading, so no other writer can
        # slip the same id in between the check and the insert.
        def work(db: sqlite3.Connection) -> list[bool]:
            flags, fresh = _flags(events, self._existing(db, "events", "event_id", ids))
            db.executemany(self._insert, [astuple(e) for e in fresh])
            return flags

        return self._write(work)

    def read_frame(
        self, since_us: int | None = None, columns: Sequence[str] = COLUMNS
    ) -> pd.DataFrame:
        query, params = _select(columns, since_us, "?")
        with self._reading() as db:
            frame = _frame_in_chunks(db.execute(query, params), columns)
        return self._full(frame) if since_us is None else frame

    @contextlib.contextmanager
    def _old_events(self, before_us: int) -> Iterator[tuple[int, Iterator[pd.DataFrame]]]:
        with self._reading() as db:
            db.execute("BEGIN")
            bound = int(db.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0])
            cursor = db.execute(f"SELECT {', '.join(COLUMNS)} FROM events "
                                "WHERE occurred_at_us < ? AND rowid <= ?", (before_us, bound))  # fmt: skip
            yield bound, _chunks(cursor, COLUMNS)

    def _replace_old(
        self, before_us: int, bound: int, aggregates: pd.DataFrame, expected: int
    ) -> int:
        def work(db: sqlite3.Connection) -> None:
            deleted = db.execute("DELETE FROM events WHERE occurred_at_us < ? AND rowid <= ?",
                                 (before_us, bound)).rowcount  # fmt: skip
            if deleted != expected:  # another compaction ran meanwhile: leave it all as it was
                raise RuntimeError(f"compaction read {expected} events but would delete {deleted}")
            db.execute("DELETE FROM event_aggregates")
            db.executemany(
                f"INSERT INTO event_aggregates ({', '.join(AGGREGATE_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(AGGREGATE_COLUMNS))})",
                aggregates.itertuples(index=False, name=None),
            )

        self._write(work)
        return 0

    def _read_new_rows(
        self,
        after: Watermark | None,
        columns: Sequence[str],
        consume: Callable[[pd.DataFrame], None],
    ) -> Watermark:
        query, _ = _select(columns, None, "?")
        start = after.position if after is not None else 0
        with self._reading() as db:
            db.execute("BEGIN")  # one snapshot for the bound and the rows
            end = db.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]
            cursor = db.execute(f"{query} WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
                                (start, end))  # fmt: skip
            for chunk in _chunks(cursor, columns):
                consume(chunk)
        return Watermark(max(int(end), start))

    def _reading(self) -> contextlib.closing[sqlite3.Connection]:
        """A read-only connection, closed at the end of the block (sqlite3's own context
        manager only commits: a reader refreshing every minute leaked a connection and its
        files each time, until the garbage collector ran)."""
        return contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True))

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = work(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return result

    def append_exposures(self, exposures: Sequence[StoredExposure]) -> list[bool]:
        if not exposures:
            return []

        def work(db: sqlite3.Connection) -> list[bool]:
            stored = self._existing(
                db, "exposures", "recommendation_id", [e.recommendation_id for e in exposures]
            )
            flags = []
            for exposure in exposures:
                is_new = exposure.recommendation_id not in stored
                flags.append(is_new)
                if is_new:
                    stored.add(exposure.recommendation_id)
                    head, arms, items = exposure.rows()
                    db.execute(_sql(_EXPOSURE_HEAD, "?"), head)
                    db.executemany(_sql(_EXPOSURE_INSERTS[0], "?"), arms)
                    db.executemany(_sql(_EXPOSURE_INSERTS[1], "?"), items)
            return flags

        return self._write(work)

    @staticmethod
    def _existing(db: sqlite3.Connection, table: str, column: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the table already holds (read inside the write transaction)."""
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows = db.execute(
                f"SELECT {column} FROM {table} WHERE {column} IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            found.update(r[0] for r in rows)
        return found

    def record_definitions(self, definitions: Sequence[tuple[str, str, str]]) -> None:
        now_us = time.time_ns() // 1000
        self._write(lambda db: db.executemany(
            "INSERT OR IGNORE INTO experiment_definitions VALUES (?, ?, ?, ?)",
            [(*d, now_us) for d in definitions],
        ))  # fmt: skip

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._reading() as db:
            return db.execute(sql, tuple(params)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresEventStore(_Reads):
    """PostgreSQL through a psycopg connection pool; one statement per batch. The events
    table is partitioned by week of occurrence (see :mod:`drape.services.events.partitions`);
    a plain one, as stored before, is moved into partitions the first time it is opened."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True, timeout=10)
        with self._pool.connection() as conn:
            # One process at a time sets up (or moves) the schema.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (partitions.SCHEMA_LOCK,))
            kind = partitions.kind_of_events(conn)
            if kind is None:
                partitions.create_schema(conn, EVENT_COLUMNS_SQL)
            elif kind != "p":
                _add_write_order(conn)
                partitions.partition_plain_table(conn, COLUMNS, EVENT_COLUMNS_SQL)
            for statement in (*_EXPOSURE_SCHEMA, *_INDEXES):
                conn.execute(statement)
        self.partitions = partitions.Partitions(self._pool)
        self.partitions.ensure_around(time.time_ns() // 1000)
        casts = (
            "text",
            "text",
            "text",
            "text",
            "bigint",
            "bigint",
            "text",
            "text",
            "int",
            "text",
            "bigint",
        )
        arrays = ", ".join(f"%s::{cast}[]" for cast in casts)
        names = ", ".join(COLUMNS)
        # The batch's new ids claimed in event_ids, and the events of exactly those stored,
        # in one statement.
        self._insert = (
            f"WITH batch ({names}) AS (SELECT * FROM unnest({arrays})), "
            "fresh AS (INSERT INTO event_ids (event_id, occurred_at_us) "
            "SELECT event_id, occurred_at_us FROM batch "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id) "
            f"INSERT INTO events ({names}) SELECT {', '.join(f'b.{c}' for c in COLUMNS)} "
            "FROM batch b JOIN fresh f ON f.event_id = b.event_id RETURNING event_id"
        )

    def append(self, events: Sequence[StoredEvent]) -> list[bool]:
        if not events:
            return []
        # Within a batch only the first occurrence of an id is sent.
        flags, fresh = _flags(events, set())
        columns = [list(col) for col in zip(*(astuple(e) for e in fresh), strict=True)]
        # Weeks ahead of now, made long before their first row, and any other the batch holds.
        self.partitions.ensure_around(
            time.time_ns() // 1000, columns[COLUMNS.index("occurred_at_us")]
        )
        with self._pool.connection() as conn:
            inserted = {row[0] for row in conn.execute(self._insert, columns).fetchall()}
        # A first occurrence that the database already had is a duplicate too.
        return [
            flag and event.event_id in inserted for flag, event in zip(flags, events, strict=True)
        ]

    def read_frame(
        self, since_us: int | None = None, columns: Sequence[str] = COLUMNS
    ) -> pd.DataFrame:
        query, params = _select(columns, since_us, "%s")
        # A server-side cursor: the rows come over in chunks, not all at once.
        with self._pool.connection() as conn, conn.cursor(name="drape_read_frame") as cursor:
            cursor.execute(query, params)
            frame = _frame_in_chunks(cursor, columns)
        return self._full(frame) if since_us is None else frame

    @contextlib.contextmanager
    def _old_events(self, before_us: int) -> Iterator[tuple[int, Iterator[pd.DataFrame]]]:
        with self._pool.connection() as conn:
            horizon = _snapshot_horizon(conn)
            # Only rows of finished transactions: exactly those the deletion will find.
            with conn.cursor(name="drape_old_events") as cursor:
                cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM events "
                               "WHERE occurred_at_us < %s AND xact < %s", (before_us, horizon))  # fmt: skip
                yield horizon, _chunks(cursor, COLUMNS)

    def _replace_old(
        self, before_us: int, bound: int, aggregates: pd.DataFrame, expected: int
    ) -> int:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("DELETE FROM event_aggregates")
            # COPY: the aggregates are rewritten whole, hundreds of thousands of rows (one
            # INSERT per row took 30 s for 600,000).
            with (
                conn.cursor() as cursor,
                cursor.copy(
                    f"COPY event_aggregates ({', '.join(AGGREGATE_COLUMNS)}) FROM STDIN"
                ) as copy,
            ):
                for row in aggregates.itertuples(index=False, name=None):
                    copy.write_row(row)
            # Last: dropping a partition holds the whole table until the commit.
            deleted, dropped = partitions.remove_compacted(conn, before_us, bound)
            if deleted != expected:  # another compaction ran meanwhile: leave it all as it was
                raise RuntimeError(f"compaction read {expected} events but would delete {deleted}")
        return dropped

    def _read_new_rows(
        self,
        after: Watermark | None,
        columns: Sequence[str],
        consume: Callable[[pd.DataFrame], None],
    ) -> Watermark:
        wanted = list(columns)
        _select(wanted, None, "%s")  # checks the columns
        others = [c for c in wanted if c != "event_id"]
        after = after or Watermark()
        seen: list[str] = []
        with self._pool.connection() as conn:
            # One snapshot for the horizon and the rows.
            horizon = _snapshot_horizon(conn)
            # Event ids only where needed: for the rows a next read may see again (at or past
            # the horizon) and for skipping what the last read returned; a full read of
            # millions of rows needs a handful.
            ids_from = 0 if "event_id" in wanted or after.seen else horizon
            with conn.cursor(name="drape_read_new") as cursor:
                cursor.execute(
                    f"SELECT {', '.join(others)}{', ' if others else ''}"
                    "CASE WHEN xact >= %s THEN event_id ELSE '' END, xact FROM events "
                    "WHERE xact >= %s ORDER BY xact", (ids_from, after.position),
                )  # fmt: skip
                for chunk in _chunks(cursor, (*others, "event_id", "xact")):
                    xact = chunk.pop("xact").to_numpy(dtype=np.int64)
                    # Rows at or past the horizon may yet be joined by transactions still
                    # open: the next read starts at the horizon again and skips these
                    # (returned now or before).
                    seen.extend(chunk["event_id"].to_numpy()[xact >= horizon].tolist())
                    if after.seen:
                        chunk = chunk[~chunk["event_id"].isin(after.seen).to_numpy()]
                        chunk = chunk.reset_index(drop=True)
                    consume(chunk[wanted])
        return Watermark(max(horizon, after.position), frozenset(seen))

    def append_exposures(self, exposures: Sequence[StoredExposure]) -> list[bool]:
        if not exposures:
            return []
        first: dict[str, StoredExposure] = {}
        for exposure in exposures:
            first.setdefault(exposure.recommendation_id, exposure)
        with self._pool.connection() as conn, conn.transaction():
            heads = [e.rows()[0] for e in first.values()]
            inserted = set()
            # One statement per list keeps ON CONFLICT's answer per id; lists are few per batch.
            for head in heads:
                row = conn.execute(
                    _sql(_EXPOSURE_HEAD, "%s") + " ON CONFLICT (recommendation_id) DO NOTHING "
                    "RETURNING recommendation_id", head,
                ).fetchone()  # fmt: skip
                if row:
                    inserted.add(row[0])
            fresh = [first[rid] for rid in inserted]
            with conn.cursor() as cursor:
                cursor.executemany(_sql(_EXPOSURE_INSERTS[0], "%s"),
                                   [r for e in fresh for r in e.rows()[1]])  # fmt: skip
                cursor.executemany(_sql(_EXPOSURE_INSERTS[1], "%s"),
                                   [r for e in fresh for r in e.rows()[2]])  # fmt: skip
        flags = []
        for exposure in exposures:
            flags.append(exposure.recommendation_id in inserted)
            inserted.discard(exposure.recommendation_id)
        return flags

    def record_definitions(self, definitions: Sequence[tuple[str, str, str]]) -> None:
        now_us = time.time_ns() // 1000
        with self._pool.connection() as conn, conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO experiment_definitions VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (experiment, version) DO NOTHING",
                [(*d, now_us) for d in definitions],
            )

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._pool.connection() as conn:
            return conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall()

    def close(self) -> None:
        self._pool.close()


def _snapshot_horizon(conn: Any) -> int:
    """Starts a repeatable-read transaction (one snapshot for what follows) and returns its
    oldest open transaction: every row written by an older one is committed and visible."""
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    return int(conn.execute(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()[0]
    )  # fmt: skip


def _add_write_order(conn: Any) -> None:
    """The ``xact`` column (the id of the transaction that wrote each row) that incremental
    reads order by; rows stored before it existed get 0, older than anything new."""
    has = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'events' AND column_name = 'xact'"
    ).fetchone()
    if has:
        return
    conn.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS xact BIGINT NOT NULL DEFAULT 0")
    conn.execute(
        "ALTER TABLE events ALTER COLUMN xact SET DEFAULT pg_current_xact_id()::text::bigint"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS events_xact ON events (xact)")


def open_event_store(url: str, *, sqlite_synchronous: str = "FULL") -> EventStore:
    """Opens the store a URL names: ``sqlite:///path.db`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        return SqliteEventStore(Path(url.removeprefix("sqlite:///")), sqlite_synchronous)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresEventStore(url)
    raise ValueError(f"unsupported event store URL {url!r}: use sqlite:///PATH or postgresql://...")

"""The durable event log: one interface, SQLite (default) and PostgreSQL implementations.

``append`` returns only after the events are committed to disk, so an
acknowledged event survives the process being killed. It is idempotent on
``event_id``: an id already stored (or repeated within the batch) is reported
as a duplicate and left untouched.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Protocol

import pandas as pd

# What training and ranking read: a quarter of the columns, a fraction of the time.
INTERACTION_COLUMNS = ("event_id", "type", "user_id", "garment_id", "occurred_at_us")
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
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id          TEXT PRIMARY KEY,
    type              TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    garment_id        TEXT NOT NULL,
    occurred_at_us    BIGINT NOT NULL,
    received_at_us    BIGINT NOT NULL,
    experiment        TEXT NOT NULL,
    variant           TEXT NOT NULL,
    rating            INTEGER NOT NULL,
    recommendation_id TEXT NOT NULL,
    value_minor       BIGINT NOT NULL
)"""
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS events_occurred ON events (occurred_at_us)",
    "CREATE INDEX IF NOT EXISTS events_variant ON events (experiment, variant)",
)


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

    def count(self) -> int: ...

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


def _typed_frame(rows: list[tuple[object, ...]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    for column in ("occurred_at_us", "received_at_us", "value_minor"):
        if column in frame:
            frame[column] = frame[column].astype("int64")
    if "rating" in frame:
        frame["rating"] = frame["rating"].astype("int16")
    return frame


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


class SqliteEventStore:
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
                self._db.execute(_SCHEMA)
                for statement in _INDEXES:
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
        with self._lock:
            # IMMEDIATE takes the write lock before reading, so no other writer
            # can slip the same id in between the check and the insert.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                existing: set[str] = set()
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    rows = self._db.execute(
                        f"SELECT event_id FROM events WHERE event_id IN ({','.join('?' * len(chunk))})",
                        chunk,
                    )
                    existing.update(r[0] for r in rows)
                flags, fresh = _flags(events, existing)
                self._db.executemany(self._insert, [astuple(e) for e in fresh])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return flags

    def read_frame(
        self, since_us: int | None = None, columns: Sequence[str] = COLUMNS
    ) -> pd.DataFrame:
        query, params = _select(columns, since_us, "?")
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
            rows = db.execute(query, params).fetchall()
        return _typed_frame(rows, columns)

    def count(self) -> int:
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresEventStore:
    """PostgreSQL through a psycopg connection pool; one statement per batch."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True, timeout=10)
        with self._pool.connection() as conn:
            conn.execute(_SCHEMA)
            for statement in _INDEXES:
                conn.execute(statement)
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
        self._insert = (
            f"INSERT INTO events ({', '.join(COLUMNS)}) SELECT * FROM unnest({arrays}) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
        )

    def append(self, events: Sequence[StoredEvent]) -> list[bool]:
        if not events:
            return []
        # Within a batch only the first occurrence of an id is sent.
        flags, fresh = _flags(events, set())
        columns = [list(col) for col in zip(*(astuple(e) for e in fresh), strict=True)]
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
        with self._pool.connection() as conn:
            rows = conn.execute(query, params).fetchall()
        return _typed_frame(rows, columns)

    def count(self) -> int:
        with self._pool.connection() as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def close(self) -> None:
        self._pool.close()


def open_event_store(url: str, *, sqlite_synchronous: str = "FULL") -> EventStore:
    """Opens the store a URL names: ``sqlite:///path.db`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        return SqliteEventStore(Path(url.removeprefix("sqlite:///")), sqlite_synchronous)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresEventStore(url)
    raise ValueError(f"unsupported event store URL {url!r}: use sqlite:///PATH or postgresql://...")

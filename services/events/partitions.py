"""PostgreSQL's events table, partitioned by time (declarative range partitioning on
``occurred_at_us``), so that retention drops whole partitions instead of deleting rows.

- One partition per week of occurrence (UTC, weeks counted from the epoch), named after its
  first day: ``events_p20260105``. A ``DEFAULT`` partition catches any row whose week has
  none (one that could not be made); retention deletes from it row by row.
- A unique index on a partitioned table must hold its partition key, so ``event_id`` alone
  cannot be one. Idempotency lives in ``event_ids`` (``event_id`` its primary key): one
  statement stores a batch's new ids and, for exactly those, the events.
- Partitions are made before the rows that need them are written: the weeks around now
  (four ahead) at open and at each append, and any other week the first time a batch holds
  it. A week refused one (its lock not had in time) is tried again a minute later. Each is made empty and then
  attached, which locks the parent table in SHARE UPDATE EXCLUSIVE mode (reads and writes go
  on) rather than the ACCESS EXCLUSIVE of ``CREATE TABLE ... PARTITION OF``.
- Dropping a partition locks the parent table in ACCESS EXCLUSIVE mode, so a compaction
  drops last, just before its commit, and waits at most ``DROP_LOCK_TIMEOUT`` for the lock;
  without it, that partition's rows are deleted instead (the same result, slower), and the
  empty table is dropped by a later compaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("drape.events")

US_PER_DAY = 86_400 * 1_000_000
PERIOD_US = 7 * US_PER_DAY
# Weeks made ahead of now when a store opens (so that live traffic never waits for one).
WEEKS_AHEAD = 4
DROP_LOCK_TIMEOUT = "2s"
ATTACH_LOCK_TIMEOUT = "5s"
RETRY_REFUSED_S = 60.0
# Serialises schema changes by several processes opening one store at once.
SCHEMA_LOCK = 0x64726170  # "drap"


def period_start(occurred_at_us: int) -> int:
    return (occurred_at_us // PERIOD_US) * PERIOD_US


def partition_name(start_us: int) -> str:
    import datetime as dt

    day = dt.datetime.fromtimestamp(start_us / 1e6, dt.UTC)
    return f"events_p{day:%Y%m%d}"


def create_schema(conn: Any, columns_sql: str) -> None:
    """The partitioned events table, its default partition, its indexes and ``event_ids``.
    ``xact`` is the id of the transaction that wrote each row (incremental reads order by
    it); ``event_ids`` keeps it too, so that retention removes exactly the ids of the events
    it removes."""
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS events ({columns_sql},\n"
        "    xact BIGINT NOT NULL DEFAULT pg_current_xact_id()::text::bigint\n"
        ") PARTITION BY RANGE (occurred_at_us)"
    )
    conn.execute("CREATE TABLE IF NOT EXISTS events_default PARTITION OF events DEFAULT")
    conn.execute("CREATE INDEX IF NOT EXISTS events_xact ON events (xact)")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS event_ids (event_id TEXT PRIMARY KEY, "
        "occurred_at_us BIGINT NOT NULL, "
        "xact BIGINT NOT NULL DEFAULT pg_current_xact_id()::text::bigint)"
    )


def kind_of_events(conn: Any) -> str | None:
    """``p`` for a partitioned events table, ``r`` for a plain one, None for none."""
    row = conn.execute(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = 'events' AND n.nspname = current_schema()"
    ).fetchone()
    return None if row is None else str(row[0])


def partition_plain_table(conn: Any, columns: Iterable[str], columns_sql: str) -> int:
    """Moves a plain events table (as stored before partitioning) into the partitioned one,
    in the caller's transaction: every row with its ``xact`` (watermarks stay valid) and
    every id into ``event_ids``. Returns the rows moved."""
    names = ", ".join(columns)
    conn.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    for index in ("events_occurred", "events_variant", "events_xact"):
        conn.execute(f"DROP INDEX IF EXISTS {index}")
    create_schema(conn, columns_sql)
    low, high = conn.execute(
        "SELECT min(occurred_at_us), max(occurred_at_us) FROM events_unpartitioned"
    ).fetchone()
    if low is not None:
        for start in range(period_start(int(low)), int(high) + 1, PERIOD_US):
            _attach(conn, start)
    moved = conn.execute(
        f"INSERT INTO events ({names}, xact) SELECT {names}, xact FROM events_unpartitioned"
    ).rowcount
    conn.execute(
        "INSERT INTO event_ids (event_id, occurred_at_us, xact) "
        "SELECT event_id, occurred_at_us, xact FROM events_unpartitioned"
    )
    conn.execute("DROP TABLE events_unpartitioned")
    log.warning("events: moved %d stored events into weekly partitions", moved)
    return moved


def _attach(conn: Any, start_us: int) -> str:
    """Makes the week starting at ``start_us`` a partition (in the caller's transaction)."""
    name = partition_name(start_us)
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    conn.execute(
        f"ALTER TABLE events ATTACH PARTITION {name} "
        f"FOR VALUES FROM ({start_us}) TO ({start_us + PERIOD_US})"
    )
    return name


def bounds(conn: Any) -> dict[str, tuple[int, int] | None]:
    """Every partition: its range of ``occurred_at_us`` (None for the default one)."""
    rows = conn.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "JOIN pg_namespace n ON n.oid = p.relnamespace "
        "WHERE p.relname = 'events' AND n.nspname = current_schema()"
    ).fetchall()
    found: dict[str, tuple[int, int] | None] = {}
    for name, bound in rows:
        if bound == "DEFAULT":
            found[str(name)] = None
        else:  # FOR VALUES FROM ('lo') TO ('hi')
            low, high = (part.split(")")[0].strip("' ") for part in bound.split("(")[1:3])
            found[str(name)] = (int(low), int(high))
    return found


class Partitions:
    """The weeks that have a partition, as this process last saw them; makes missing ones."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._known: set[int] = set()
        # Weeks refused a partition, and when to try again (a lock not had is passing).
        self._refused: dict[int, float] = {}
        self._lock = threading.Lock()

    def ensure(self, times_us: Iterable[int]) -> None:
        """Makes a partition for each week of ``times_us`` that has none. A week that cannot
        get one (the default partition already holds rows of it, or the lock was not had in
        time) keeps its rows in the default partition."""
        import psycopg

        now = time.monotonic()
        weeks = {period_start(int(t)) for t in times_us} - self._known
        weeks = {w for w in weeks if self._refused.get(w, 0.0) <= now}
        if not weeks:
            return
        made, refused = set(), set()
        with self._lock, self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            known = {b[0] for b in bounds(conn).values() if b is not None}
            for start in sorted(weeks - known):
                try:
                    with conn.transaction():  # a savepoint: one refusal leaves the others
                        conn.execute(f"SET LOCAL lock_timeout = '{ATTACH_LOCK_TIMEOUT}'")
                        _attach(conn, start)
                    made.add(start)
                except psycopg.Error as exc:
                    refused.add(start)
                    log.warning("events: no partition for the week of %s (%s); its rows go to "
                                "the default partition", partition_name(start), exc)  # fmt: skip
        self._known |= known | made
        for week in made:
            self._refused.pop(week, None)
        self._refused.update(dict.fromkeys(refused, now + RETRY_REFUSED_S))

    def ensure_around(self, now_us: int, times_us: Iterable[int] = ()) -> None:
        """This week, the last one and the next ``WEEKS_AHEAD``, and the weeks of
        ``times_us``."""
        start = period_start(now_us)
        self.ensure([*(start + k * PERIOD_US for k in range(-1, WEEKS_AHEAD + 1)), *times_us])


def remove_compacted(conn: Any, before_us: int, bound: int) -> tuple[int, int]:
    """In the caller's transaction, removes the events that occurred before ``before_us``
    written by transactions older than ``bound`` (exactly those a compaction read) and their
    ids. Partitions wholly before ``before_us`` are dropped when nothing newer was written to
    them and the lock is had in time; the rest row by row. Call it last before the commit:
    a drop holds the parent table until then. Returns (events removed, of which by dropping
    whole partitions)."""
    import psycopg

    everything = bounds(conn)
    whole = sorted(n for n, b in everything.items() if b is not None and b[1] <= before_us)
    partial = sorted(n for n, b in everything.items() if b is None or b[0] < before_us < b[1])
    removed = sum(_delete(conn, name, before_us, bound) for name in partial)
    ids = conn.execute("DELETE FROM event_ids WHERE occurred_at_us < %s AND xact < %s",
                       (before_us, bound)).rowcount  # fmt: skip
    droppable: list[tuple[str, int]] = []
    for name in whole:
        try:
            with conn.transaction():  # a savepoint: a lock not had leaves the rest as it was
                conn.execute(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")
                conn.execute(f"LOCK TABLE {name} IN SHARE MODE")  # no more writes to it
                rows, newer = conn.execute(
                    f"SELECT count(*), count(*) FILTER (WHERE xact >= %s) FROM {name}", (bound,)
                ).fetchone()
        except psycopg.Error:
            removed += _delete(conn, name, before_us, bound)
            continue
        if newer:  # written after the compaction read: those rows stay
            removed += _delete(conn, name, before_us, bound)
        else:
            droppable.append((name, int(rows)))
    dropped = 0
    if droppable:
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")
                conn.execute(f"DROP TABLE {', '.join(name for name, _ in droppable)}")
            dropped = sum(rows for _, rows in droppable)
        except psycopg.Error as exc:
            log.warning("events: partitions kept, their rows deleted instead (%s)", exc)
            removed += sum(_delete(conn, name, before_us, bound) for name, _ in droppable)
    if ids != removed + dropped:
        raise RuntimeError(f"compaction removed {removed + dropped} events but {ids} ids")
    return removed + dropped, dropped


def _delete(conn: Any, table: str, before_us: int, bound: int) -> int:
    return int(conn.execute(f"DELETE FROM {table} WHERE occurred_at_us < %s AND xact < %s",
                            (before_us, bound)).rowcount)  # fmt: skip

"""Retention: events older than a horizon become per-(user, garment, type) aggregates.

The recommender weighs an event ``weight[type] * 0.5 ** (age / half_life)``. For one user,
garment and type, the sum over many old events equals one row carrying ``strength = sum of
0.5 ** ((last - t) / half_life)`` at the time ``last`` of the newest of them:
``weight * strength * 0.5 ** ((now - last) / half_life)`` is the same sum, so training and
popularity stay exact (to float rounding) while the table keeps one row per group instead
of every event. What the aggregates do not keep: each event's own time (a user's latest
garments see the group once, at its last time), separate purchase days (a repurchase habit
older than the horizon counts as one purchase), and the experiment, variant and order
fields the analysts' reports read, so the events themselves can be archived to Parquet
first (``--archive``), where nothing is lost.

A compaction reads the old events from one snapshot, writes the archive, then in one
transaction deletes exactly the events it read and replaces the aggregates: an event still
being written meanwhile stays an event, for the next compaction.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

US_PER_DAY = 86_400 * 1_000_000
AGGREGATE_COLUMNS = ("user_id", "garment_id", "type", "events", "strength", "last_us",
                     "half_life_days")  # fmt: skip
AGGREGATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS event_aggregates (
    user_id        TEXT NOT NULL,
    garment_id     TEXT NOT NULL,
    type           TEXT NOT NULL,
    events         BIGINT NOT NULL,
    strength       DOUBLE PRECISION NOT NULL,
    last_us        BIGINT NOT NULL,
    half_life_days DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (user_id, garment_id, type)
)"""
KEY = ["user_id", "garment_id", "type"]


@dataclass(frozen=True)
class Compaction:
    """What one compaction did."""

    before_us: int
    events: int  # events turned into aggregates (and deleted)
    groups: int  # aggregate rows afterwards
    archive: str | None  # where the events went, if archived
    # Of ``events``, those removed by dropping whole partitions (PostgreSQL) rather than
    # deleted row by row.
    dropped: int = 0


def aggregate(chunks: Iterable[pd.DataFrame], half_life_days: float) -> pd.DataFrame:
    """Aggregate rows (:data:`AGGREGATE_COLUMNS`) of event frames read a chunk at a time."""
    parts = []
    for chunk in chunks:
        if chunk.empty:
            continue
        frame = chunk[KEY].copy()
        frame["events"] = 1
        frame["last_us"] = chunk["occurred_at_us"].to_numpy(dtype=np.int64)
        frame["strength"] = 1.0
        parts.append(_merge(frame, half_life_days))
    if not parts:
        return pd.DataFrame(columns=list(AGGREGATE_COLUMNS))
    merged = _merge(pd.concat(parts, ignore_index=True), half_life_days)
    merged["half_life_days"] = half_life_days
    return merged[list(AGGREGATE_COLUMNS)]


def merge(existing: pd.DataFrame, new: pd.DataFrame, half_life_days: float) -> pd.DataFrame:
    """Aggregates kept before and new ones, as one row per group."""
    if existing.empty:
        return new
    merged = _merge(pd.concat([existing[new.columns], new], ignore_index=True), half_life_days)
    merged["half_life_days"] = half_life_days
    return merged[list(AGGREGATE_COLUMNS)]


def _merge(frame: pd.DataFrame, half_life_days: float) -> pd.DataFrame:
    """One row per group: the newest time, strengths moved to it and summed, counts summed."""
    last = frame.groupby(KEY, sort=False)["last_us"].transform("max").to_numpy()
    moved = frame["strength"].to_numpy(dtype=np.float64) * np.exp2(
        (frame["last_us"].to_numpy() - last) / US_PER_DAY / half_life_days
    )
    frame = frame.assign(strength=moved)
    return frame.groupby(KEY, sort=False, as_index=False).agg(
        events=("events", "sum"), strength=("strength", "sum"), last_us=("last_us", "max")
    )


def as_events(aggregates: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """Aggregate rows in the shape of an event read (the asked ``columns``), each carrying its
    ``strength`` and dated at its last event."""
    last = aggregates["last_us"].to_numpy(dtype=np.int64)
    made = {
        "event_id": lambda: ("aggregate:" + aggregates["user_id"].astype(str) + "/"
                             + aggregates["garment_id"].astype(str) + "/"
                             + aggregates["type"].astype(str)),
        "occurred_at_us": lambda: last,
        "received_at_us": lambda: last,
    }  # fmt: skip
    frame = pd.DataFrame({
        c: made[c]() if c in made else aggregates[c]
        for c in columns if c in made or c in ("type", "user_id", "garment_id")
    })  # fmt: skip
    return frame.assign(strength=aggregates["strength"].to_numpy(dtype=np.float64))


def with_aggregates(events: pd.DataFrame, aggregates: pd.DataFrame) -> pd.DataFrame:
    """A full read: the stored events (strength 1) and the aggregates."""
    if aggregates.empty:
        return events
    rows = as_events(aggregates, events.columns)
    return pd.concat([events.assign(strength=1.0), rows], ignore_index=True)


class Archive:
    """Parquet files of archived events, on local disk or any fsspec URL: one file per
    compaction, written under a temporary name and moved into place when complete."""

    def __init__(self, where: str, before_us: int) -> None:
        self.where = where.rstrip("/")
        stamp = pd.Timestamp(before_us, unit="us", tz="UTC").strftime("%Y%m%dT%H%M%S")
        self.name = f"events-before-{stamp}-{os.getpid()}-{int(pd.Timestamp.now().value)}.parquet"
        self._writer = None
        self._local: Path | None = None
        self.rows = 0

    @property
    def remote(self) -> bool:
        return "://" in self.where

    def write(self, chunk: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(chunk, preserve_index=False)
        if self._writer is None:
            if not self.remote:
                Path(self.where).mkdir(parents=True, exist_ok=True)
            # Locally beside its final name (one rename); for a URL, uploaded once complete.
            folder = None if self.remote else self.where
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".events-", suffix=".parquet.part")
            os.close(fd)
            self._local = Path(tmp)
            self._writer = pq.ParquetWriter(str(self._local), table.schema)
        self._writer.write_table(table)
        self.rows += len(chunk)

    def close(self) -> str | None:
        """Moves the file into place; its URL or path (None if nothing was written)."""
        if self._writer is None or self._local is None:
            return None
        self._writer.close()
        target = f"{self.where}/{self.name}"
        try:
            if self.remote:
                import fsspec

                fs, path = fsspec.core.url_to_fs(target)
                fs.put_file(str(self._local), path)
            else:
                os.replace(self._local, target)
        finally:
            self._local.unlink(missing_ok=True)
        return target

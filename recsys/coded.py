"""An event log held as integer codes rather than as a frame of strings.

A frame of the event store's columns holds each event's user, garment and type as Python
strings: about 195 bytes an event as the store hands them over, 3.9 GB for 20M events. A
full build of the recommend service's aggregates needs the log whole but not its strings:
:class:`EventCoder` takes the store's chunks one at a time and keeps each event as a user
code, a garment code, a type code and a time (17 bytes; 25 with a strength, which only
compacted aggregates carry), and each distinct id once.

Codes are given in first-seen order, so ``users[user]`` is the events' user ids in storage
order, and an :class:`~drape.recsys.idmap.IdMap` extended by ``users`` numbers them as one
extended by the whole column would.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import pandas as pd

from drape.recsys.interactions import type_weights
from drape.recsys.memory import release_free_memory

# The store's columns a coded log keeps (and :meth:`CodedEvents.frame` gives back).
CODED_COLUMNS = ("type", "user_id", "garment_id", "occurred_at_us")


@dataclass(frozen=True)
class CodedEvents:
    """Events in storage order: ``users[user[i]]`` is event i's user id, and so on."""

    users: np.ndarray  # distinct user ids (object), first seen first
    garments: np.ndarray  # distinct garment ids (object), first seen first
    types: tuple[str, ...]  # distinct event types, first seen first
    user: np.ndarray  # int32 code per event
    garment: np.ndarray  # int32 code per event
    type: np.ndarray  # int8 code per event
    occurred_at_us: np.ndarray  # int64
    strength: np.ndarray | None  # float64 per event (1 for stored events); None: all 1

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def of(cls, events: pd.DataFrame) -> CodedEvents:
        """A frame of the store's columns (an optional ``strength`` too), coded."""
        coder = EventCoder()
        coder.add(events)
        return coder.finish()

    def type_weights(self, weights: Mapping[str, float]) -> np.ndarray:
        """Each event's type weight (0 for types not in ``weights``), without its strength."""
        per_type = type_weights(pd.Series(self.types, dtype=object), weights)
        return per_type[self.type] if len(self.types) else np.zeros(len(self))

    def weights(self, weights: Mapping[str, float]) -> np.ndarray:
        """Each event's type weight times its strength: its undecayed confidence."""
        weight = self.type_weights(weights)
        return weight if self.strength is None else weight * self.strength

    def of_types(self, names: Collection[str]) -> np.ndarray:
        """Which events are of one of the types ``names``."""
        codes = [code for code, name in enumerate(self.types) if name in names]
        return np.isin(self.type, np.asarray(codes, dtype=np.int8))

    def frame(self, mask: np.ndarray) -> pd.DataFrame:
        """The events where ``mask`` holds, as the store's columns (and their strength)."""
        frame = pd.DataFrame({
            "type": np.asarray(self.types, dtype=object)[self.type[mask]],
            "user_id": self.users[self.user[mask]],
            "garment_id": self.garments[self.garment[mask]],
            "occurred_at_us": self.occurred_at_us[mask],
        })  # fmt: skip
        if self.strength is not None:
            frame["strength"] = self.strength[mask]
        return frame


class _Codes:
    """Distinct values to dense codes, first seen first. Not an
    :class:`~drape.recsys.idmap.IdMap` extended per chunk: that rebuilds its pandas index on
    every extend, O(all ids) for each of a full read's hundreds of chunks, where this dict
    grows by the new ids only (and goes with the coder, so serving never holds it)."""

    def __init__(self) -> None:
        self.codes: dict[object, int] = {}

    def of(self, values: pd.Series, column: str) -> np.ndarray:
        local, uniques = pd.factorize(values)
        if len(local) and int(local.min()) < 0:
            raise ValueError(f"events without a {column}")
        codes, distinct = self.codes, uniques.tolist()
        # Looked up in one pass at C speed (no Python step per id); the new ones appended.
        table = np.fromiter(map(codes.get, distinct, repeat(-1)), dtype=np.int64,
                            count=len(distinct))  # fmt: skip
        new = np.flatnonzero(table < 0)
        if len(new):
            start = len(codes)
            table[new] = np.arange(start, start + len(new))
            codes.update(zip(map(distinct.__getitem__, new.tolist()), table[new].tolist(),
                             strict=True))  # fmt: skip
        return table[local]

    def distinct(self) -> np.ndarray:
        return np.array(list(self.codes), dtype=object)


class EventCoder:
    """Builds a :class:`CodedEvents` from chunks of the store's columns, in storage order
    (a ``strength`` column on some chunks: the others' events have strength 1)."""

    def __init__(self) -> None:
        self._users, self._garments, self._types = _Codes(), _Codes(), _Codes()
        self._parts: dict[str, list[np.ndarray]] = {
            name: [] for name in ("user", "garment", "type", "occurred_at_us", "strength")
        }
        self._with_strength = False

    def add(self, chunk: pd.DataFrame) -> None:
        missing = [c for c in CODED_COLUMNS if c not in chunk.columns]
        if missing:
            raise ValueError(f"events without the columns {missing}")
        if chunk.empty:
            return
        parts = self._parts
        parts["user"].append(self._users.of(chunk["user_id"], "user_id").astype(np.int32))
        parts["garment"].append(
            self._garments.of(chunk["garment_id"], "garment_id").astype(np.int32)
        )
        types = self._types.of(chunk["type"], "type")
        if len(self._types.codes) > np.iinfo(np.int8).max:
            raise ValueError(f"more than {np.iinfo(np.int8).max} event types")
        parts["type"].append(types.astype(np.int8))
        parts["occurred_at_us"].append(chunk["occurred_at_us"].to_numpy(dtype=np.int64))
        if "strength" in chunk.columns:
            self._with_strength = True
            parts["strength"].append(chunk["strength"].to_numpy(dtype=np.float64))
        else:
            parts["strength"].append(np.ones(len(chunk)) if self._with_strength else None)

    def finish(self) -> CodedEvents:
        """The events added so far; the coder's own copies are let go."""
        parts, self._parts = self._parts, {name: [] for name in self._parts}

        def joined(name: str, dtype: type) -> np.ndarray:
            arrays = parts.pop(name)
            whole = np.concatenate(arrays) if arrays else np.empty(0, dtype=dtype)
            del arrays
            release_free_memory()  # the chunks' pages back before the next column's copy
            return whole

        strength = None
        if self._with_strength:  # chunks before the first with a strength: all 1
            strength = np.concatenate([
                np.ones(len(user)) if given is None else given
                for user, given in zip(parts["user"], parts.pop("strength"), strict=True)
            ])  # fmt: skip
        return CodedEvents(
            self._users.distinct(), self._garments.distinct(),
            tuple(map(str, self._types.distinct())), joined("user", np.int32),
            joined("garment", np.int32), joined("type", np.int8),
            joined("occurred_at_us", np.int64), strength,
        )  # fmt: skip

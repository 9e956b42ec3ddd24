"""Checks incoming events and turns them into :class:`StoredEvent` rows.

Every rule names the field it guards, so a rejected event says exactly what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drape.services.events.store import StoredEvent
from drape.v1 import events_pb2

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")
# Experiment and variant names: what the experiments file allows.
_LABEL = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_TYPE_NAMES = {
    events_pb2.EVENT_TYPE_IMPRESSION: "impression",
    events_pb2.EVENT_TYPE_VIEW: "view",
    events_pb2.EVENT_TYPE_TRYON_VIEW: "tryon_view",
    events_pb2.EVENT_TYPE_ADD_TO_CART: "add_to_cart",
    events_pb2.EVENT_TYPE_PURCHASE: "purchase",
    events_pb2.EVENT_TYPE_RATING: "rating",
}
# 2000-01-01T00:00:00Z: anything older is a client bug (unset clock, seconds as ms...).
_EARLIEST_US = 946_684_800_000_000


@dataclass(frozen=True)
class Violation:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def _check_id(value: str, field: str, what: str) -> Violation | None:
    if not value:
        return Violation(field, f"{what} is required")
    if not _ID.fullmatch(value):
        return Violation(
            field,
            f"{what} must be 1-128 characters of letters, digits and ._:@/- (got {value[:40]!r})",
        )
    return None


def validate_event(
    event: events_pb2.Event, index: int, now_us: int, max_future_us: int
) -> StoredEvent | Violation:
    """The stored form of ``event``, or the first rule it breaks."""
    at = f"events[{index}]"
    if problem := _check_id(event.event_id, f"{at}.event_id", "event_id"):
        return problem
    type_name = _TYPE_NAMES.get(event.type)
    if type_name is None:
        known = ", ".join(events_pb2.EventType.Name(t) for t in _TYPE_NAMES)
        return Violation(f"{at}.type", f"unknown event type {event.type}; expected one of {known}")
    if problem := _check_id(event.user_id, f"{at}.user_id", "user_id"):
        return problem
    garment_required = type_name != "rating"
    if (event.garment_id or garment_required) and (
        problem := _check_id(event.garment_id, f"{at}.garment_id", "garment_id")
    ):
        return problem
    if type_name == "rating":
        if not 1 <= event.rating <= 5:
            return Violation(f"{at}.rating", f"a rating must be 1 to 5 (got {event.rating})")
    elif event.rating:
        return Violation(f"{at}.rating", f"only RATING events carry a rating (type is {type_name})")
    for name, value in (("experiment", event.experiment), ("variant", event.variant)):
        if value and not _LABEL.fullmatch(value):
            return Violation(
                f"{at}.{name}",
                f"{name} must match [a-z0-9][a-z0-9._-]{{0,63}} (got {value[:40]!r})",
            )
    if event.variant and not event.experiment:
        return Violation(f"{at}.experiment", "a variant needs the experiment it belongs to")
    if event.value_minor < 0:
        return Violation(f"{at}.value_minor", "must not be negative")
    if event.recommendation_id and (
        problem := _check_id(
            event.recommendation_id, f"{at}.recommendation_id", "recommendation_id"
        )
    ):
        return problem
    occurred_us = _time(event, "occurred_at", f"{at}.occurred_at", now_us, max_future_us)
    if isinstance(occurred_us, Violation):
        return occurred_us
    return StoredEvent(
        event_id=event.event_id,
        type=type_name,
        user_id=event.user_id,
        garment_id=event.garment_id,
        occurred_at_us=occurred_us,
        received_at_us=now_us,
        experiment=event.experiment,
        variant=event.variant,
        rating=event.rating,
        recommendation_id=event.recommendation_id,
        value_minor=event.value_minor,
    )


def _time(
    message: object, name: str, field: str, now_us: int, max_future_us: int
) -> int | Violation:
    """A Timestamp field in microseconds (``now_us`` when unset), or why it is not believable."""
    if not message.HasField(name):  # type: ignore[attr-defined]
        return now_us
    stamp = getattr(message, name)
    moment_us = stamp.seconds * 1_000_000 + stamp.nanos // 1000
    if moment_us < _EARLIEST_US:
        return Violation(field, "is before 2000-01-01; send UTC seconds")
    if moment_us > now_us + max_future_us:
        return Violation(field, f"is more than {max_future_us // 1_000_000} s in the future")
    return moment_us


MAX_EXPOSED_ITEMS = 200


def validate_exposure(
    exposure: events_pb2.Exposure, index: int, now_us: int, max_future_us: int
) -> int | Violation:
    """When the list was served (microseconds), or the first rule the exposure breaks."""
    at = f"exposures[{index}]"
    for name in ("recommendation_id", "user_id"):
        if problem := _check_id(getattr(exposure, name), f"{at}.{name}", name):
            return problem
    for i, arm in enumerate(exposure.arms):
        for name in ("experiment", "variant"):
            if not _LABEL.fullmatch(getattr(arm, name)):
                return Violation(f"{at}.arms[{i}].{name}",
                                 f"must match [a-z0-9][a-z0-9._-]{{0,63}} "
                                 f"(got {getattr(arm, name)[:40]!r})")  # fmt: skip
    if len({arm.experiment for arm in exposure.arms}) != len(exposure.arms):
        return Violation(f"{at}.arms", "names an experiment twice")
    if len(exposure.items) > MAX_EXPOSED_ITEMS:
        return Violation(f"{at}.items", f"at most {MAX_EXPOSED_ITEMS} garments per list")
    ranks = set()
    for i, item in enumerate(exposure.items):
        if problem := _check_id(item.garment_id, f"{at}.items[{i}].garment_id", "garment_id"):
            return problem
        if item.rank < 1 or item.rank in ranks:
            return Violation(
                f"{at}.items[{i}].rank", f"must be a distinct rank >= 1 (got {item.rank})"
            )
        ranks.add(item.rank)
    if not (exposure.latency_ms >= 0 and exposure.latency_ms < 3_600_000):
        return Violation(f"{at}.latency_ms", f"must be 0 to an hour (got {exposure.latency_ms})")
    return _time(exposure, "served_at", f"{at}.served_at", now_us, max_future_us)

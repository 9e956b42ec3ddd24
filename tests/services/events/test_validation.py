from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from drape.services.events.store import StoredEvent
from drape.services.events.validation import Violation, validate_event
from drape.v1 import events_pb2

NOW_US = 1_800_000_000_000_000
SKEW_US = 300_000_000


def _event(**fields) -> events_pb2.Event:
    base = {
        "event_id": "e1",
        "type": events_pb2.EVENT_TYPE_VIEW,
        "user_id": "u1",
        "garment_id": "g1",
    }
    base.update(fields)
    return events_pb2.Event(**base)


def _check(event: events_pb2.Event) -> StoredEvent | Violation:
    return validate_event(event, 3, NOW_US, SKEW_US)


def test_valid_event_is_converted():
    at = Timestamp(seconds=1_799_999_000)
    stored = _check(_event(occurred_at=at, experiment="exp-1", variant="b", value_minor=0))
    assert isinstance(stored, StoredEvent)
    assert stored.type == "view" and stored.occurred_at_us == 1_799_999_000_000_000
    assert stored.received_at_us == NOW_US


def test_missing_time_means_server_time():
    stored = _check(_event())
    assert isinstance(stored, StoredEvent) and stored.occurred_at_us == NOW_US


def test_rating_without_garment_is_valid():
    stored = _check(_event(type=events_pb2.EVENT_TYPE_RATING, garment_id="", rating=4))
    assert isinstance(stored, StoredEvent) and stored.rating == 4


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"event_id": ""}, "events[3].event_id", "event_id is required"),
        ({"event_id": "has space"}, "events[3].event_id", "must be 1-128 characters"),
        ({"user_id": "u1\n"}, "events[3].user_id", "must be 1-128 characters"),
        ({"experiment": "e", "variant": "b\n"}, "events[3].variant", "must match"),
        ({"type": events_pb2.EVENT_TYPE_UNSPECIFIED}, "events[3].type", "unknown event type 0"),
        ({"type": 42}, "events[3].type", "unknown event type 42"),
        ({"user_id": ""}, "events[3].user_id", "user_id is required"),
        ({"garment_id": ""}, "events[3].garment_id", "garment_id is required"),
        (
            {"type": events_pb2.EVENT_TYPE_RATING, "rating": 0},
            "events[3].rating",
            "must be 1 to 5 (got 0)",
        ),
        (
            {"type": events_pb2.EVENT_TYPE_RATING, "rating": 6},
            "events[3].rating",
            "must be 1 to 5 (got 6)",
        ),
        ({"rating": 3}, "events[3].rating", "only RATING events carry a rating"),
        ({"experiment": "e", "variant": "Treatment A"}, "events[3].variant", "must match"),
        ({"variant": "b"}, "events[3].experiment", "needs the experiment"),
        ({"value_minor": -5}, "events[3].value_minor", "must not be negative"),
        (
            {"occurred_at": Timestamp(seconds=1_800_001_000)},
            "events[3].occurred_at",
            "in the future",
        ),
        ({"occurred_at": Timestamp(seconds=1_700_000)}, "events[3].occurred_at", "before 2000"),
    ],
)
def test_each_rule_names_its_field(fields, field, reason):
    result = _check(_event(**fields))
    assert isinstance(result, Violation)
    assert result.field == field
    assert reason in result.reason

"""Experiment labels are the server's: derived from the assignment, and an event whose labels
contradict it is rejected and never counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from drape.recsys.experiments import Experiment, Variant
from drape.services.events.service import BusinessMetrics, EventsServicer
from drape.services.events.store import SqliteEventStore
from drape.services.runtime import InvalidArgument
from drape.v1 import events_pb2

EXPERIMENT = Experiment("checkout-2026", "s1", (Variant("control", 50, "popularity", False),
                                                Variant("previews", 50, "popularity", True)))  # fmt: skip


@pytest.fixture
def servicer(tmp_path: Path):
    store = SqliteEventStore(tmp_path / "events.db")
    registry = CollectorRegistry()
    yield EventsServicer(store, BusinessMetrics(registry), experiment=EXPERIMENT), registry
    store.close()


def _users() -> tuple[str, str]:
    """A user in each variant."""
    users = [f"u{i}" for i in range(50)]
    control = next(u for u in users if EXPERIMENT.assign(u).name == "control")
    treated = next(u for u in users if EXPERIMENT.assign(u).name == "previews")
    return control, treated


def _purchase(event_id: str, user: str, **labels) -> events_pb2.Event:
    return events_pb2.Event(event_id=event_id, type=events_pb2.EVENT_TYPE_PURCHASE, user_id=user,
                            garment_id="g1", value_minor=1000, **labels)  # fmt: skip


def _counted(registry: CollectorRegistry, variant: str) -> float:
    value = registry.get_sample_value(
        "drape_events_total",
        {"type": "purchase", "experiment": "checkout-2026", "variant": variant},
    )
    return value or 0.0


def test_unlabelled_events_get_their_users_assigned_variant(servicer):
    events, registry = servicer
    control, treated = _users()
    reply = events.record([_purchase("e1", control), _purchase("e2", treated)], False)
    assert reply.stored == 2
    frame = events.store.read_frame(columns=("event_id", "experiment", "variant"))
    labels = dict(
        zip(frame.event_id, zip(frame.experiment, frame.variant, strict=True), strict=True)
    )
    assert labels == {"e1": ("checkout-2026", "control"), "e2": ("checkout-2026", "previews")}
    assert _counted(registry, "control") == 1 and _counted(registry, "previews") == 1


def test_labels_that_match_the_assignment_are_kept(servicer):
    events, registry = servicer
    _, treated = _users()
    reply = events.record(
        [_purchase("e1", treated, experiment="checkout-2026", variant="previews")], False
    )
    assert reply.stored == 1 and _counted(registry, "previews") == 1


def test_a_contradicting_variant_is_rejected_and_never_counted(servicer):
    events, registry = servicer
    control, treated = _users()
    # A storefront that labels a control user as treated.
    with pytest.raises(InvalidArgument, match="is assigned to 'control', not 'previews'"):
        events.record([_purchase("e1", control, experiment="checkout-2026", variant="previews")],
                      False)  # fmt: skip
    assert events.store.count() == 0
    reply = events.record(
        [_purchase("e2", control, experiment="checkout-2026", variant="previews"),
         _purchase("e3", treated)],
        True,
    )  # fmt: skip
    assert reply.stored == 1 and reply.rejected == 1
    assert reply.results[0].field == "events[0].variant"
    assert _counted(registry, "previews") == 1 and _counted(registry, "control") == 0


def test_another_experiments_label_is_rejected(servicer):
    events, _ = servicer
    control, _ = _users()
    reply = events.record([_purchase("e1", control, experiment="old-test", variant="control")],
                          True)  # fmt: skip
    assert reply.rejected == 1 and "not the running experiment 'checkout-2026'" in (
        reply.results[0].reason
    )

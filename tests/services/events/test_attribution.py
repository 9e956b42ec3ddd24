"""Experiment labels are the server's: derived from the exposure an event cites, or from the
assignment, and an event whose labels contradict them is rejected and never counted. The
exposure log itself: idempotent, validated, counted per arm."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from drape.recsys.experiments import Experiment, Plan, Variant
from drape.services.events.service import BusinessMetrics, EventsServicer
from drape.services.events.store import SqliteEventStore
from drape.services.runtime import InvalidArgument
from drape.v1 import common_pb2, events_pb2

EXPERIMENT = Experiment("checkout-2026", "s1", (Variant("control", 50, "popularity", False),
                                                Variant("previews", 50, "popularity", True)))  # fmt: skip


@pytest.fixture
def servicer(tmp_path: Path):
    store = SqliteEventStore(tmp_path / "events.db")
    registry = CollectorRegistry()
    yield EventsServicer(store, BusinessMetrics(registry), plans=Plan((EXPERIMENT,))), registry
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
    assert reply.rejected == 1 and "is not in experiment 'old-test'" in reply.results[0].reason


def _exposure(rid: str, user: str, variant: str, garments=("g1", "g2")) -> events_pb2.Exposure:
    exposure = events_pb2.Exposure(recommendation_id=rid, user_id=user, strategy="popularity",
                                   model_version="pop-1", latency_ms=42.0)  # fmt: skip
    exposure.arms.add(experiment="checkout-2026", variant=variant, version="v1")
    for rank, garment in enumerate(garments, start=1):
        exposure.items.add(garment_id=garment, rank=rank,
                           preview_status=common_pb2.PREVIEW_STATUS_OK)  # fmt: skip
    return exposure


def _log(events: EventsServicer, *exposures: events_pb2.Exposure):
    return events.LogExposures(events_pb2.LogExposuresRequest(exposures=exposures), None)


def test_exposures_are_stored_once_and_counted_per_arm(servicer):
    events, registry = servicer
    control, _ = _users()
    reply = _log(events, _exposure("r1", control, "control"), _exposure("r1", control, "control"))
    assert (reply.stored, reply.duplicates) == (1, 1)
    assert _log(events, _exposure("r1", control, "control")).duplicates == 1
    rows = events.store.query("SELECT rank, garment_id, preview_status, user_id FROM "
                              "exposure_items ORDER BY rank")  # fmt: skip
    assert rows == [(1, "g1", "ok", control), (2, "g2", "ok", control)]
    assert events.store.query("SELECT experiment, variant, version FROM exposure_arms") == [
        ("checkout-2026", "control", "v1")
    ]
    labels = {"experiment": "checkout-2026", "variant": "control"}
    assert registry.get_sample_value("drape_exposures_total", labels) == 1
    assert (
        registry.get_sample_value("drape_exposed_items_total", {"preview_status": "ok", **labels})
        == 2
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda e: setattr(e, "recommendation_id", ""), "exposures[1].recommendation_id"),
        (lambda e: setattr(e, "user_id", "bad user"), "exposures[1].user_id"),
        (lambda e: setattr(e.items[1], "rank", 1), "exposures[1].items[1].rank"),
        (lambda e: setattr(e.items[0], "garment_id", ""), "exposures[1].items[0].garment_id"),
        (lambda e: setattr(e.arms[0], "variant", "Bad"), "exposures[1].arms[0].variant"),
        (lambda e: setattr(e, "latency_ms", -1.0), "exposures[1].latency_ms"),
        (lambda e: e.served_at.FromSeconds(10), "exposures[1].served_at"),
    ],
)
def test_a_bad_exposure_is_refused_with_its_field_and_nothing_is_stored(servicer, change, field):
    events, _ = servicer
    control, _ = _users()
    bad = _exposure("r2", control, "control")
    change(bad)
    with pytest.raises(InvalidArgument) as refused:
        _log(events, _exposure("r1", control, "control"), bad)
    assert refused.value.field == field
    assert events.store.query("SELECT count(*) FROM exposures") == [(0,)]


def test_an_event_citing_an_exposure_takes_its_arms_and_must_be_its_users(servicer):
    events, registry = servicer
    control, treated = _users()
    # Served under a variant the user is no longer assigned to (say, before a forced change):
    # the exposure, not today's assignment, decides.
    _log(events, _exposure("r1", control, "previews"))
    reply = events.record([_purchase("e1", control, recommendation_id="r1")], False)
    assert reply.stored == 1 and _counted(registry, "previews") == 1
    with pytest.raises(InvalidArgument, match="'r1' was served to another user"):
        events.record([_purchase("e2", treated, recommendation_id="r1")], False)
    # A list not logged (yet): the assignment decides.
    reply = events.record([_purchase("e3", control, recommendation_id="r-unknown")], False)
    assert reply.stored == 1 and _counted(registry, "control") == 1

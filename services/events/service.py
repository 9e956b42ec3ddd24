"""EventsService: the durable feedback log, the exposure log and the live business metrics.

Batches are atomic unless the caller sets ``allow_partial`` (see events.proto).
Business counters move only for newly stored events, so client retries never
inflate conversion numbers.

Experiment and variant are the server's, not the client's. An event that cites a
recommendation list (``recommendation_id``) is attributed to the arms that list was served
under, from the exposure log, and must come from the user it was served to; any other event
to its user's arms in the experiments running when it happened (the same file and hashing as
the recommend service, reloaded like it). An event whose labels contradict these is rejected,
so one storefront's bug cannot move an experiment's numbers; empty labels are filled in.
Counters count an event once for every experiment its user is in.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from drape.recsys.experiments import Plan, PlanSource, default_plan
from drape.services.events.store import (
    EVENT_TYPES,
    EventStore,
    ExposedItem,
    StoredEvent,
    StoredExposure,
    open_event_store,
)
from drape.services.events.validation import Violation, validate_event, validate_exposure
from drape.services.runtime import DrapeConfig, InvalidArgument, ServiceSpec, Unavailable
from drape.services.runtime.experiments import watch_experiments
from drape.services.runtime.previews import PREVIEW_STATUSES, preview_status_name
from drape.v1 import events_pb2, events_pb2_grpc

log = logging.getLogger("drape.events")

_OUTCOME = {True: events_pb2.EVENT_OUTCOME_STORED, False: events_pb2.EVENT_OUTCOME_DUPLICATE}


class BusinessMetrics:
    """Per-variant counters that the A/B recording rules are built on."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "drape_events",
            "Shopper events stored, by type and experiment variant.",
            ["type", "experiment", "variant"],
            registry=registry,
        )
        self.satisfaction = Histogram(
            "drape_satisfaction_rating",
            "Satisfaction ratings (1-5), by experiment variant.",
            ["experiment", "variant"],
            buckets=(1, 2, 3, 4, 5),
            registry=registry,
        )
        self.revenue = Counter(
            "drape_purchase_value_minor",
            "Purchase value in minor currency units, by experiment variant.",
            ["experiment", "variant"],
            registry=registry,
        )
        self.exposures = Counter(
            "drape_exposures",
            "Recommendation lists served and logged, by experiment variant.",
            ["experiment", "variant"],
            registry=registry,
        )
        self.exposed_items = Counter(
            "drape_exposed_items",
            "Garments shown in logged recommendation lists, by preview status and variant.",
            ["preview_status", "experiment", "variant"],
            registry=registry,
        )
        self.shares = Gauge(
            "drape_experiment_variant_share",
            "Each variant's assigned share of its experiment's users (0-1), for the sample-ratio "
            "alert.",
            ["experiment", "variant"],
            registry=registry,
        )
        self.definitions = Gauge(
            "drape_experiment_info",
            "1 for each experiment definition (name and version) the service assigns by.",
            ["experiment", "version"],
            registry=registry,
        )

    def record(self, event: StoredEvent, arms: dict[str, str]) -> None:
        for experiment, variant in arms.items():
            self.events.labels(event.type, experiment, variant).inc()
            if event.type == "rating":
                self.satisfaction.labels(experiment, variant).observe(event.rating)
            elif event.type == "purchase" and event.value_minor:
                self.revenue.labels(experiment, variant).inc(event.value_minor)

    def exposed(self, exposure: StoredExposure) -> None:
        for experiment, variant, _ in exposure.arms:
            self.exposures.labels(experiment, variant).inc()
            for item in exposure.items:
                self.exposed_items.labels(item.preview_status, experiment, variant).inc()

    def plan_changed(self, plan: Plan) -> None:
        """Publishes the plan's definitions and shares, and starts every series an arm will
        count at zero (a series that first appears at 1 loses that first increase in rate())."""
        self.definitions.clear()
        self.shares.clear()
        for experiment in plan.experiments:
            self.definitions.labels(experiment.name, experiment.version).set(1)
            total = sum(v.share for v in experiment.variants)
            for variant in experiment.variants:
                arm = (experiment.name, variant.name)
                self.shares.labels(*arm).set(variant.share / total)
                for kind in EVENT_TYPES:
                    self.events.labels(kind, *arm)
                self.satisfaction.labels(*arm)
                self.revenue.labels(*arm)
                self.exposures.labels(*arm)
                for status in PREVIEW_STATUSES:
                    self.exposed_items.labels(status, *arm)


class EventsServicer(events_pb2_grpc.EventsServiceServicer):
    def __init__(
        self,
        store: EventStore,
        metrics: BusinessMetrics,
        max_batch: int = 1000,
        max_future_skew_s: float = 300.0,
        plans: PlanSource | Plan | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self._plans = plans if plans is not None else default_plan()
        self.max_batch = max_batch
        self.max_future_us = int(max_future_skew_s * 1_000_000)

    def Record(
        self, request: events_pb2.RecordRequest, context: grpc.ServicerContext
    ) -> events_pb2.RecordResponse:
        return self.record(list(request.events), request.allow_partial)

    def _check_batch(self, size: int, what: str) -> None:
        if not size:
            raise InvalidArgument(what, f"at least one {what.rstrip('s')} is required")
        if size > self.max_batch:
            raise InvalidArgument(
                what, f"a batch holds at most {self.max_batch} {what} (got {size}); split it"
            )

    def validate(
        self, events: list[events_pb2.Event], allow_partial: bool
    ) -> list[tuple[StoredEvent, dict[str, str]] | Violation]:
        """Per event: the stored form with the arms it counts for, or the rule it breaks."""
        self._check_batch(len(events), "events")
        now_us = time.time_ns() // 1000
        checked = [validate_event(e, i, now_us, self.max_future_us) for i, e in enumerate(events)]
        cited = [c.recommendation_id for c in checked
                 if isinstance(c, StoredEvent) and c.recommendation_id]  # fmt: skip
        exposures = Exposures(
            self.store.exposures_of(cited) if cited else {}, self._plans.current()
        )
        attributed = [exposures.attribute(c, i) for i, c in enumerate(checked)]
        _raise_unless_partial([a for a in attributed if isinstance(a, Violation)], allow_partial)
        return attributed

    def record(
        self, events: list[events_pb2.Event], allow_partial: bool
    ) -> events_pb2.RecordResponse:
        """Validates, stores durably, counts; one result per input event."""
        checked = self.validate(events, allow_partial)
        valid = [c[0] for c in checked if not isinstance(c, Violation)]
        flags = iter(_stored(self.store.append, valid))
        response = events_pb2.RecordResponse()
        for source, outcome in zip(events, checked, strict=True):
            if isinstance(outcome, Violation):
                response.rejected += 1
                response.results.add(
                    event_id=source.event_id,
                    outcome=events_pb2.EVENT_OUTCOME_REJECTED,
                    field=outcome.field,
                    reason=outcome.reason,
                )
                continue
            is_new = next(flags)
            if is_new:
                response.stored += 1
                self.metrics.record(*outcome)
            else:
                response.duplicates += 1
            response.results.add(event_id=source.event_id, outcome=_OUTCOME[is_new])
        return response

    def LogExposures(
        self, request: events_pb2.LogExposuresRequest, context: grpc.ServicerContext
    ) -> events_pb2.LogExposuresResponse:
        self._check_batch(len(request.exposures), "exposures")
        now_us = time.time_ns() // 1000
        checked = [validate_exposure(e, i, now_us, self.max_future_us)
                   for i, e in enumerate(request.exposures)]  # fmt: skip
        _raise_unless_partial([c for c in checked if isinstance(c, Violation)], False)
        exposures = [
            _stored_exposure(source, served_at_us, now_us)
            for source, served_at_us in zip(request.exposures, checked, strict=True)
        ]
        flags = _stored(self.store.append_exposures, exposures)
        for exposure, is_new in zip(exposures, flags, strict=True):
            if is_new:
                self.metrics.exposed(exposure)
        stored = sum(flags)
        return events_pb2.LogExposuresResponse(
            request_id=request.request_id, stored=stored, duplicates=len(flags) - stored
        )


def _raise_unless_partial(violations: list[Violation], allow_partial: bool) -> None:
    if not violations or allow_partial:
        return
    more = (
        f" (and {len(violations) - 1} more: {'; '.join(map(str, violations[1:4]))})"
        if len(violations) > 1
        else ""
    )
    first = violations[0]
    raise InvalidArgument(first.field, f"{first.reason}{more}; nothing was stored")


def _stored(append, rows: Sequence[object]) -> list[bool]:
    """``append(rows)``, a store failure turned into UNAVAILABLE (the client retries)."""
    try:
        return append(rows)
    except Exception as exc:
        log.exception("event store write failed")
        raise Unavailable(f"the event store is unavailable ({type(exc).__name__}); retry") from exc


def _stored_exposure(source: events_pb2.Exposure, served_at_us: int, now_us: int) -> StoredExposure:
    return StoredExposure(
        recommendation_id=source.recommendation_id,
        user_id=source.user_id,
        served_at_us=served_at_us,
        received_at_us=now_us,
        strategy=source.strategy,
        model_version=source.model_version,
        latency_ms=source.latency_ms,
        arms=tuple((a.experiment, a.variant, a.version) for a in source.arms),
        items=tuple(
            ExposedItem(item.rank, item.garment_id, preview_status_name(item.preview_status))
            for item in source.items
        ),
    )


@dataclasses.dataclass(frozen=True)
class Exposures:
    """What attributing one batch needs: the exposure log's rows for the lists it cites (one
    query per batch) and the running plan."""

    served: dict[str, tuple[str, dict[str, str]]]  # recommendation id -> (user, arms)
    plan: Plan

    def arms_of(self, event: StoredEvent) -> dict[str, str] | Violation:
        rid = event.recommendation_id
        if rid and rid in self.served:
            user, arms = self.served[rid]
            if user != event.user_id:
                return Violation("recommendation_id", f"{rid!r} was served to another user, "
                                 f"not {event.user_id!r}")  # fmt: skip
            return arms
        # Not cited, or not logged yet (the log is written asynchronously): the assignment.
        assignment = self.plan.assign(event.user_id, event.occurred_at_us)
        return {a.experiment.name: a.variant.name for a in assignment.arms}

    def attribute(
        self, checked: StoredEvent | Violation, index: int
    ) -> tuple[StoredEvent, dict[str, str]] | Violation:
        """The event labelled with its arm (the first, when several), or a violation when
        the labels it came with contradict its exposure or its assignment."""
        if isinstance(checked, Violation):
            return checked
        arms = self.arms_of(checked)
        if isinstance(arms, Violation):
            return Violation(f"events[{index}].{arms.field}", arms.reason)
        hint = "send the labels of the recommendation response, or none (the server derives them)"
        experiment, variant = checked.experiment, checked.variant
        if experiment and experiment not in arms:
            running = ", ".join(repr(a) for a in arms) or "none"
            return Violation(
                f"events[{index}].experiment",
                f"user {checked.user_id!r} is not in experiment {experiment!r} (their "
                f"experiments: {running}); {hint}",
            )
        if variant and arms[experiment] != variant:
            return Violation(
                f"events[{index}].variant",
                f"user {checked.user_id!r} is assigned to {arms[experiment]!r}, not "
                f"{variant!r}; {hint}",
            )
        if not experiment and arms:
            experiment = next(iter(arms))
        labelled = dataclasses.replace(
            checked, experiment=experiment, variant=arms.get(experiment, "")
        )
        return labelled, arms


def build(config: DrapeConfig) -> ServiceSpec:
    cfg = config.events
    store = open_event_store(config.events_store_url(), sqlite_synchronous=cfg.sqlite_synchronous)
    registry = CollectorRegistry()
    metrics = BusinessMetrics(registry)

    def plan_changed(plan: Plan) -> None:
        # Every definition that assigns anyone is kept with the results, by version.
        metrics.plan_changed(plan)
        store.record_definitions([
            (e.name, e.version, json.dumps(e.definition(), sort_keys=True))
            for e in plan.experiments
        ])  # fmt: skip

    plans = watch_experiments(config, registry, on_change=plan_changed)
    servicer = EventsServicer(store, metrics, cfg.max_batch, cfg.max_future_skew_s, plans)
    return ServiceSpec(
        name="events",
        grpc_services=[events_pb2.DESCRIPTOR.services_by_name["EventsService"].full_name],
        register=lambda server: events_pb2_grpc.add_EventsServiceServicer_to_server(
            servicer, server
        ),
        registry=registry,
        on_stop=store.close,
    )

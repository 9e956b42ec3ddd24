"""EventsService: the durable feedback log and the live business metrics.

Batches are atomic unless the caller sets ``allow_partial`` (see events.proto).
Business counters move only for newly stored events, so client retries never
inflate conversion numbers.

Experiment and variant are the server's, not the client's: every event is labelled with the
variant its user is assigned to in the running experiment (the same file and hashing as the
recommend service). An event whose labels contradict that assignment is rejected, so one
storefront's bug cannot move an experiment's numbers; empty labels are filled in.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from drape.recsys.experiments import Experiment, default_experiment, load_experiment
from drape.services.events.store import EventStore, StoredEvent, open_event_store
from drape.services.events.validation import Violation, validate_event
from drape.services.runtime import DrapeConfig, InvalidArgument, ServiceSpec, Unavailable
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

    def record(self, event: StoredEvent) -> None:
        self.events.labels(event.type, event.experiment, event.variant).inc()
        if event.type == "rating":
            self.satisfaction.labels(event.experiment, event.variant).observe(event.rating)
        elif event.type == "purchase" and event.value_minor:
            self.revenue.labels(event.experiment, event.variant).inc(event.value_minor)


class EventsServicer(events_pb2_grpc.EventsServiceServicer):
    def __init__(
        self,
        store: EventStore,
        metrics: BusinessMetrics,
        max_batch: int = 1000,
        max_future_skew_s: float = 300.0,
        experiment: Experiment | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.experiment = experiment or default_experiment()
        self.max_batch = max_batch
        self.max_future_us = int(max_future_skew_s * 1_000_000)

    def Record(
        self, request: events_pb2.RecordRequest, context: grpc.ServicerContext
    ) -> events_pb2.RecordResponse:
        return self.record(list(request.events), request.allow_partial)

    def validate(
        self, events: list[events_pb2.Event], allow_partial: bool
    ) -> list[StoredEvent | Violation]:
        if not events:
            raise InvalidArgument("events", "at least one event is required")
        if len(events) > self.max_batch:
            raise InvalidArgument(
                "events",
                f"a batch holds at most {self.max_batch} events (got {len(events)}); split it",
            )
        now_us = time.time_ns() // 1000
        checked = [
            attribute(validate_event(e, i, now_us, self.max_future_us), i, self.experiment)
            for i, e in enumerate(events)
        ]
        violations = [c for c in checked if isinstance(c, Violation)]
        if violations and not allow_partial:
            more = (
                f" (and {len(violations) - 1} more: {'; '.join(map(str, violations[1:4]))})"
                if len(violations) > 1
                else ""
            )
            first = violations[0]
            raise InvalidArgument(first.field, f"{first.reason}{more}; nothing was stored")
        return checked

    def record(
        self, events: list[events_pb2.Event], allow_partial: bool
    ) -> events_pb2.RecordResponse:
        """Validates, stores durably, counts; one result per input event."""
        checked = self.validate(events, allow_partial)
        valid = [c for c in checked if isinstance(c, StoredEvent)]
        try:
            flags = iter(self.store.append(valid))
        except Exception as exc:
            log.exception("event store append failed")
            raise Unavailable(
                f"the event store is unavailable ({type(exc).__name__}); retry"
            ) from exc
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
                self.metrics.record(outcome)
            else:
                response.duplicates += 1
            response.results.add(event_id=source.event_id, outcome=_OUTCOME[is_new])
        return response


def attribute(
    checked: StoredEvent | Violation, index: int, experiment: Experiment
) -> StoredEvent | Violation:
    """The event labelled with its user's experiment and variant, or a violation when the
    labels it came with contradict them."""
    if isinstance(checked, Violation):
        return checked
    assigned = experiment.assign(checked.user_id).name
    if checked.experiment and checked.experiment != experiment.name:
        return Violation(
            f"events[{index}].experiment",
            f"{checked.experiment!r} is not the running experiment {experiment.name!r}; send the "
            "labels of the recommendation response, or none (the server derives them)",
        )
    if checked.variant and checked.variant != assigned:
        return Violation(
            f"events[{index}].variant",
            f"user {checked.user_id!r} is assigned to {assigned!r}, not {checked.variant!r}; "
            "send the labels of the recommendation response, or none (the server derives them)",
        )
    return dataclasses.replace(checked, experiment=experiment.name, variant=assigned)


def build(config: DrapeConfig) -> ServiceSpec:
    cfg = config.events
    store = open_event_store(config.events_store_url(), sqlite_synchronous=cfg.sqlite_synchronous)
    registry = CollectorRegistry()
    # The recommend service's experiment: events are labelled by the same assignment.
    experiments = config.recommend.experiments_path
    experiment = load_experiment(Path(experiments)) if experiments else default_experiment()
    servicer = EventsServicer(
        store, BusinessMetrics(registry), cfg.max_batch, cfg.max_future_skew_s, experiment
    )
    return ServiceSpec(
        name="events",
        grpc_services=[events_pb2.DESCRIPTOR.services_by_name["EventsService"].full_name],
        register=lambda server: events_pb2_grpc.add_EventsServiceServicer_to_server(
            servicer, server
        ),
        registry=registry,
        on_stop=store.close,
    )

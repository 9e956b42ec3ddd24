"""The gateway's exposure log: every recommendation list served, sent to the events service
in batches by one background thread, so a Recommend call only puts a message on a queue.

The queue is bounded. When it is full (the events service is down or slower than the
traffic) the newest exposure is dropped and counted, never waited for: logging never slows
or fails a call. A batch that cannot be sent after its retries is dropped and counted too.
What a crash loses is bounded by the queue: at most ``exposure_queue`` exposures waiting plus
the batch in flight; on a clean stop the queue is flushed within ``exposure_flush_timeout_s``.
The events service stores a batch atomically and idempotently (by recommendation id), so a
retried batch is never counted twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge

from drape.services.runtime.config import GatewayConfig
from drape.v1 import events_pb2, events_pb2_grpc

log = logging.getLogger(__name__)


class ExposureLog:
    def __init__(
        self,
        events: events_pb2_grpc.EventsServiceStub,
        settings: GatewayConfig,
        registry: CollectorRegistry,
    ) -> None:
        self.events = events
        self.batch = settings.exposure_batch
        self.interval_s = settings.exposure_flush_interval_s
        self.attempts = settings.exposure_attempts
        self.flush_timeout_s = settings.exposure_flush_timeout_s
        self.call_timeout_s = settings.exposure_call_timeout_s
        self._queue: queue.Queue[events_pb2.Exposure] = queue.Queue(settings.exposure_queue)
        self._stop = threading.Event()
        self.logged = Counter(
            "drape_exposures_logged",
            "Recommendation lists the events service acknowledged (stored or already stored).",
            registry=registry,
        )
        self.dropped = Counter(
            "drape_exposures_dropped",
            "Recommendation lists never logged: the queue was full, a batch failed every "
            "attempt, or the gateway stopped before sending them.",
            ["reason"],
            registry=registry,
        )
        for reason in ("queue_full", "send_failed", "shutdown"):
            self.dropped.labels(reason)
        Gauge(
            "drape_exposure_queue", "Exposures waiting to be sent.", registry=registry
        ).set_function(self._queue.qsize)
        self._thread = threading.Thread(target=self._run, name="exposure-log", daemon=True)
        self._thread.start()

    def offer(self, exposure: events_pb2.Exposure) -> None:
        """Queues one exposure, or drops it (counted) when the queue is full."""
        try:
            self._queue.put_nowait(exposure)
        except queue.Full:
            self.dropped.labels("queue_full").inc()

    def _take(self, wait_s: float) -> list[events_pb2.Exposure]:
        """Up to one batch: waits ``wait_s`` for the first, then takes what is there."""
        try:
            batch = [self._queue.get(timeout=wait_s)]
        except queue.Empty:
            return []
        while len(batch) < self.batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take(self.interval_s)
            if batch:
                self._send(batch, self.attempts)

    def _send(self, batch: list[events_pb2.Exposure], attempts: int) -> bool:
        request = events_pb2.LogExposuresRequest(exposures=batch)
        for attempt in range(attempts):
            try:
                self.events.LogExposures(request, timeout=self.call_timeout_s)
            except Exception as exc:  # the sender must outlive anything a call raises
                if (
                    isinstance(exc, grpc.RpcError)
                    and exc.code() == grpc.StatusCode.INVALID_ARGUMENT
                ):
                    # A bug, not an outage: retrying sends the same batch again.
                    log.error("the events service refused an exposure batch: %s", exc.details())
                    break
                if not isinstance(exc, grpc.RpcError):
                    log.exception("logging an exposure batch failed")
                if attempt + 1 < attempts and not self._stop.is_set():
                    time.sleep(min(0.1 * 2**attempt, 2.0))
                continue
            self.logged.inc(len(batch))
            return True
        self.dropped.labels("send_failed").inc(len(batch))
        return False

    def close(self) -> None:
        """Stops the sender and flushes what is queued, within the flush timeout; whatever
        is left then is counted as dropped."""
        self._stop.set()
        self._thread.join(timeout=self.flush_timeout_s)
        deadline = time.monotonic() + self.flush_timeout_s
        while time.monotonic() < deadline:
            batch = self._take(0)
            if not batch:
                return
            self._send(batch, 1)
        left = self._queue.qsize()
        if left:
            self.dropped.labels("shutdown").inc(left)

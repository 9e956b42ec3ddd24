"""An acknowledged event survives `kill -9` of the events service."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import grpc

from drape.cli.stack import Stack
from drape.services.events.store import open_event_store
from drape.services.runtime import connect
from drape.services.runtime.config import DrapeConfig
from drape.v1 import events_pb2, events_pb2_grpc
from tests.conftest import wait_until


def test_acknowledged_events_survive_sigkill(drape_config: DrapeConfig):
    acknowledged: list[str] = []
    stop = threading.Event()
    stack = Stack(drape_config, services=["events"], run_dir=drape_config.data_dir / "run").start()
    try:
        address = stack.address("events")

        def writer() -> None:
            channel = connect(address)
            stub = events_pb2_grpc.EventsServiceStub(channel)
            deadline = time.monotonic() + 20  # bounded even if something goes wrong
            while not stop.is_set() and time.monotonic() < deadline:
                batch = [
                    events_pb2.Event(
                        event_id=uuid.uuid4().hex,
                        type=events_pb2.EVENT_TYPE_VIEW,
                        user_id="u",
                        garment_id="g",
                    )
                    for _ in range(5)
                ]
                try:
                    reply = stub.Record(events_pb2.RecordRequest(events=batch), timeout=2)
                except grpc.RpcError:
                    time.sleep(0.02)  # not acknowledged: the server is down
                    continue
                assert reply.stored == len(batch)
                acknowledged.extend(e.event_id for e in batch)
            channel.close()

        thread = threading.Thread(target=writer)
        thread.start()
        time.sleep(1.0)
        os.kill(stack.process("events").pid, signal.SIGKILL)
        stack.process("events").wait(10)
        killed_at = len(acknowledged)
        stack.restart("events")
        # The writer reconnects and gets acknowledgements from the new process.
        wait_until(lambda: len(acknowledged) > killed_at + 50, timeout=15)
        stop.set()
        thread.join(30)
    finally:
        stack.stop()
    assert killed_at > 50, "the writer loop barely ran before the kill"
    assert len(acknowledged) > killed_at, "no writes were acknowledged after the restart"
    store = open_event_store(drape_config.events_store_url())
    stored = set(store.read_frame()["event_id"])
    store.close()
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged events were lost"

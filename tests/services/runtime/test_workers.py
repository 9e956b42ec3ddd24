"""Several worker processes of one service behind one port (SO_REUSEPORT)."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path

import grpc
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from drape.cli.stack import Stack
from drape.services.events.store import StoredEvent, open_event_store
from drape.services.runtime.client import RoundRobinChannel, connect
from drape.services.runtime.config import ServerConfig
from drape.services.runtime.metrics import MetricsEndpoint
from drape.services.runtime.workers import WorkerMetrics, worker_count
from drape.synthetic.catalog import generate_catalog
from drape.synthetic.shoppers import generate_shoppers
from drape.v1 import recommend_pb2, recommend_pb2_grpc
from tests.conftest import wait_until


def test_worker_metrics_label_each_workers_series():
    endpoints = []
    try:
        for calls in (2, 5):
            registry = CollectorRegistry()
            Counter("drape_things", "Things.", ["kind"], registry=registry).labels("a").inc(calls)
            endpoints.append(MetricsEndpoint(registry, "127.0.0.1", 0))
        ports = {i: e.port for i, e in enumerate(endpoints)}
        ports[2] = _closed_port()  # a worker restarting: its series are absent
        registry = CollectorRegistry()
        registry.register(WorkerMetrics(ports, timeout_s=1.0))
        samples = {
            (s.labels["worker"], s.labels["kind"]): s.value
            for family in registry.collect()
            for s in family.samples
            if s.name == "drape_things_total"
        }
    finally:
        for endpoint in endpoints:
            endpoint.close()
    assert samples == {("0", "a"): 2.0, ("1", "a"): 5.0}


def _closed_port() -> int:
    from drape.cli.stack import free_ports

    return free_ports(1)[0]


def test_worker_count_zero_means_one_per_cpu():
    assert worker_count(ServerConfig(processes=3)) == 3
    assert worker_count(ServerConfig(processes=0)) == len(os.sched_getaffinity(0))


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _per_worker(metrics: bytes, name: str, kind: str) -> dict[str, float]:
    """A recommend refresh series, per worker."""
    return {
        sample.labels["worker"]: sample.value
        for family in text_string_to_metric_families(metrics.decode())
        for sample in family.samples
        if sample.name == name and sample.labels.get("kind") == kind
    }


def test_workers_share_a_port_are_restarted_and_stop_together(drape_config, tmp_path):
    catalog = generate_catalog(40, seed=3)
    catalog.save(drape_config.catalog_path())
    events = generate_shoppers(catalog, 30, 600, seed=3).events
    store = open_event_store(drape_config.events_store_url())
    store.append([StoredEvent(*row) for row in events.itertuples(index=False)])
    store.close()
    drape_config.recommend.server.processes = 2
    with Stack(drape_config, services=["recommend"], run_dir=tmp_path / "run") as stack:
        supervisor = stack.process("recommend").pid
        ready = json.loads((tmp_path / "run" / "recommend.ready").read_text())
        assert ready["workers"] == 2 and ready["pid"] == supervisor
        workers = _children(supervisor)
        assert len(workers) == 2

        channel = connect(stack.address("recommend"), connections=8)
        assert isinstance(channel, RoundRobinChannel)
        stub = recommend_pb2_grpc.RecommendServiceStub(channel)

        def recommend() -> int:
            request = recommend_pb2.RecommendRequest(user_id="u", k=3)
            return len(stub.Recommend(request, timeout=5).items)

        assert [recommend() for _ in range(16)] == [3] * 16
        metrics = urllib.request.urlopen(
            f"http://127.0.0.1:{ready['metrics_port']}/metrics", timeout=5
        ).read()
        assert b'grpc_method="Recommend"' in metrics and b'worker="' in metrics
        # The pod read the log once: one worker read it in full, the other mapped its base.
        full = "drape_recommend_events_read_total"
        mapped = "drape_recommend_refresh_seconds_count"
        assert sorted(_per_worker(metrics, full, "full").values()) == [0, len(events)]
        assert sorted(_per_worker(metrics, mapped, "shared").values()) == [0, 1]

        # A worker that dies is replaced; the service keeps answering meanwhile.
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        assert wait_until(
            lambda: (
                len(_children(supervisor) - {victim}) == 2
                and all(_alive(p) for p in _children(supervisor) - {victim})
            ),
            timeout=60,
        )
        assert wait_until(lambda: _safe(recommend) == 3, timeout=30)
        survivors = _children(supervisor)

        # The new worker mapped the saved base too; no second full read.
        def scrape() -> bytes:
            url = f"http://127.0.0.1:{ready['metrics_port']}/metrics"
            return urllib.request.urlopen(url, timeout=5).read()

        assert wait_until(lambda: len(_per_worker(scrape(), full, "full")) == 2, timeout=60)
        metrics = scrape()
        reads = _per_worker(metrics, full, "full")
        maps = _per_worker(metrics, mapped, "shared")
        assert len(reads) == 2 and sum(reads.values()) <= len(events)
        assert all(maps[w] == 1 for w, read in reads.items() if read == 0)
        channel.close()
    # Stopping the supervisor stops every worker.
    assert wait_until(lambda: not any(_alive(p) for p in survivors | {supervisor}), timeout=30)


def _safe(call) -> int:
    try:
        return call()
    except grpc.RpcError:
        return -1


def test_round_robin_channel_takes_its_connections_in_turn():
    class Fake:
        def __init__(self, name):
            self.name, self.closed = name, False

        def unary_unary(self, method, *args, **kwargs):
            def call(request, **kw):
                return (self.name, method, request)

            call.with_call = lambda request, **kw: ((self.name, request), "call")
            return call

        def close(self):
            self.closed = True

    fakes = [Fake("a"), Fake("b"), Fake("c")]
    channel = RoundRobinChannel(fakes)
    method = channel.unary_unary("/svc/M", request_serializer=None, _registered_method=True)
    assert [method(i)[0] for i in range(6)] == ["a", "b", "c", "a", "b", "c"]
    assert method.with_call("r") == (("a", "r"), "call")
    channel.close()
    assert all(f.closed for f in fakes)

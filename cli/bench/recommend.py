"""`drape bench recommend`: training time and serving throughput at catalog scale.

Generates 100k garments, 100k shoppers and 2M interactions (by default), stores
them in the event store, runs `drape train recsys` and a bare `implicit` fit of
the same matrix, then measures the hybrid ranker in-process (the limit) and
the recommend service over gRPC with concurrent clients in separate processes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from drape.cli.bench import format_table, latency_summary, process_tree_cpu_s, write_report


def _client(address: str, users: list[str], seconds: float, threads: int, out: Any) -> None:
    """One load-generating process: ``threads`` closed-loop clients for ``seconds``."""
    import threading

    import grpc

    from drape.v1 import recommend_pb2, recommend_pb2_grpc

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def loop(seed: int) -> None:
        rng = np.random.default_rng(seed)
        # Each client its own connection, as separate storefront backends would have
        # (channels of one process otherwise share one).
        channel = grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        stub = recommend_pb2_grpc.RecommendServiceStub(channel)
        mine = []
        while time.monotonic() < stop_at:
            request = recommend_pb2.RecommendRequest(user_id=users[rng.integers(len(users))], k=10)
            started = time.perf_counter()
            try:
                stub.Recommend(request, timeout=5)
                mine.append(time.perf_counter() - started)
            except grpc.RpcError:
                with lock:
                    errors[0] += 1
        channel.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=loop, args=(os.getpid() * 100 + i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put((latencies, errors[0]))


def _grpc_load(
    address: str, users: list[str], clients: int, seconds: float, server_pid: int | None = None
) -> dict[str, Any]:
    """``clients`` closed-loop clients for ``seconds``; with ``server_pid``, also the CPU the
    service (that process and its workers) spent per request."""
    processes = 2 if clients >= 2 else 1
    cpu_before = process_tree_cpu_s(server_pid) if server_pid else None
    queue: Any = mp.get_context("spawn").Queue()
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_client, args=(address, users, seconds, clients // processes, queue))
        for _ in range(processes)
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(30)
    elapsed = time.perf_counter() - started
    cpu_after = process_tree_cpu_s(server_pid) if server_pid else None
    latencies = [x for lat, _ in results for x in lat]
    server_cpu_us = (
        (cpu_after - cpu_before) * 1e6 / len(latencies)
        if cpu_before is not None and cpu_after is not None and latencies
        else float("nan")
    )
    # Process start-up is excluded: throughput counts the measured window only.
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": sum(e for _, e in results),
        "qps": len(latencies) / seconds,
        "wall_s": elapsed,
        "server_cpu_us": server_cpu_us,
        **latency_summary(latencies),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--garments", type=int, default=100_000, help="catalog size")
    parser.add_argument("--users", type=int, default=100_000, help="shoppers")
    parser.add_argument("--interactions", type=int, default=2_000_000, help="events")
    parser.add_argument(
        "--processes", type=int, help="server worker processes (default: the config's)"
    )
    parser.add_argument("--no-tune", action="store_true", help="train without blend tuning")


def run(args: argparse.Namespace) -> int:
    from drape.cli.stack import Stack, ephemeral
    from drape.cli.train.recsys import train_recsys
    from drape.recsys.datasets import attribute_vectors
    from drape.recsys.index import EmbeddingIndex
    from drape.recsys.ranking import RankRequest
    from drape.services.events.store import StoredEvent, open_event_store
    from drape.services.recommend.state import RecommendState
    from drape.services.runtime.config import DrapeConfig
    from drape.synthetic.catalog import generate_catalog
    from drape.synthetic.shoppers import generate_shoppers

    n_garments, n_users, n_events = args.garments, args.users, args.interactions
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="drape-bench-rec-") as tmp:
        config = ephemeral(DrapeConfig(data_dir=Path(tmp)))
        config.recommend.refresh_s = 3600.0  # no background refresh during the measurement
        if args.processes is not None:
            config.recommend.server.processes = args.processes
        processes = config.recommend.server.processes
        exp = Path(tmp) / "exp.yaml"
        exp.write_text(
            "name: bench\nsalt: b\nvariants:\n  - {name: hybrid, share: 1, strategy: hybrid}\n"
        )
        config.recommend.experiments_path = str(exp)

        t = time.perf_counter()
        catalog = generate_catalog(n_garments, seed=1)
        catalog.save(config.catalog_path())
        shoppers = generate_shoppers(catalog, n_users, n_events, seed=1)
        EmbeddingIndex.build(catalog.ids, attribute_vectors(catalog)).save(config.embeddings_path())
        timings["generate"] = time.perf_counter() - t
        t = time.perf_counter()
        store = open_event_store(config.events_store_url(), sqlite_synchronous="NORMAL")
        rows = [StoredEvent(*r) for r in shoppers.events.itertuples(index=False, name=None)]
        for start in range(0, len(rows), 100_000):
            store.append(rows[start : start + 100_000])
        store.close()
        del rows
        timings["store_events"] = time.perf_counter() - t
        print(
            f"generated and stored {n_events:,} interactions in {sum(timings.values()):.1f} s",
            flush=True,
        )

        t = time.perf_counter()
        train_recsys(config, tune=not args.no_tune, quiet=True)
        timings["train_recsys_end_to_end"] = time.perf_counter() - t

        # The bare library on the same matrix, for the overhead comparison.
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        from drape.recsys import artifacts
        from drape.recsys.interactions import InteractionMatrix

        published = artifacts.load(config.recsys_artifacts())
        weights = {k: v for k, v in asdict(published.params.weights).items() if v}
        print(f"tuned blend (channels with a weight): {weights}", flush=True)
        events = shoppers.events
        matrix = InteractionMatrix.build(
            events, config.recommend.weights.model_dump(), 14, int(events["occurred_at_us"].max())
        )
        p = published.als.params
        bare = AlternatingLeastSquares(
            factors=p.factors,
            regularization=p.regularization,
            alpha=p.alpha,
            iterations=p.iterations,
            random_state=0,
        )
        t = time.perf_counter()
        with threadpool_limits(1, "blas"):
            bare.fit(matrix.matrix, show_progress=False)
        timings["bare_implicit_fit"] = time.perf_counter() - t
        timings["drape_als_fit"] = float(published.manifest["seconds"]["als"])

        # In-process: the ranker alone, one thread, configured as the service is.
        from drape.recsys.index import configure_for_serving

        configure_for_serving()
        store = open_event_store(config.events_store_url())
        state = RecommendState(
            config.catalog_path(), store, config.recommend, config.recsys_artifacts()
        )
        t = time.perf_counter()
        state.refresh()
        timings["service_model_load"] = time.perf_counter() - t
        models = state.current()
        rng = np.random.default_rng(0)
        users = [str(u) for u in rng.choice(shoppers.user_ids, 5000)]
        for u in users[:200]:
            models.rank("hybrid", RankRequest(u, 10), None)
        t = time.perf_counter()
        n = 0
        while time.perf_counter() - t < args.seconds:
            models.rank("hybrid", RankRequest(users[n % len(users)], 10), None)
            n += 1
        in_process_qps = n / (time.perf_counter() - t)
        store.close()
        del state, models

        with Stack(config, services=["events", "recommend"], run_dir=Path(tmp) / "run") as stack:
            address, pid = stack.address("recommend"), stack.process("recommend").pid
            _grpc_load(address, users, 2, 2.0)  # warm-up
            grpc_rows = [_grpc_load(address, users, c, args.seconds, pid) for c in (1, 8)]

    rows = [{"path": "in-process ranker (1 thread)", "clients": 1, "qps": in_process_qps}]
    rows += [{"path": "gRPC Recommend", **r} for r in grpc_rows]
    print(f"recommend: {n_garments:,} garments, {n_users:,} users, {n_events:,} interactions; "
          f"{processes} server process(es)")  # fmt: skip
    # server_cpu_us: CPU microseconds the service spent per request (all its processes).
    print(
        format_table(
            rows, ["path", "clients", "qps", "p50_ms", "p99_ms", "server_cpu_us", "errors"]
        )
    )
    ratio = grpc_rows[-1]["qps"] / in_process_qps
    print(f"served/in-process QPS at 8 clients: {ratio:.2f}")
    print(
        format_table([{"stage": k, "seconds": v} for k, v in timings.items()], ["stage", "seconds"])
    )
    out = write_report(
        "recommend", rows, args.out,
        {"scale": {"garments": n_garments, "users": n_users, "interactions": n_events}, "timings_s": timings,
         "served_over_in_process": ratio, "server_processes": processes, "blend": weights},
    )  # fmt: skip
    print(f"wrote {out}")
    return 0

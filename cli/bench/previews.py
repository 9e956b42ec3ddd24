"""`drape bench previews`: the storefront's main call, Recommend with try-on previews of the
top 8 garments on the shopper's photo, through the whole stack on loopback (gateway,
recommend, features, tryon and splice services, Triton serving the shipped generator).

Cold: every call brings a photo never seen before (the demo shopper with its number drawn along the top edge),
so the photo is analysed and embedded, and 8 previews are generated and spliced. Warm: the
same photo again, answered from the preview cache. The mean batch size Triton formed for
``tryon_gan`` comes from Triton's own statistics (its Prometheus metrics). Busy machine:
rounds of 16 new photos at once, each call with a 5 s deadline, while one process per core
burns it; no call may fail (late previews are TIMED_OUT, a late photo is ranked without)."""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import re
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from drape.cli.bench import (
    format_table,
    latency_summary,
    peak_resident_mb,
    timed_phase,
    write_report,
)
from drape.cli.stack import Stack, ephemeral
from drape.services.runtime.config import load_config
from drape.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

COLUMNS = (
    "phase",
    "clients",
    "requests/s",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "reply_kb",
    "calls",
    "failed",
    "previews",
)
K = 8
GARMENTS = 64


def triton_counts(metrics_port: int, model: str) -> tuple[float, float]:
    """(inferences, executions) Triton has counted for ``model``: inferences / executions is
    the mean batch size its dynamic batcher formed."""

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
    totals = {"nv_inference_count": 0.0, "nv_inference_exec_count": 0.0}
    for line in text.decode().splitlines():
        match = re.match(r'(nv_inference(?:_exec)?_count)\{[^}]*model="([^"]+)"[^}]*\} (\S+)', line)
        if match and match.group(2) == model:
            totals[match.group(1)] += float(match.group(3))
    return totals["nv_inference_count"], totals["nv_inference_exec_count"]


def run(args: argparse.Namespace) -> int:
    from skimage import data

    from drape.catalog.embedders import ingest_via_service
    from drape.models.images import encode_jpeg
    from drape.models.tryon.export import TRYON_MODEL
    from drape.services.runtime.previews import preview_status_name
    from drape.synthetic.catalog import write_generated_feed

    root = Path(tempfile.mkdtemp(prefix="drape-bench-previews-"))
    config = ephemeral(load_config(None))
    config.data_dir = root / "data"
    config.recommend.refresh_s = 0.5
    feed = write_generated_feed(GARMENTS, root / "feed", seed=0)
    shopper = data.astronaut()
    stack = Stack(config, run_dir=root / "run")
    stack.start(timeout=180)
    rows: list[dict[str, Any]] = []
    try:
        report = ingest_via_service(feed, stack.config, stack.address("features"))
        print(f"ingested {report.ingested} garments with product shots")
        channel = grpc.insecure_channel(stack.address("gateway"))
        gateway = gateway_pb2_grpc.GatewayServiceStub(channel)
        statuses: Counter[str] = Counter()
        sizes: list[int] = []
        lock = threading.Lock()

        def recommend(photo: bytes, delivery: int = common_pb2.PREVIEW_DELIVERY_INLINE) -> int:
            reply = gateway.Recommend(
                gateway_pb2.GatewayServiceRecommendRequest(
                    user_id="bench-shopper", k=K, photo=common_pb2.Image(data=photo),
                    previews=True, delivery=delivery,
                ),
                timeout=30,
            )  # fmt: skip
            with lock:
                statuses.update(preview_status_name(i.preview.status) for i in reply.items)
                sizes.append(reply.ByteSize())
            return 1

        deadline = time.monotonic() + 60
        while len(_items(gateway)) < K:  # the recommend service picks the catalog up
            if time.monotonic() > deadline:
                print("drape bench previews: the recommend service never saw the catalog")
                return 1
            time.sleep(0.5)
        counter = itertools.count()

        def new_photo() -> bytes:
            pixels = shopper.copy()
            i = next(counter)
            # The call number in black and white 8x8 blocks along the top edge: other JPEG
            # bytes (whatever the quantisation), the same shopper.
            for bit in range(16):
                pixels[:8, bit * 8 : bit * 8 + 8] = 255 * (i >> bit & 1)
            return encode_jpeg(pixels, quality=92)

        triton_port = stack.endpoints["triton"].metrics_port
        for clients in (1, 2):
            before = triton_counts(triton_port, TRYON_MODEL)
            statuses.clear()
            row = timed_phase("cold cache (new photo each call)", lambda: recommend(new_photo()),
                              1, clients, args.seconds * 2, rate="requests/s", warmup=1)  # fmt: skip
            after = triton_counts(triton_port, TRYON_MODEL)
            executions = after[1] - before[1]
            row["triton_mean_batch"] = (after[0] - before[0]) / executions if executions else 0.0
            row["previews"] = dict(statuses)
            rows.append(row)
        warm = new_photo()
        recommend(warm)
        # Warm, inline and by URL (stored once, then signed per reply), alternated twice.
        deliveries = {
            "inline": common_pb2.PREVIEW_DELIVERY_INLINE,
            "url": common_pb2.PREVIEW_DELIVERY_URL,
        }
        for clients, (name, delivery) in itertools.product((1, 4), [*deliveries.items()] * 2):
            statuses.clear()
            sizes.clear()
            row = timed_phase(f"warm cache (same photo), {name}", lambda d=delivery: recommend(warm, d),
                              1, clients, args.seconds, rate="requests/s")  # fmt: skip
            row["previews"] = dict(statuses)
            row["reply_kb"] = sum(sizes) / len(sizes) / 1024
            rows.append(row)
        rows.append(_huge_photos_phase(recommend, stack))
        rows.append(_busy_machine_phase(gateway, new_photo))
        channel.close()
    finally:
        stack.stop()
    print(format_table([{**r, "previews": _brief(r["previews"])} for r in rows], COLUMNS))
    for row in rows[:2]:
        print(f"{row['phase']}, {row['clients']} client(s): Triton formed batches of "
              f"{row['triton_mean_batch']:.2f} {TRYON_MODEL} images on average")  # fmt: skip
    extra = {"seconds_per_phase": args.seconds, "k": K, "garments": GARMENTS,
             "photo": "skimage astronaut 512x512"}  # fmt: skip
    out = write_report("previews", rows, args.out, extra)
    print(f"wrote {out}")
    return 0


def huge_photos(count: int, side: int = 6000) -> list[bytes]:
    """``side`` x ``side`` PNGs of the astronaut, each mirrored or shifted so that each is
    another photo: 36 megapixels in under 1 MiB at 6000, the kind of photo that once cost
    gigabytes per call."""
    from PIL import Image
    from skimage import data

    from drape.models.images import encode_png

    photos = []
    for k in range(count):
        pixels = np.roll(data.astronaut()[:, :: -1 if k % 2 else 1], 7 * k, axis=0)
        big = Image.fromarray(np.ascontiguousarray(pixels)).resize((side, side), Image.NEAREST)
        photos.append(encode_png(np.asarray(big)))
    return photos


def _huge_photos_phase(recommend, stack: Stack, count: int = 4) -> dict[str, Any]:
    """``count`` 6000x6000 photos at once: the time it takes and each service's peak memory."""
    photos = huge_photos(count)
    started = time.perf_counter()
    threads = [threading.Thread(target=recommend, args=(photo,)) for photo in photos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    peaks = {name: round(peak_resident_mb(stack.endpoints[name].pid))
             for name in ("gateway", "features", "tryon", "splice")}  # fmt: skip
    print(f"{count} photos of 6000x6000 at once: {seconds:.1f} s; peak resident MB {peaks}")
    return {"phase": f"{count} photos of 6000x6000 at once", "batch": 1, "clients": count,
            "requests/s": count / seconds, "peak_resident_mb": peaks, "previews": {}}  # fmt: skip


def burn(seconds: float) -> None:
    """Keeps one core busy for ``seconds`` (run in a process of its own)."""
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        sum(i * i for i in range(10_000))


def on_a_busy_machine(call: Callable[[bytes], Any], photos: list[bytes],
                      burners: int | None = None) -> list[tuple[Any, float]]:  # fmt: skip
    """``call`` on every photo at once while ``burners`` processes (one per core by default)
    keep the cores busy: each call's reply, or the grpc.RpcError it failed with, and its
    seconds."""
    from concurrent.futures import ThreadPoolExecutor

    def timed(photo: bytes) -> tuple[Any, float]:
        started = time.perf_counter()
        try:
            reply = call(photo)
        except grpc.RpcError as exc:
            reply = exc
        return reply, time.perf_counter() - started

    spawn = multiprocessing.get_context("spawn")
    processes = [
        spawn.Process(target=burn, args=(60.0,)) for _ in range(burners or os.cpu_count() or 1)
    ]
    for process in processes:
        process.start()
    try:
        with ThreadPoolExecutor(len(photos)) as pool:
            return list(pool.map(timed, photos))
    finally:
        for process in processes:
            process.terminate()
            process.join(timeout=10)


def _busy_machine_phase(gateway: gateway_pb2_grpc.GatewayServiceStub,
                        new_photo: Callable[[], bytes], rounds: int = 3, calls: int = 16,
                        deadline_s: float = 5.0) -> dict[str, Any]:  # fmt: skip
    """``rounds`` of ``calls`` new photos at once with a ``deadline_s`` deadline each, every
    core busy: how many calls failed, their latencies and what came back."""
    from drape.services.runtime.previews import preview_status_name

    def call(photo: bytes) -> gateway_pb2.GatewayServiceRecommendResponse:
        return gateway.Recommend(gateway_pb2.GatewayServiceRecommendRequest(
            user_id="bench-shopper", k=K, photo=common_pb2.Image(data=photo), previews=True,
            delivery=common_pb2.PREVIEW_DELIVERY_INLINE,
        ), timeout=deadline_s)  # fmt: skip

    results = [result for _ in range(rounds)
               for result in on_a_busy_machine(call, [new_photo() for _ in range(calls)])]  # fmt: skip
    replies = [reply for reply, _ in results if not isinstance(reply, grpc.RpcError)]
    statuses = Counter(preview_status_name(i.preview.status) for r in replies for i in r.items)
    used = sum(reply.photo.used for reply in replies)
    failed = len(results) - len(replies)
    print(f"{calls} calls at once, {deadline_s:.0f} s deadline, every core busy: {failed} of "
          f"{len(results)} failed; the photo steered {used} of {len(replies)} rankings; slowest "
          f"{max(seconds for _, seconds in results):.2f} s")  # fmt: skip
    return {"phase": f"{calls} at once, {deadline_s:.0f} s deadline, cores busy", "batch": 1,
            "clients": calls, **latency_summary([seconds for _, seconds in results]),
            "calls": len(results), "failed": failed, "photo_used": used,
            "previews": dict(statuses)}  # fmt: skip


def _items(gateway: gateway_pb2_grpc.GatewayServiceStub) -> list[common_pb2.RecommendedGarment]:
    try:
        reply = gateway.Recommend(
            gateway_pb2.GatewayServiceRecommendRequest(user_id="probe", k=K), timeout=10
        )
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:  # no catalog loaded yet
            raise
        return []
    return list(reply.items)


def _brief(counts: dict[str, int]) -> str:
    return " ".join(f"{name}={n}" for name, n in sorted(counts.items()))

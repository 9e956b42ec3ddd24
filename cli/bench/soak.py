"""`drape bench soak --minutes M`: the whole stack under a steady open-loop load at about half
of its measured capacity, for minutes: a storefront's mix of Recommend without previews,
Recommend with previews on a shopper's photo, and Track. Every minute: calls, errors, p50
and p99 latency (from the scheduled send, so queueing counts), and each service's memory,
open files and threads (its worker processes included).

Targets: zero errors; p99 of the last minute at most 1.2x that of the first minute after
the warm-up; memory growth per service at most 10% after the warm-up; open files and
threads flat.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from drape.cli.bench import children, format_table, run_clients, storefront_stack, write_report

MIX = (("recommend", 0.7), ("previews", 0.1), ("track", 0.2))
ANSWERED = ("OK", "MARKED")  # MARKED: a list answered with its previews marked as not shown


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=10.0, help="load time after the warm-up")
    parser.add_argument(
        "--rate", type=float, help="calls per second (default: half the measured capacity)"
    )
    parser.add_argument(
        "--warmup-s", type=float, default=60.0, help="warm-up before the first minute counted"
    )


def usage(pid: int) -> dict[str, int]:
    """RSS (MB), open files and threads of a process and its children (worker processes)."""
    pids = [pid, *children(pid)]
    total = {"rss_mb": 0, "fds": 0, "threads": 0}
    for one in pids:
        try:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{one}/status").read_text().splitlines()
                          if ":" in line)  # fmt: skip
            total["rss_mb"] += int(status["VmRSS"].split()[0]) // 1024
            total["threads"] += int(status["Threads"])
            total["fds"] += len(list(Path(f"/proc/{one}/fd").iterdir()))
        except (OSError, KeyError):
            continue
    return total


class Storefront:
    """The calls a storefront backend makes, through the gateway."""

    def __init__(
        self, address: str, garments: list[str], seed: int = 0, unique_photos: bool = False
    ) -> None:
        """``unique_photos``: every previews call sends a photo no cache has seen (one pixel
        changed), so each reaches the try-on path; else a few shoppers' photos, cached."""
        from skimage import data

        from drape.models.images import encode_jpeg
        from drape.services.runtime import connect
        from drape.v1 import common_pb2, gateway_pb2_grpc

        self.gateway = gateway_pb2_grpc.GatewayServiceStub(connect(address, connections=4))
        self._pixels = data.astronaut()
        self.unique_photos = unique_photos
        # A few shoppers' photos (the same person at other JPEG qualities: other photos to caches).
        self.photos = [
            common_pb2.Image(data=encode_jpeg(self._pixels, quality=q)) for q in (80, 85, 90)
        ]
        self.garments = garments
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def call(self, kind: str, deadline_s: float = 10.0) -> str:
        """One call; its outcome: OK, MARKED (a list answered with its previews marked as not
        shown) or the status code's name."""
        import grpc

        from drape.v1 import common_pb2, events_pb2, gateway_pb2

        with self._lock:
            user = f"shopper-{self._rng.randrange(5000)}"
            photo = self._rng.choice(self.photos)
            garment = self._rng.choice(self.garments)
            pixel = (
                self._rng.randrange(self._pixels.shape[0]),
                self._rng.randrange(self._pixels.shape[1]),
            )
        if kind == "previews" and self.unique_photos:
            from drape.models.images import encode_jpeg

            pixels = self._pixels.copy()
            pixels[pixel] = 255 - pixels[pixel]
            photo = common_pb2.Image(data=encode_jpeg(pixels, quality=90))
        try:
            if kind == "track":
                events = [events_pb2.Event(event_id=uuid.uuid4().hex, user_id=user, garment_id=garment,
                                           type=events_pb2.EVENT_TYPE_VIEW) for _ in range(3)]  # fmt: skip
                self.gateway.Track(gateway_pb2.TrackRequest(events=events), timeout=deadline_s)
            else:
                request = gateway_pb2.GatewayServiceRecommendRequest(user_id=user, k=8)
                if kind == "previews":
                    request.photo.CopyFrom(photo)
                    request.previews = True
                    request.preview_limit = 2
                reply = self.gateway.Recommend(request, timeout=deadline_s)
                if kind == "previews" and not any(
                    item.preview.status
                    in (common_pb2.PREVIEW_STATUS_OK, common_pb2.PREVIEW_STATUS_CACHED)
                    for item in reply.items
                ):
                    return "MARKED"
        except grpc.RpcError as exc:
            return exc.code().name
        return "OK"

    def kind(self) -> str:
        with self._lock:
            draw = self._rng.random()
        for name, share in MIX:
            if draw < share:
                return name
            draw -= share
        return MIX[-1][0]


def capacity(front: Storefront, seconds: float = 15.0, clients: int = 8) -> float:
    """Calls per second of the mix, closed loop with ``clients`` at once."""
    done = [0] * clients
    stop_at = time.monotonic() + seconds

    def client(slot: int) -> None:
        while time.monotonic() < stop_at:
            front.call(front.kind())
            done[slot] += 1

    elapsed = run_clients(client, clients)  # (before the sum: operands run left to right)
    return sum(done) / elapsed


def soak(front: Storefront, pids: dict[str, int], rate: float, minutes: float, warmup_s: float,
         bucket_s: float = 60.0) -> dict[str, Any]:  # fmt: skip
    """Open-loop load at ``rate`` calls/s: ``warmup_s`` not counted, then ``minutes`` in
    buckets of ``bucket_s``; per bucket the calls and the processes' usage."""
    total_s = warmup_s + minutes * 60
    records: list[tuple[float, float, str]] = []  # (scheduled since start, latency, outcome)
    lock = threading.Lock()
    samples: list[tuple[float, dict[str, dict[str, int]]]] = []
    started = time.monotonic()

    def one(scheduled: float, kind: str) -> None:
        outcome = front.call(kind)
        latency = time.monotonic() - (started + scheduled)
        with lock:
            records.append((scheduled, latency, outcome))

    next_sample = warmup_s
    with ThreadPoolExecutor(max_workers=64) as pool:
        n = 0
        while True:
            scheduled = n / rate
            if scheduled >= total_s:
                break
            delay = started + scheduled - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if scheduled >= next_sample:
                samples.append((scheduled, {name: usage(pid) for name, pid in pids.items()}))
                next_sample += bucket_s
            pool.submit(one, scheduled, front.kind())
            n += 1
    samples.append((total_s, {name: usage(pid) for name, pid in pids.items()}))
    rows = []
    for b in range(int(np.ceil(minutes * 60 / bucket_s))):
        low, high = warmup_s + b * bucket_s, warmup_s + (b + 1) * bucket_s
        inside = [(lat, out) for at, lat, out in records if low <= at < high]
        if not inside:
            continue
        latencies = np.array([lat for lat, _ in inside]) * 1000
        rows.append({"minute": b + 1, "calls": len(inside), "errors": sum(out not in ANSWERED for _, out in inside),
                     "previews_marked": sum(out == "MARKED" for _, out in inside),
                     "p50_ms": round(float(np.percentile(latencies, 50)), 1),
                     "p99_ms": round(float(np.percentile(latencies, 99)), 1)})  # fmt: skip
    first, last = samples[0][1], samples[-1][1]
    growth = {name: {"rss_mb": (first[name]["rss_mb"], last[name]["rss_mb"]),
                     "rss_growth": round(last[name]["rss_mb"] / max(first[name]["rss_mb"], 1) - 1, 3),
                     "fds": (first[name]["fds"], last[name]["fds"]),
                     "threads": (first[name]["threads"], last[name]["threads"])} for name in pids}  # fmt: skip
    errors = dict(Counter(out for _, _, out in records if out not in ANSWERED))
    p99 = (rows[0]["p99_ms"], rows[-1]["p99_ms"]) if rows else (float("nan"), float("nan"))
    return {"rate": rate, "minutes": minutes, "rows": rows, "errors": errors, "p99_first_last": p99,
            "p99_ratio": round(p99[1] / p99[0], 2) if rows and p99[0] else float("nan"),
            "processes": growth, "samples": [(at, s) for at, s in samples]}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="drape-soak-") as tmp, \
            storefront_stack(Path(tmp), garments=40, seed=1) as (stack, garments):  # fmt: skip
        front = Storefront(stack.address("gateway"), garments)
        measured = capacity(front)
        rate = args.rate or measured / 2
        print(f"capacity of the mix: {measured:.0f} calls/s; soaking at {rate:.0f} calls/s "
              f"for {args.minutes:g} min after {args.warmup_s:g} s of warm-up")  # fmt: skip
        pids = {name: e.pid for name, e in stack.endpoints.items()}
        report = soak(front, pids, rate, args.minutes, args.warmup_s)
    print(
        format_table(
            report["rows"], ["minute", "calls", "errors", "previews_marked", "p50_ms", "p99_ms"]
        )
    )
    for name, p in report["processes"].items():
        print(f"  {name}: RSS {p['rss_mb'][0]} -> {p['rss_mb'][1]} MB ({p['rss_growth']:+.1%}), "
              f"fds {p['fds'][0]} -> {p['fds'][1]}, threads {p['threads'][0]} -> {p['threads'][1]}")  # fmt: skip
    ok = (not report["errors"] and report["p99_ratio"] <= 1.2
          and all(p["rss_growth"] <= 0.10 for p in report["processes"].values()))  # fmt: skip
    print(f"errors: {report['errors'] or 'none'}; p99 last/first minute: {report['p99_ratio']}; "
          f"{'all targets met' if ok else 'a target missed'}")  # fmt: skip
    out = write_report("soak", report["rows"], args.out, {k: v for k, v in report.items() if k != "rows"}
                       | {"capacity_calls_per_s": measured})  # fmt: skip
    print(f"wrote {out}")
    return 0 if ok else 1

"""`drape demo`: the storefront flow end to end on generated data.

Starts the stack on loopback (Triton included), ingests a generated catalog feed
with product shots through the features service (the encoder served by Triton),
replays synthetic shoppers' events through the gateway, trains the recommender,
asks for recommendations (one "shop the look" from a real photo), reports the
feedback, and shows the business metrics. Exits 0 and leaves nothing running.
"""

from __future__ import annotations

import argparse
import html
import shutil
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from drape.cli.stack import Stack, ephemeral
from drape.cli.web import point_previews_here
from drape.services.runtime import connect
from drape.services.runtime.config import DrapeConfig
from drape.v1 import common_pb2, events_pb2, gateway_pb2, gateway_pb2_grpc

if TYPE_CHECKING:
    import pandas as pd

EXPERIMENT_NAME = "demo-previews"
EXPERIMENT_YAML = f"""\
name: {EXPERIMENT_NAME}
salt: demo
variants:
  - {{name: control, share: 50, strategy: popularity, previews: false}}
  - {{name: treatment, share: 50, strategy: hybrid, previews: true}}
"""
_TYPES = {
    "impression": events_pb2.EVENT_TYPE_IMPRESSION,
    "view": events_pb2.EVENT_TYPE_VIEW,
    "tryon_view": events_pb2.EVENT_TYPE_TRYON_VIEW,
    "add_to_cart": events_pb2.EVENT_TYPE_ADD_TO_CART,
    "purchase": events_pb2.EVENT_TYPE_PURCHASE,
    "rating": events_pb2.EVENT_TYPE_RATING,
}


def events_from_frame(frame: pd.DataFrame) -> list[events_pb2.Event]:
    """Event messages for rows of an event-store-shaped frame."""

    out = []
    for row in frame.itertuples(index=False):
        at = Timestamp()
        at.FromMicroseconds(int(row.occurred_at_us))
        out.append(
            events_pb2.Event(
                event_id=row.event_id,
                type=_TYPES[row.type],
                user_id=row.user_id,
                garment_id=row.garment_id,
                occurred_at=at,
                rating=int(row.rating),
                value_minor=int(row.value_minor),
            )
        )
    return out


def _model_version(gateway: gateway_pb2_grpc.GatewayServiceStub, user: str) -> str:
    probe = gateway_pb2.GatewayServiceRecommendRequest(user_id=user, k=1)
    return gateway.Recommend(probe).model_version


def _recommend_or_none(
    gateway: gateway_pb2_grpc.GatewayServiceStub, user: str
) -> gateway_pb2.GatewayServiceRecommendResponse | None:
    """One Recommend; None while the recommender has not loaded what it needs yet."""
    try:
        return gateway.Recommend(gateway_pb2.GatewayServiceRecommendRequest(user_id=user, k=1))
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        return None


def _until_every_worker(
    gateway: gateway_pb2_grpc.GatewayServiceStub,
    users: list[str],
    done: Callable[[gateway_pb2.GatewayServiceRecommendResponse | None], bool],
    timeout: float,
    what: str,
    probes: int = 12,
) -> gateway_pb2.GatewayServiceRecommendResponse | None:
    """Waits until ``probes`` Recommend calls in a row (for ``users`` in turn) all satisfy
    ``done``. The gateway spreads calls over its connections, and so over recommend's
    worker processes, which refresh on their own timers: one good answer is not enough."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = [_recommend_or_none(gateway, users[i % len(users)]) for i in range(probes)]
        if all(done(reply) for reply in replies):
            return replies[-1]
        time.sleep(0.2)
    raise TimeoutError(f"the recommender did not {what} within {timeout:.0f} s")


def _wait_for_refresh(
    gateway: gateway_pb2_grpc.GatewayServiceStub, control_user: str, timeout: float
) -> str:
    """Waits until every recommend worker has refreshed since this call (so each sees every
    event seeded so far): every answer carries a model version not seen at the start."""
    before = {
        reply.model_version if reply else None
        for reply in (_recommend_or_none(gateway, control_user) for _ in range(12))
    }
    reply = _until_every_worker(
        gateway,
        [control_user],
        lambda r: r is not None and r.model_version not in before,
        timeout,
        "refresh",
    )
    assert reply is not None
    return reply.model_version


def _wait_for_artifacts(
    gateway: gateway_pb2_grpc.GatewayServiceStub, users: list[str], version: str, timeout: float
) -> None:
    """Waits until every recommend worker serves the published artifact version to ``users``
    (shoppers assigned to the hybrid strategy)."""

    def loaded(reply: gateway_pb2.GatewayServiceRecommendResponse | None) -> bool:
        # None: published, not loaded yet
        return reply is not None and reply.model_version.endswith(version)

    _until_every_worker(gateway, users, loaded, timeout, f"load {version}")


def _metric_lines(port: int | None, prefix: str) -> list[str]:
    if port is None:
        return []
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return [
        line for line in text.splitlines() if line.startswith(prefix) and not line.endswith(" 0.0")
    ]


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="run the whole flow on generated data")
    demo.add_argument("--users", type=int, default=300)
    demo.add_argument("--garments", type=int, default=2000)
    demo.add_argument("--events", type=int, default=5000)
    demo.add_argument("--data-dir", type=Path, help="keep the demo's data here (default: temp)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("demo-output"),
        help="where the previews page and its images go (default: demo-output)",
    )
    demo.add_argument("--web", nargs="?", const="127.0.0.1:8080", metavar="HOST:PORT",
                      help="then keep everything running and serve the storefront and analyst "
                      "pages there (`drape web`; default 127.0.0.1:8080) until Ctrl-C")  # fmt: skip
    demo.set_defaults(func=run)


def _serve_web(config: DrapeConfig, gateway: str) -> None:
    """`drape demo --web`: the pages on the demo's stack and data, until Ctrl-C."""
    from drape.services.web.server import WebServer

    config.web.gateway_address = gateway
    server = WebServer(config).start()
    print(f"\nstorefront {server.url}/  analyst {server.url}/analyst?experiment="
          f"{EXPERIMENT_NAME}  API {server.url}/openapi.json; Ctrl-C to stop", flush=True)  # fmt: skip
    try:
        server.wait()
    except KeyboardInterrupt:
        print("stopping...", flush=True)
    finally:
        server.stop()


def run(args: argparse.Namespace) -> int:
    from drape.cli.train.recsys import train_recsys
    from drape.recsys.als import ALSParams
    from drape.recsys.experiments import load_experiment
    from drape.synthetic.catalog import generate_catalog, write_generated_feed
    from drape.synthetic.shoppers import generate_shoppers

    own_dir = args.data_dir is None
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="drape-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    config = ephemeral(DrapeConfig(data_dir=data_dir))
    config.recommend.refresh_s = 0.5
    experiments = data_dir / "experiments.yaml"
    experiments.write_text(EXPERIMENT_YAML)
    config.recommend.experiments_path = str(experiments)
    if args.web:
        config.web.address = args.web
        point_previews_here(config, f"http://{args.web}")

    started = time.perf_counter()
    feed = write_generated_feed(args.garments, data_dir / "feed", seed=args.seed)
    catalog = generate_catalog(args.garments, seed=args.seed)  # the feed's rows, for shoppers
    shoppers = generate_shoppers(catalog, args.users, args.events, seed=args.seed)
    print(
        f"catalog feed: {len(catalog)} garments with product shots in {catalog.categories.size} "
        f"categories -> {feed} ({time.perf_counter() - started:.1f} s)"
    )

    started = time.perf_counter()
    stack = Stack(config, run_dir=data_dir / "run")
    try:
        stack.start()
        print(f"stack up in {time.perf_counter() - started:.1f} s:")
        for name, endpoint in stack.endpoints.items():
            print(f"  {name:<10} {endpoint.address}")
        _ingest(config, feed, stack.address("features"))
        channel = connect(stack.address("gateway"))
        gateway = gateway_pb2_grpc.GatewayServiceStub(channel)
        _seed(gateway, shoppers.events)
        experiment = load_experiment(experiments)
        control_user = next(
            u
            for u in (f"probe-{i}" for i in range(100))
            if experiment.assign(u).strategy == "popularity"
        )
        version = _wait_for_refresh(gateway, control_user, timeout=30)
        print(f"popularity refreshed from the event store: {version}")
        print("\ndrape train recsys:")
        trained = train_recsys(config, ALSParams(factors=32, iterations=10))
        hybrid_users = [
            u for u in shoppers.user_ids[:20] if experiment.assign(u).strategy == "hybrid"
        ]
        _wait_for_artifacts(gateway, hybrid_users, trained, timeout=60)
        _recommend_and_feedback(gateway, shoppers.user_ids[:4])
        _shop_the_look(gateway, experiment)
        page = _previews_page(gateway, experiment, feed.parent / "images", args.out)
        _bad_requests(gateway)
        report_page = _experiment(gateway, config, experiment, shoppers.user_ids, args.out,
                                  seed=args.seed)  # fmt: skip
        print("\nlive business metrics (events service):")
        for line in _metric_lines(stack.endpoints["events"].metrics_port, "drape_events_total")[
            :12
        ]:
            print(f"  {line}")
        print("gateway previews:")
        for line in _metric_lines(stack.endpoints["gateway"].metrics_port, "drape_previews_total"):
            print(f"  {line}")
        channel.close()
        if args.web:
            _serve_web(config, stack.address("gateway"))
    finally:
        stack.stop()
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s; all services stopped")
    print(f"the shopper's previews: {page.resolve()}")
    print(f"the experiment's report: {report_page.resolve()}")
    return 0


def _ingest(config: DrapeConfig, feed: Path, features_address: str) -> None:
    from drape.catalog.embedders import ingest_via_service

    started = time.perf_counter()
    report = ingest_via_service(feed, config, features_address)
    elapsed = time.perf_counter() - started
    print(
        f"ingested {report.ingested} garments through the features service (Triton) in "
        f"{elapsed:.1f} s ({report.embedded / elapsed:.0f} images/s), encoder {report.model_version}"
    )


def _shop_the_look(gateway: gateway_pb2_grpc.GatewayServiceStub, experiment) -> None:
    from matplotlib import cbook
    from PIL import Image

    from drape.models.images import encode_jpeg

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        photo = encode_jpeg(np.asarray(Image.open(handle).convert("RGB")))
    user = next(
        u for u in (f"shopper-{i}" for i in range(100)) if experiment.assign(u).strategy == "hybrid"
    )
    reply = gateway.Recommend(
        gateway_pb2.GatewayServiceRecommendRequest(
            user_id=user, k=5, photo=common_pb2.Image(data=photo)
        )
    )
    used = "used" if reply.photo.used else f"not used: {reply.photo.reason}"
    print(f"\nshop the look: a first-time shopper sends a photo (navy uniform); photo {used}")
    for item in reply.items:
        channels = "+".join(
            common_pb2.Channel.Name(c.channel).removeprefix("CHANNEL_").lower()
            for c in item.channels
        )
        print(f"  {item.rank}. {item.garment.garment_id} {item.garment.title:<24} via {channels}")


def _previews_page(gateway: gateway_pb2_grpc.GatewayServiceStub, experiment, product_shots: Path,
                   out: Path) -> Path:  # fmt: skip
    """The storefront's main call: recommendations for a shopper who sent a photo (the
    astronaut), each garment previewed on it; written as an HTML page with its images."""
    from skimage import data

    from drape.models.images import decode_image, encode_jpeg, encode_png
    from drape.services.runtime.previews import preview_status_name

    photo = data.astronaut()
    request = gateway_pb2.GatewayServiceRecommendRequest(
        user_id=next(u for u in (f"visitor-{i}" for i in range(100)) if experiment.assign(u).previews),
        k=8, photo=common_pb2.Image(data=encode_jpeg(photo)), previews=True,
        delivery=common_pb2.PREVIEW_DELIVERY_INLINE,
    )  # fmt: skip
    started = time.perf_counter()
    reply = gateway.Recommend(request, timeout=60)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    again = gateway.Recommend(request, timeout=60)
    warm = time.perf_counter() - started
    a = reply.assignment
    print(f"\npreviews: a shopper in {a.experiment}/{a.variant} sends a photo (the astronaut) and "
          f"gets {len(reply.items)} garments previewed on it in {cold:.2f} s "
          f"(asked again: {warm * 1000:.0f} ms, {_statuses(again)})")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "shopper.png").write_bytes(encode_png(photo))
    cards = []
    for item in reply.items:
        g, preview = item.garment, item.preview
        status = preview_status_name(preview.status).upper()
        print(f"  {item.rank}. {g.garment_id} {g.title:<24} preview {status} "
              f"{preview.latency_ms:5.0f} ms {preview.reason}")  # fmt: skip
        shot = product_shots / f"{g.garment_id}.jpg"
        if shot.exists():
            (out / f"{g.garment_id}-garment.png").write_bytes(
                encode_png(decode_image(shot.read_bytes()).pixels)
            )
        if preview.image.data:
            (out / f"{g.garment_id}-preview.png").write_bytes(
                encode_png(decode_image(preview.image.data).pixels)
            )
        cards.append(_card(item, status, shot.exists()))
    page = out / "index.html"
    page.write_text(_PAGE.format(variant=html.escape(f"{a.experiment}/{a.variant}"), cards="\n".join(cards),
                                 cold=f"{cold:.2f}", warm=f"{warm * 1000:.0f}"))  # fmt: skip
    print(f"  page: {page.resolve()}")
    return page


def _statuses(reply: gateway_pb2.GatewayServiceRecommendResponse) -> str:
    from drape.services.runtime.previews import preview_status_name

    counts = Counter(preview_status_name(item.preview.status) for item in reply.items)
    return ", ".join(f"{n} {name}" for name, n in counts.items())


def _card(item: common_pb2.RecommendedGarment, status: str, has_shot: bool) -> str:
    g = item.garment
    shot = f'<img src="{g.garment_id}-garment.png" alt="product shot">' if has_shot else ""
    if item.preview.image.data:
        preview = f'<img src="{g.garment_id}-preview.png" alt="try-on preview">'
    else:
        preview = f'<p class="status">{status}: {html.escape(item.preview.reason)}</p>'
    return (f'<figure>{preview}<figcaption>{item.rank}. {html.escape(g.title)} '
            f"({html.escape(g.garment_id)}, {g.price_minor / 100:.2f} {html.escape(g.currency)}) "
            f"{shot}<br>preview {status}, {item.preview.latency_ms:.0f} ms</figcaption></figure>")  # fmt: skip


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drape: recommended for you, on you</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
main {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ width: 256px; margin: 0; }}
figure > img {{ width: 256px; }}
figcaption img {{ width: 48px; vertical-align: middle; }}
.status {{ width: 256px; height: 256px; background: #eee; }}
</style></head>
<body>
<h1>Recommended for you, on you</h1>
<p>The shopper's photo, then the top garments for them (experiment variant {variant}), each
previewed on the photo by the try-on GAN served by Triton and spliced back into it.
All previews in {cold} s; the same request again, from the preview cache, in {warm} ms.</p>
<main>
<figure><img src="shopper.png" alt="the shopper's photo"><figcaption>the shopper</figcaption></figure>
{cards}
</main>
</body></html>
"""


def _seed(gateway: gateway_pb2_grpc.GatewayServiceStub, frame: pd.DataFrame) -> None:

    events = events_from_frame(frame)
    stored = duplicates = 0
    started = time.perf_counter()
    for start in range(0, len(events), 500):
        reply = gateway.Track(gateway_pb2.TrackRequest(events=events[start : start + 500]))
        stored += reply.stored
        duplicates += reply.duplicates
    elapsed = time.perf_counter() - started
    print(
        f"tracked {len(events)} shopper events through the gateway in {elapsed:.2f} s: "
        f"{stored} stored, {duplicates} duplicates"
    )
    retry = gateway.Track(gateway_pb2.TrackRequest(events=events[:500]))
    print(
        f"re-sent the first 500 (a client retry): {retry.stored} stored, {retry.duplicates} duplicates"
    )


def _recommend_and_feedback(gateway: gateway_pb2_grpc.GatewayServiceStub, users: list[str]) -> None:
    from drape.services.runtime.previews import preview_status_name

    for user in users:
        reply = gateway.Recommend(
            gateway_pb2.GatewayServiceRecommendRequest(user_id=user, k=5, previews=True)
        )
        a = reply.assignment
        print(
            f"\n{user}: experiment {a.experiment}/{a.variant} (strategy {a.strategy}, model {reply.model_version})"
        )
        for item in reply.items:
            g = item.garment
            preview = preview_status_name(item.preview.status).upper()
            channels = "+".join(
                common_pb2.Channel.Name(c.channel).removeprefix("CHANNEL_").lower()
                for c in item.channels
            )
            print(
                f"  {item.rank}. {g.garment_id} {g.title:<24} {g.price_minor / 100:>7.2f} {g.currency}"
                f"  score {item.score:6.2f}  via {channels}"
            )
        print(f"  previews: {preview}: {reply.items[0].preview.reason}")
        shown = [item.garment.garment_id for item in reply.items]
        feedback = [_event(events_pb2.EVENT_TYPE_IMPRESSION, user, g, a,
                           recommendation_id=reply.recommendation_id) for g in shown]  # fmt: skip
        feedback.append(_event(events_pb2.EVENT_TYPE_PURCHASE, user, shown[0], a,
                               recommendation_id=reply.recommendation_id,
                               value_minor=reply.items[0].garment.price_minor))  # fmt: skip
        feedback.append(_event(events_pb2.EVENT_TYPE_RATING, user, shown[0], a,
                               rating=5 if a.previews_enabled else 4))  # fmt: skip
        tracked = gateway.Track(gateway_pb2.TrackRequest(events=feedback))
        print(
            f"  feedback: {len(shown)} impressions, 1 purchase of {shown[0]}, 1 rating "
            f"-> {tracked.stored} stored"
        )


# How the demo's simulated shoppers respond: a purchase of a shown garment is likelier in
# the treatment, which shows try-on previews (the effect the report should find).
_DEMO_CONVERSION = {"control": 0.10, "treatment": 0.16}


def _experiment(gateway: gateway_pb2_grpc.GatewayServiceStub, config: DrapeConfig, experiment,
                users, out: Path, seed: int) -> Path:  # fmt: skip
    """The two-arm experiment, run to its report: every shopper gets a list through the
    gateway (logged as an exposure), then behaves as simulated; the events cite the list
    and carry no labels (the server attributes them). The report is read from the event
    store the services wrote, printed, and written as HTML beside the previews page."""
    from drape.cli.report import format_report
    from drape.recsys.report import ReportSettings, experiment_report
    from drape.recsys.report_html import render
    from drape.services.events.store import open_event_store

    rng = np.random.default_rng(seed)
    # The window opens at the first of these lists: the demo's earlier calls stay out of it.
    since_us = time.time_ns() // 1000
    served: list[str] = []
    for user in users:
        reply = gateway.Recommend(gateway_pb2.GatewayServiceRecommendRequest(user_id=user, k=8))
        served.append(reply.recommendation_id)
        variant = reply.assignment.variant
        rid = reply.recommendation_id
        shown = [item.garment for item in reply.items]
        events = [_event(events_pb2.EVENT_TYPE_VIEW, user, g.garment_id, None, recommendation_id=rid)
                  for g in shown if rng.random() < 0.3]  # fmt: skip
        if variant == "treatment" and rng.random() < 0.5:
            events.append(_event(events_pb2.EVENT_TYPE_TRYON_VIEW, user, shown[0].garment_id, None,
                                 recommendation_id=rid))  # fmt: skip
        if rng.random() < _DEMO_CONVERSION.get(variant, 0.1):
            bought = shown[int(rng.integers(len(shown)))]
            events += [_event(kind, user, bought.garment_id, None, recommendation_id=rid,
                              value_minor=bought.price_minor if kind == events_pb2.EVENT_TYPE_PURCHASE else 0)
                       for kind in (events_pb2.EVENT_TYPE_ADD_TO_CART, events_pb2.EVENT_TYPE_PURCHASE)]  # fmt: skip
        if rng.random() < 0.4:
            mean = 4.1 if variant == "treatment" else 3.7
            events.append(_event(events_pb2.EVENT_TYPE_RATING, user, "", None,
                                 rating=int(np.clip(np.rint(rng.normal(mean, 0.9)), 1, 5))))  # fmt: skip
        if events:
            gateway.Track(gateway_pb2.TrackRequest(events=events))
    store = open_event_store(config.events_store_url())
    try:
        # The exposure log is written in the background: wait (bounded) until it has every
        # list served here.
        deadline = time.monotonic() + 30
        while len(store.exposures_of(served)) < len(served) and time.monotonic() < deadline:
            time.sleep(0.2)
        report = experiment_report(store, ReportSettings(experiment.name, since_us,
                                                         time.time_ns() // 1000 + 1_000_000))  # fmt: skip
    finally:
        store.close()
    print(f"\nthe experiment {experiment.name}: {len(served)} shoppers each got a list, then behaved as "
          f"simulated (conversion {_DEMO_CONVERSION}); drape report experiment {experiment.name}:")  # fmt: skip
    print(format_report(report))
    out.mkdir(parents=True, exist_ok=True)
    page = out / "experiment-report.html"
    page.write_text(render(report))
    return page


def _bad_requests(gateway: gateway_pb2_grpc.GatewayServiceStub) -> None:
    print("\nbad input is refused with a reason, and nothing breaks:")
    bad = events_pb2.Event(
        event_id="bad-1", type=events_pb2.EVENT_TYPE_RATING, user_id="u1", rating=9
    )
    for label, call in (
        (
            "k=0",
            lambda: gateway.Recommend(
                gateway_pb2.GatewayServiceRecommendRequest(user_id="u1", k=0)
            ),
        ),
        ("rating 9", lambda: gateway.Track(gateway_pb2.TrackRequest(events=[bad]))),
    ):
        try:
            call()
            print(f"  {label}: accepted (unexpected)")
        except grpc.RpcError as exc:
            print(f"  {label}: {exc.code().name}: {exc.details()}")


def _event(kind: int, user: str, garment: str, assignment, **fields) -> events_pb2.Event:
    """A shopper event with a fresh id, labelled as the recommendation response was (or not
    at all, without an assignment: the server attributes it)."""
    labels = (
        {"experiment": assignment.experiment, "variant": assignment.variant} if assignment else {}
    )
    return events_pb2.Event(event_id=uuid.uuid4().hex, type=kind, user_id=user,
                            garment_id=garment, **labels, **fields)  # fmt: skip

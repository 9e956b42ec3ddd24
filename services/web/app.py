"""`drape web`: one HTTP server for what a browser or a backend without gRPC needs.

- ``POST /v1/recommend``, ``/v1/try-on``, ``/v1/track``: the gateway's RPCs as JSON, in
  protobuf's own JSON mapping (lowerCamelCase fields, enums by name, bytes as base64). The
  body becomes the gateway's request message and goes to the gateway over gRPC, so the
  validation is the gateway's own; a gRPC status comes back as its HTTP code with the same
  message (``{"error": {"code", "status", "message"}}``). ``Authorization: Bearer <key>``
  and ``X-Request-Id`` travel on as metadata; ``X-Request-Timeout-Ms`` sets the deadline.
- ``GET /v1/previews/<digest>?expires=&sig=[&size=512][&format=webp]``: a stored preview
  (403 for a bad or expired signature, 404 for an unknown one), immutable and cacheable.
- ``GET /openapi.json``: the API above, generated from the protos (tools/openapi.py).
- ``GET /`` (storefront), ``/analyst`` (the live experiment report): plain HTML and a little
  JavaScript from this package, nothing fetched from elsewhere.
- ``GET /healthz``, ``/metrics``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import re
import threading
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import grpc
from google.protobuf import json_format
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles

from drape.services.runtime.cache import TtlCache
from drape.services.runtime.client import connect
from drape.services.runtime.config import DrapeConfig, ServerConfig
from drape.services.runtime.interceptors import REQUEST_ID
from drape.services.runtime.preview_store import (
    DIGEST,
    FORMATS,
    PreviewDenied,
    PreviewStore,
    UrlSigner,
    render_variant,
)
from drape.v1 import gateway_pb2, gateway_pb2_grpc

log = logging.getLogger("drape.web")
GATEWAY = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"]
# gRPC status -> HTTP status (the mapping of google.rpc.Code's documentation).
HTTP_STATUS = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409, grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DATA_LOSS: 500,
}  # fmt: skip
_BEARER = re.compile(r"Bearer [\x21-\x7e]{1,512}")
_EXPERIMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Same-origin pages; previews may come from the configured public URL (a CDN).
_PAGE_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
                 "x-frame-options": "SAMEORIGIN"}  # fmt: skip


def path_of(method: str) -> str:
    """``TryOn`` -> ``/v1/try-on``: the JSON route of a gateway method."""
    return "/v1/" + re.sub(r"(?<!^)(?=[A-Z])", "-", method).lower()


def error(status: int, code: grpc.StatusCode, message: str, **headers: str) -> JSONResponse:
    body = {"error": {"code": status, "status": code.name, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers or None)


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "drape_web_requests", "HTTP requests to the web front, by route and status code.",
            ["route", "code"], registry=registry,
        )  # fmt: skip
        self.seconds = Histogram(
            "drape_web_request_seconds", "Time to answer an HTTP request, by route.", ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=registry,
        )  # fmt: skip


class WebFront:
    """The app's state: the gateway channel, the preview store and signer, the event store
    the analyst page reads (opened on first use)."""

    def __init__(self, config: DrapeConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.registry = registry or CollectorRegistry()
        self.metrics = _Metrics(self.registry)
        client = ServerConfig(
            tls=config.client_tls, max_message_mb=config.gateway.server.max_message_mb
        )
        self.channel = connect(config.web.gateway_address, client)
        self.gateway = gateway_pb2_grpc.GatewayServiceStub(self.channel)
        self.store = PreviewStore.from_config(config)
        self.signer = UrlSigner.from_config(config)
        self.variants: TtlCache[bytes] = TtlCache(
            "preview_variant", 100_000, config.previews.variant_cache_mb * 2**20,
            config.previews.url_ttl_s, len, self.registry,
        ).start_sweeper()  # fmt: skip
        # A photo is base64 in the body: 4/3 of its bytes, and the rest of the message.
        self.max_body = math.ceil(config.gateway.max_photo_mb * 2**20 * 4 / 3) + 2**20
        self._events_store: Any = None
        self._events_lock = threading.Lock()

    def close(self) -> None:
        self.channel.close()
        self.variants.close()
        if self._events_store is not None:
            self._events_store.close()

    def events_store(self) -> Any:
        from drape.services.events.store import open_event_store

        with self._events_lock:
            if self._events_store is None:
                self._events_store = open_event_store(self.config.events_store_url())
            return self._events_store

    # -- the JSON front ------------------------------------------------------------------
    async def call(self, request: Request, method: str) -> Response:
        descriptor = GATEWAY.methods_by_name[method]
        request_type = getattr(gateway_pb2, descriptor.input_type.name)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return self._too_large()
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                return self._too_large()
        try:
            document = json.loads(bytes(body) or b"{}")
            if not isinstance(document, dict):
                raise json_format.ParseError(
                    f"expected a JSON object ({descriptor.input_type.name})"
                )
            message = json_format.ParseDict(document, request_type())
        except (json_format.ParseError, ValueError, RecursionError) as exc:
            return error(400, grpc.StatusCode.INVALID_ARGUMENT, f"request body: {exc}")
        metadata, timeout, refused = self._call_options(request)
        if refused is not None:
            return refused
        rpc = getattr(self.gateway, method).with_call
        try:
            reply, call = await run_in_threadpool(
                functools.partial(rpc, message, timeout=timeout, metadata=metadata)
            )
        except grpc.RpcError as exc:
            code = exc.code()
            headers = {}
            for key, value in exc.trailing_metadata() or ():
                if key == "retry-after-ms":
                    headers = {
                        "retry-after": str(math.ceil(int(value) / 1000)),
                        "retry-after-ms": value,
                    }
                elif key == "x-request-id":
                    headers["x-request-id"] = value
            return error(HTTP_STATUS.get(code, 500), code, exc.details() or code.name, **headers)
        headers = {k: v for k, v in call.trailing_metadata() or () if k == "x-request-id"}
        payload = json_format.MessageToDict(reply)
        return JSONResponse(payload, headers=headers or None)

    def _too_large(self) -> Response:
        return error(413, grpc.StatusCode.RESOURCE_EXHAUSTED,
                     f"the request body is over {self.max_body / 2**20:.0f} MiB: downscale the "
                     "photo before sending")  # fmt: skip

    def _call_options(
        self, request: Request
    ) -> tuple[list[tuple[str, str]], float, Response | None]:
        metadata = []
        authorization = request.headers.get("authorization")
        if authorization is not None:
            if not _BEARER.fullmatch(authorization):
                return [], 0, error(401, grpc.StatusCode.UNAUTHENTICATED,
                                    "the Authorization header must be `Bearer <key>`")  # fmt: skip
            metadata.append(("authorization", authorization))
        request_id = request.headers.get("x-request-id")
        if request_id is not None:
            if not REQUEST_ID.fullmatch(request_id):
                return [], 0, error(400, grpc.StatusCode.INVALID_ARGUMENT,
                                    "X-Request-Id: 1-128 letters, digits or ._:/+=-")  # fmt: skip
            metadata.append(("x-request-id", request_id))
        timeout = self.config.web.call_timeout_s
        header = request.headers.get("x-request-timeout-ms")
        if header is not None:
            if not header.isdigit() or not 1 <= int(header) <= 600_000:
                return [], 0, error(400, grpc.StatusCode.INVALID_ARGUMENT,
                                    "X-Request-Timeout-Ms: whole milliseconds, 1 to 600000")  # fmt: skip
            timeout = int(header) / 1000
        return metadata, timeout, None

    # -- previews ------------------------------------------------------------------------
    async def preview(self, request: Request) -> Response:
        digest = request.path_params["digest"]
        if not DIGEST.fullmatch(digest):
            return error(404, grpc.StatusCode.NOT_FOUND, "no such preview")
        query = request.query_params
        try:
            expires = self.signer.verify(digest, query.get("expires", ""), query.get("sig", ""))
        except PreviewDenied as exc:
            return error(403, grpc.StatusCode.PERMISSION_DENIED, str(exc))
        size_text, fmt = query.get("size", "full"), query.get("format", "jpeg")
        sizes = self.config.previews.sizes
        if size_text != "full" and (not size_text.isdigit() or int(size_text) not in sizes):
            return error(400, grpc.StatusCode.INVALID_ARGUMENT,
                         f"size: 'full' or one of {sizes}")  # fmt: skip
        if fmt not in FORMATS:
            return error(400, grpc.StatusCode.INVALID_ARGUMENT, f"format: one of {sorted(FORMATS)}")
        etag = f'"{digest[:32]}-{size_text}-{fmt}"'
        max_age = max(int(expires - time.time()), 0)
        headers = {
            "etag": etag,
            "cache-control": f"public, max-age={max_age}, immutable",
            "x-content-type-options": "nosniff",
        }
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        size = None if size_text == "full" else int(size_text)

        def load() -> bytes | None:
            stored = self.store.get(digest)
            return None if stored is None else render_variant(stored, size, fmt)

        key = (digest, size_text, fmt)
        body = self.variants.get(key)
        if body is None:
            body = await run_in_threadpool(load)
            if body is None:
                return error(404, grpc.StatusCode.NOT_FOUND, "no such preview")
            self.variants.put(key, body)
        return Response(body, media_type=FORMATS[fmt], headers=headers)

    # -- the analyst's pages -------------------------------------------------------------
    async def experiments(self, request: Request) -> Response:
        def names() -> list[str]:
            rows = self.events_store().query("SELECT DISTINCT experiment FROM exposure_arms", ())
            return sorted(str(name) for (name,) in rows if name)

        return JSONResponse({"experiments": await run_in_threadpool(names)})

    def _report(self, name: str) -> dict[str, Any]:
        from drape.recsys.report import ReportSettings, experiment_report

        settings = ReportSettings(name, 0, time.time_ns() // 1000 + 1)
        return experiment_report(self.events_store(), settings)

    async def report(self, request: Request) -> Response:
        from drape.recsys.report import report_json
        from drape.recsys.report_html import render

        name, fmt = request.path_params["name"], request.path_params["format"]
        if not _EXPERIMENT.fullmatch(name) or fmt not in ("json", "html"):
            return error(404, grpc.StatusCode.NOT_FOUND, "no such report")
        report = await run_in_threadpool(self._report, name)
        if fmt == "json":
            text = report_json(report)
            return Response(
                text, media_type="application/json", headers={"cache-control": "no-store"}
            )
        return HTMLResponse(render(report), headers={"cache-control": "no-store", **_PAGE_HEADERS})


def _page(name: str, front: WebFront) -> Any:
    text = (resources.files("drape.services.web") / "static" / name).read_text()
    origin = re.match(r"https?://[^/]+", front.config.previews.public_url)
    images = "'self' blob: data:" + (f" {origin.group(0)}" if origin else "")
    headers = {
        **_PAGE_HEADERS,
        "content-security-policy": f"default-src 'self'; img-src {images}; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'self'",
        "cache-control": "no-cache",
    }

    async def page(request: Request) -> Response:
        return HTMLResponse(text, headers=headers)

    return page


@functools.cache
def _astronaut_jpeg() -> bytes:
    from skimage import data

    from drape.models.images import encode_jpeg

    return encode_jpeg(data.astronaut(), quality=92)


async def _astronaut(request: Request) -> Response:
    """The sample shopper photo the storefront offers (scikit-image's astronaut)."""
    body = await run_in_threadpool(_astronaut_jpeg)
    return Response(
        body, media_type="image/jpeg", headers={"cache-control": "public, max-age=86400"}
    )


def create_app(config: DrapeConfig, registry: CollectorRegistry | None = None) -> Starlette:
    front = WebFront(config, registry)
    openapi_text = (resources.files("drape.services.web") / "openapi.json").read_text()

    async def openapi(request: Request) -> Response:
        return Response(openapi_text, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(front.registry), media_type=CONTENT_TYPE_LATEST)

    def calls(method: str) -> Any:
        async def endpoint(request: Request) -> Response:
            return await front.call(request, method)

        return endpoint

    routes = [Route(path_of(m.name), calls(m.name), methods=["POST"]) for m in GATEWAY.methods]
    routes += [
        Route("/v1/previews/{digest}", front.preview, methods=["GET", "HEAD"]),
        Route("/openapi.json", openapi),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
    ]
    if config.web.pages:
        static = str(resources.files("drape.services.web") / "static")
        routes += [
            Route("/", _page("storefront.html", front)),
            Route("/analyst", _page("analyst.html", front)),
            Route("/samples/astronaut.jpg", _astronaut),
            Route("/v1/experiments", front.experiments),
            Route("/v1/reports/{name}.{format}", front.report),
            Mount("/static", StaticFiles(directory=static)),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            front.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.router.redirect_slashes = False  # a path is served as written, or not at all
    app.state.front = front
    app.add_middleware(_Measured, routes=routes, metrics=front.metrics)
    return app


class _Measured:
    """Counts and times every HTTP request by its route's pattern (never the raw path, whose
    values are unbounded) and status code."""

    def __init__(self, app: Any, routes: list[Any], metrics: _Metrics) -> None:
        self.app, self.routes, self.metrics = app, routes, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = next((r.path for r in self.routes if r.matches(scope)[0] == Match.FULL), "other")
        started, status = time.perf_counter(), [500]

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.seconds.labels(route).observe(time.perf_counter() - started)

"""Storefront API keys at the gateway.

A storefront sends ``authorization: Bearer <key>``. Keys look like ``drape_<id>_<secret>``:
the id names the key in metrics and logs, and the secret (32 random bytes) never leaves the
caller and the moment of checking. The keys file holds, per key, its id, the SHA-256 of the
whole key, its scopes (``recommend``, ``tryon``, ``track``: one per gateway method) and its
token-bucket limit; it is re-read when it changes (a Secret update reaches a running gateway
within ``api_keys_reload_s``). ``drape keys new`` makes a key and its entry.

Refusals: ``UNAUTHENTICATED`` without a key or with one the file does not hold,
``PERMISSION_DENIED`` for a method outside the key's scopes, ``RESOURCE_EXHAUSTED`` over its
limit, with the wait in the ``retry-after-ms`` trailer.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml
from prometheus_client import CollectorRegistry, Counter

from drape.services.runtime.errors import PermissionDenied, ResourceExhausted, Unauthenticated
from drape.services.runtime.watched import WatchedFile

SCOPES = ("recommend", "tryon", "track")
KEY_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
PREFIX = "drape_"
RETRY_AFTER = "retry-after-ms"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyEntry:
    key_id: str
    sha256: str
    scopes: frozenset[str]
    rate_per_s: float  # sustained calls per second
    burst: int  # calls allowed at once

    def as_dict(self) -> dict[str, object]:
        return {"id": self.key_id, "sha256": self.sha256, "scopes": sorted(self.scopes),
                "rate_per_s": self.rate_per_s, "burst": self.burst}  # fmt: skip


def new_key(
    key_id: str, scopes: Sequence[str], rate_per_s: float, burst: int
) -> tuple[str, KeyEntry]:
    """A fresh key (shown once) and the entry that stores only its hash."""
    entry = _entry({"id": key_id, "sha256": "0" * 64, "scopes": list(scopes), "rate_per_s": rate_per_s,
                    "burst": burst}, "new key")  # fmt: skip
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return key, KeyEntry(entry.key_id, digest(key), entry.scopes, entry.rate_per_s, entry.burst)


def _entry(raw: object, where: str) -> KeyEntry:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping with id, sha256, scopes, rate_per_s, burst")
    key_id, sha, scopes = str(raw.get("id", "")), str(raw.get("sha256", "")), raw.get("scopes")
    if not KEY_ID.fullmatch(key_id):
        raise ValueError(f"{where}: id {key_id!r} must be 1-40 of a-z, 0-9 and '-'")
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ValueError(
            f"{where} ({key_id}): sha256 must be 64 hex digits (the key's hash, never the key)"
        )
    if not isinstance(scopes, list) or not scopes or not set(scopes) <= set(SCOPES):
        raise ValueError(
            f"{where} ({key_id}): scopes must be a non-empty list of {', '.join(SCOPES)}"
        )
    try:
        rate, burst = float(raw.get("rate_per_s", 10)), int(raw.get("burst", 20))
    except (TypeError, ValueError):
        raise ValueError(f"{where} ({key_id}): rate_per_s and burst must be numbers") from None
    if not (rate > 0 and math.isfinite(rate)) or burst < 1:
        raise ValueError(f"{where} ({key_id}): rate_per_s must be > 0 and burst >= 1")
    return KeyEntry(key_id, sha, frozenset(scopes), rate, burst)


def load_keys(path: Path, _current: object = None) -> dict[str, KeyEntry]:
    """The keys file: ``keys: [{id, sha256, scopes, rate_per_s, burst}, ...]``, by id."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read the keys file {path}: {exc}") from None
    raw = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected `keys:` with a list of keys")
    keys: dict[str, KeyEntry] = {}
    for i, item in enumerate(raw):
        entry = _entry(item, f"{path}: keys[{i}]")
        if entry.key_id in keys:
            raise ValueError(f"{path}: key id {entry.key_id!r} appears twice")
        keys[entry.key_id] = entry
    return keys


def add_key(path: Path, entry: KeyEntry) -> None:
    """Appends an entry to a keys file (created if absent); an id already there is refused."""
    keys = load_keys(path) if path.exists() else {}
    if entry.key_id in keys:
        raise ValueError(
            f"{path} already holds a key {entry.key_id!r}: revoke it first or pick another id"
        )
    write_keys(path, [*keys.values(), entry])


def write_keys(path: Path, entries: Sequence[KeyEntry]) -> None:
    """Replaces the keys file at once (a reader sees the old file or the new one)."""
    body = {"keys": [k.as_dict() for k in entries]}
    staging = path.with_name(path.name + ".tmp")
    staging.write_text("# Drape API keys: hashes only (drape keys new). Reloaded while the gateway runs.\n"
                       + yaml.safe_dump(body, sort_keys=False))  # fmt: skip
    staging.replace(path)


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, now: float) -> None:
        self.tokens, self.updated = tokens, now


class ApiKeys:
    """Checks each gateway call's key against the keys file, and meters it."""

    def __init__(self, path: Path, reload_s: float, registry: CollectorRegistry,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.calls = Counter("drape_gateway_key_calls", "Gateway calls by API key id, method and outcome "
                             "(ok, unauthenticated, permission_denied, rate_limited); key id 'none' or "
                             "'unknown' when no key matched.", ["key_id", "method", "outcome"],
                             registry=registry)  # fmt: skip
        self.reload_failures = Counter("drape_gateway_keys_reload_failures", "Keys files refused on reload "
                                       "(the keys in use stay).", registry=registry)  # fmt: skip
        self._keys = WatchedFile(
            path, load_keys, reload_s, on_error=lambda _: self.reload_failures.inc()
        )
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, context: grpc.ServicerContext, scope: str) -> str:
        """The calling key's id, or the refusal raised (and counted)."""
        key = _bearer(context)
        if key is None:
            self._count("none", scope, "unauthenticated")
            raise Unauthenticated("missing API key: send `authorization: Bearer <key>` metadata")
        entry = self._match(key)
        if entry is None:
            self._count("unknown", scope, "unauthenticated")
            raise Unauthenticated("unknown or revoked API key")
        if scope not in entry.scopes:
            self._count(entry.key_id, scope, "permission_denied")
            raise PermissionDenied(f"API key {entry.key_id!r} is not allowed to {scope} "
                                   f"(its scopes: {', '.join(sorted(entry.scopes))})")  # fmt: skip
        wait_s = self._take(entry)
        if wait_s > 0:
            self._count(entry.key_id, scope, "rate_limited")
            wait_ms = max(1, math.ceil(wait_s * 1000))
            raise ResourceExhausted(f"API key {entry.key_id!r} is over its limit of {entry.rate_per_s:g} "
                                    f"calls/s (burst {entry.burst}): retry in {wait_ms} ms",
                                    trailers=((RETRY_AFTER, str(wait_ms)),))  # fmt: skip
        self._count(entry.key_id, scope, "ok")
        return entry.key_id

    def _match(self, key: str) -> KeyEntry | None:
        if not key.startswith(PREFIX):
            return None
        key_id = key[len(PREFIX) :].split("_", 1)[0]
        entry = self._keys.current().get(key_id)
        if entry is None or not hmac.compare_digest(entry.sha256, digest(key)):
            return None
        return entry

    def _take(self, entry: KeyEntry) -> float:
        """0 if a token was taken, else the seconds until one is there."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(entry.key_id)
            if bucket is None:
                bucket = self._buckets[entry.key_id] = _Bucket(float(entry.burst), now)
            bucket.tokens = min(
                float(entry.burst), bucket.tokens + (now - bucket.updated) * entry.rate_per_s
            )
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / entry.rate_per_s

    def _count(self, key_id: str, method: str, outcome: str) -> None:
        self.calls.labels(key_id, method, outcome).inc()


def _bearer(context: grpc.ServicerContext) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == "authorization":
            text = value if isinstance(value, str) else value.decode(errors="replace")
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None

"""The preview store and its signed URLs: how a reply carries a preview as a link a browser or
a CDN fetches instead of the image itself.

The gateway writes each composite once, named by the SHA-256 of its bytes (content-addressed
and immutable: the same preview is the same object, whoever asked for it), under
``<data_dir>/previews/ab/<digest>.jpg`` and, where object storage is configured, under
``<storage.url>/previews/...`` too, so any pod of the web front can serve it. The reply
carries ``<public_url>/v1/previews/<digest>?expires=<unix s>&sig=<HMAC>``: the signature
(HMAC-SHA256 over the digest and the expiry, with a key only Drape holds) makes the link
unguessable and lets it lapse. Expiries are rounded up to whole ``url_ttl_s / 8`` steps, so
the same preview asked for again soon gets the same URL and hits the browser's or the CDN's
cache.

The keys file holds one key per line: the first signs, every line verifies, so a key is
rotated by putting the new one first, and the old one dropped once its URLs have lapsed. It
is re-read when it changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import math
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drape.services.runtime.storage import PREVIEWS_KEY, ObjectStorage
from drape.services.runtime.watched import WatchedFile

DIGEST = re.compile(r"[0-9a-f]{64}")
FORMATS = {"jpeg": "image/jpeg", "webp": "image/webp"}
MIN_KEY_BYTES = 32


class PreviewDenied(Exception):
    """A preview URL whose signature is wrong or has expired (HTTP 403)."""


def _relative(digest: str) -> str:
    return f"{digest[:2]}/{digest}.jpg"


class PreviewStore:
    """Composites by content digest: a local folder, mirrored to object storage when there
    is one (written there as well; read from there when this pod has not seen it)."""

    def __init__(self, root: Path, remote: ObjectStorage | None = None) -> None:
        self.root = Path(root)
        self.remote = remote

    @classmethod
    def from_config(cls, config: Any) -> PreviewStore:
        return cls(config.previews_path(), ObjectStorage.from_config(config))

    def path(self, digest: str) -> Path:
        if not DIGEST.fullmatch(digest):
            raise ValueError(f"{digest!r} is not a preview digest (64 lowercase hex digits)")
        return self.root / _relative(digest)

    def put(self, data: bytes) -> str:
        """Stores a composite (once: the name is its content); returns its digest."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
            if self.remote is not None:
                self.remote.put_file(path, f"{PREVIEWS_KEY}/{_relative(digest)}")
        return digest

    def get(self, digest: str) -> bytes | None:
        """The composite, or None if no pod stored it (or ``digest`` is not a digest)."""
        if not DIGEST.fullmatch(digest):
            return None
        path = self.path(digest)
        if not path.exists() and self.remote is not None:
            self.remote.pull_preview(_relative(digest), path)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None


def _read_keys(path: Path, current: list[bytes] | None = None) -> list[bytes]:
    keys = [line.strip().encode() for line in path.read_text().splitlines() if line.strip()]
    if not keys:
        raise ValueError(f"{path}: no signing key (one per line, the first signs)")
    short = [i + 1 for i, key in enumerate(keys) if len(key) < MIN_KEY_BYTES]
    if short:
        raise ValueError(
            f"{path}: keys on lines {short} are shorter than {MIN_KEY_BYTES} characters"
        )
    return keys


def ensure_key_file(path: Path) -> Path:
    """Creates a keys file with one random key (mode 0600) if there is none: the local
    default, shared by the gateway and the web front of one machine."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(MIN_KEY_BYTES) + "\n")
        # Linked whole into place: a process starting at the same time sees no file or this
        # one, never half of it, and the first one made is the one everyone uses.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires: int


class UrlSigner:
    """Signs preview URLs and checks them (the keys file is re-read when it changes)."""

    def __init__(self, keys_path: Path, public_url: str, ttl_s: float) -> None:
        self.keys = WatchedFile(Path(keys_path), _read_keys)
        self.public_url = public_url.rstrip("/")
        self.ttl_s = ttl_s
        self.step_s = max(int(ttl_s / 8), 1)

    @classmethod
    def from_config(cls, config: Any) -> UrlSigner:
        settings = config.previews
        path = Path(settings.signing_keys_path) if settings.signing_keys_path else None
        if path is None:
            path = ensure_key_file(config.data_dir / "preview-signing.keys")
        return cls(path, settings.public_url, settings.url_ttl_s)

    @staticmethod
    def _signature(key: bytes, digest: str, expires: int) -> str:
        mac = hmac.new(key, f"drape-preview/v1/{digest}/{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    def sign(self, digest: str, now: float | None = None) -> SignedUrl:
        now = time.time() if now is None else now
        expires = math.ceil((now + self.ttl_s) / self.step_s) * self.step_s
        signature = self._signature(self.keys.current()[0], digest, expires)
        return SignedUrl(
            f"{self.public_url}/v1/previews/{digest}?expires={expires}&sig={signature}", expires
        )

    def verify(self, digest: str, expires: str, signature: str, now: float | None = None) -> int:
        """The expiry (unix seconds) of a valid URL; PreviewDenied for anything else."""
        if not expires.isdigit() or len(expires) > 12:
            raise PreviewDenied("the URL's expiry is missing or not a time")
        expiry = int(expires)
        if not any(
            hmac.compare_digest(self._signature(key, digest, expiry), signature)
            for key in self.keys.current()
        ):
            raise PreviewDenied("the URL's signature is not valid")
        if expiry <= (time.time() if now is None else now):
            raise PreviewDenied("the URL has expired: ask for the recommendation again")
        return expiry


def render_variant(jpeg: bytes, size: int | None, fmt: str) -> bytes:
    """The stored composite at most ``size`` pixels on its long side (None: as stored), in
    ``fmt`` (jpeg or webp)."""
    from PIL import Image

    if size is None and fmt == "jpeg":
        return jpeg
    with Image.open(io.BytesIO(jpeg)) as image:
        image = image.convert("RGB")
        if size is not None and max(image.size) > size:
            image.thumbnail((size, size), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        if fmt == "webp":
            image.save(out, "WEBP", quality=82, method=4)
        else:
            image.save(out, "JPEG", quality=85, optimize=True)
        return out.getvalue()

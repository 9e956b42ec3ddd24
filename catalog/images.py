"""The garment image store: content-addressed files under one root, named by URIs of the form
``drape-images://sha256/ab/<hash>.<ext>``. It is the one place that writes those URIs and the
one place that turns them back into files."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drape.services.runtime.storage import ObjectStorage

SCHEME = "drape-images://"
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
# What put() writes, and so the only relative paths a URI may name (no "..", no absolute path).
_RELATIVE = re.compile(r"sha256/([0-9a-f]{2})/\1[0-9a-f]{62}\.(jpg|png|webp)")


class ImageStore:
    """Content-addressed image files: ``sha256/ab/<hash><ext>``, written once, atomically.
    With object storage, new images are pushed to it and missing ones fetched from it."""

    def __init__(self, root: Path, remote: ObjectStorage | None = None) -> None:
        self.root = root
        self.remote = remote

    @staticmethod
    def holds(uri: str) -> bool:
        """Whether ``uri`` names an image of a store (rather than, say, a URL of a feed)."""
        return uri.startswith(SCHEME)

    def put(self, data: bytes, media_type: str) -> tuple[str, str]:
        """Stores ``data``; returns (sha256 hex, URI)."""
        digest = hashlib.sha256(data).hexdigest()
        relative = f"sha256/{digest[:2]}/{digest}{EXTENSIONS[media_type]}"
        path = self.root / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
            if self.remote is not None:
                self.remote.push_image(path, relative)
        return digest, SCHEME + relative

    def path(self, uri: str) -> Path:
        """The file ``uri`` names; ValueError for anything put() could not have written."""
        relative = uri.removeprefix(SCHEME)
        if not self.holds(uri) or not _RELATIVE.fullmatch(relative):
            raise ValueError(f"{uri!r} is not an image store URI ({SCHEME}sha256/...)")
        return self.root / relative

    def read(self, uri: str) -> bytes:
        """The stored bytes of ``uri``."""
        path = self.path(uri)
        if self.remote is not None and not path.exists():
            self.remote.pull_image(uri.removeprefix(SCHEME), path)
        return path.read_bytes()

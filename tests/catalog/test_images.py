"""The image store writes each image once under its content hash and resolves only the URIs
it could have written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from drape.catalog.images import SCHEME, ImageStore


def test_put_then_read_round_trips_and_is_content_addressed(tmp_path: Path):
    store = ImageStore(tmp_path)
    data = b"\x89PNG not really, but bytes"
    digest, uri = store.put(data, "image/png")
    assert digest == hashlib.sha256(data).hexdigest()
    assert uri == f"{SCHEME}sha256/{digest[:2]}/{digest}.png"
    assert store.holds(uri) and store.read(uri) == data
    assert store.put(data, "image/png") == (digest, uri), "the same bytes, the same file"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [f"{digest}.png"]


@pytest.mark.parametrize(
    "uri",
    [
        f"{SCHEME}../../etc/passwd",
        f"{SCHEME}sha256/ab/../../../secret.png",
        f"{SCHEME}/etc/passwd",
        f"{SCHEME}sha256/ab/{'cd' * 32}.png",  # the folder is not the hash's first two digits
        f"{SCHEME}sha256/ab/ab12.png",
        f"{SCHEME}sha256/ab/{'ab' * 32}.gif",
        "https://example.com/shirt.jpg",
    ],
)
def test_uris_it_could_not_have_written_are_refused(tmp_path: Path, uri: str):
    with pytest.raises(ValueError, match="not an image store URI"):
        ImageStore(tmp_path).path(uri)

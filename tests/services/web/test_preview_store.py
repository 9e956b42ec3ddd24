"""The preview store (content-addressed, mirrored to object storage) and the preview URLs'
signatures (expiry, tampering, key rotation)."""

from __future__ import annotations

import hashlib
import io
import stat
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from drape.services.runtime.config import DrapeConfig, StorageConfig
from drape.services.runtime.preview_store import (
    PreviewDenied,
    PreviewStore,
    UrlSigner,
    ensure_key_file,
    render_variant,
)

KEY_A, KEY_B = "a" * 40, "b" * 40


def _jpeg(seed: int = 0) -> bytes:
    import numpy as np

    from drape.models.images import encode_jpeg

    rng = np.random.default_rng(seed)
    return encode_jpeg(rng.integers(0, 255, (300, 200, 3), dtype=np.uint8), quality=90)


def _query(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return parts.path.rsplit("/", 1)[1], query["expires"][0], query["sig"][0]


def test_store_names_previews_by_content_and_writes_each_once(tmp_path: Path):
    store = PreviewStore(tmp_path / "previews")
    data = _jpeg()
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    path = store.path(digest)
    assert path.read_bytes() == data and path.parent.name == digest[:2]
    written = path.stat().st_mtime_ns
    assert store.put(data) == digest and path.stat().st_mtime_ns == written
    assert store.get(digest) == data
    assert store.get("0" * 64) is None
    for hostile in ("../../etc/passwd", "A" * 64, digest[:63], digest + "/x", ""):
        assert store.get(hostile) is None
        with pytest.raises(ValueError, match="not a preview digest"):
            store.path(hostile)


def test_store_mirrors_to_object_storage_and_reads_back_on_another_pod(
    tmp_path: Path, s3_bucket: str, s3_endpoint: str
):
    def pod(name: str) -> PreviewStore:
        config = DrapeConfig(data_dir=tmp_path / name, storage=StorageConfig(
            url=f"s3://{s3_bucket}/drape", endpoint_url=s3_endpoint))  # fmt: skip
        return PreviewStore.from_config(config)

    data = _jpeg(1)
    digest = pod("writer").put(data)
    reader = pod("reader")
    assert not reader.path(digest).exists()
    assert reader.get(digest) == data  # fetched from the bucket, then kept locally
    assert reader.path(digest).read_bytes() == data
    assert reader.get("f" * 64) is None


def test_urls_verify_until_they_expire(tmp_path: Path):
    keys = tmp_path / "keys"
    keys.write_text(KEY_A + "\n")
    signer = UrlSigner(keys, "https://cdn.example/", ttl_s=3600)
    digest = "ab" * 32
    signed = signer.sign(digest, now=1_000_000)
    assert signed.url.startswith(f"https://cdn.example/v1/previews/{digest}?")
    assert 1_000_000 + 3600 <= signed.expires <= 1_000_000 + 3600 + 450
    # Asked again a little later: the same URL (cacheable by the browser and a CDN).
    assert signer.sign(digest, now=1_000_100).url == signed.url
    path_digest, expires, sig = _query(signed.url)
    assert path_digest == digest
    assert signer.verify(digest, expires, sig, now=1_000_000) == signed.expires
    with pytest.raises(PreviewDenied, match="expired"):
        signer.verify(digest, expires, sig, now=signed.expires)
    with pytest.raises(PreviewDenied, match="signature"):
        signer.verify("cd" * 32, expires, sig, now=1_000_000)  # another preview
    with pytest.raises(PreviewDenied, match="signature"):
        signer.verify(digest, str(int(expires) + 3600), sig, now=1_000_000)  # a later expiry
    with pytest.raises(PreviewDenied, match="signature"):
        signer.verify(digest, expires, sig[:-1] + ("A" if sig[-1] != "A" else "B"), now=1_000_000)
    for bad in ("", "-1", "1e9", "12345678901234"):
        with pytest.raises(PreviewDenied, match="expiry"):
            signer.verify(digest, bad, sig, now=1_000_000)


def test_keys_rotate_without_breaking_live_urls(tmp_path: Path):
    keys = tmp_path / "keys"
    keys.write_text(KEY_A + "\n")
    signer = UrlSigner(keys, "http://127.0.0.1:8080", ttl_s=3600)
    signer.keys.check_every_s = 0
    digest = "12" * 32
    old = _query(signer.sign(digest, now=0).url)
    keys.write_text(f"{KEY_B}\n{KEY_A}\n")  # the new key signs; the old one still verifies
    new = _query(signer.sign(digest, now=0).url)
    assert new[2] != old[2]
    signer.verify(digest, old[1], old[2], now=0)
    signer.verify(digest, new[1], new[2], now=0)
    keys.write_text(f"{KEY_B}\n")  # the old one dropped: its URLs stop working
    with pytest.raises(PreviewDenied, match="signature"):
        signer.verify(digest, old[1], old[2], now=0)
    signer.verify(digest, new[1], new[2], now=0)


def test_a_short_or_empty_keys_file_is_refused(tmp_path: Path):
    keys = tmp_path / "keys"
    keys.write_text("short\n")
    with pytest.raises(ValueError, match="shorter than 32"):
        UrlSigner(keys, "http://127.0.0.1:8080", 3600)
    keys.write_text("\n\n")
    with pytest.raises(ValueError, match="no signing key"):
        UrlSigner(keys, "http://127.0.0.1:8080", 3600)


def test_the_default_key_is_made_once_private_and_whole(tmp_path: Path):
    path = tmp_path / "data" / "preview-signing.keys"
    made = []
    threads = [threading.Thread(target=lambda: made.append(ensure_key_file(path).read_text()))
               for _ in range(8)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 1 and len(made[0].strip()) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    config = DrapeConfig(data_dir=tmp_path / "data")
    a, b = UrlSigner.from_config(config), UrlSigner.from_config(config)
    url = a.sign("34" * 32).url
    b.verify("34" * 32, *_query(url)[1:])


def test_variants_are_resized_and_reencoded():
    from PIL import Image

    data = _jpeg(2)
    assert render_variant(data, None, "jpeg") is data
    small = render_variant(data, 128, "webp")
    with Image.open(io.BytesIO(small)) as image:
        assert image.format == "WEBP" and max(image.size) == 128 and image.size == (85, 128)
    with Image.open(io.BytesIO(render_variant(data, 1024, "jpeg"))) as image:
        assert image.format == "JPEG" and image.size == (200, 300)  # never enlarged

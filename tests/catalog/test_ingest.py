"""`drape ingest`: validation, content-addressed images, idempotent re-runs, a summary of
what was skipped, and no half-written index or catalog when something fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drape.catalog.embedders import inprocess_embedder, service_embedder
from drape.catalog.ingest import ingest, read_feed, validate_row
from drape.cli.stack import ephemeral
from drape.models.images import encode_jpeg
from drape.recsys.catalog import Catalog
from drape.recsys.index import EmbeddingIndex
from drape.services.registry import build_service
from drape.services.runtime.config import DrapeConfig
from drape.services.runtime.server import RunningService
from drape.synthetic.catalog import FEED_COLUMNS, write_generated_feed


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-garment generated feed with bad rows and bad images appended."""
    root = tmp_path_factory.mktemp("feed")
    path = write_generated_feed(40, root, seed=3)
    images = root / "images"
    (images / "junk.jpg").write_bytes(b"this is text, not a photo")
    (images / "cut.jpg").write_bytes((images / "g000000.jpg").read_bytes()[:400])
    bad = pd.DataFrame(
        [
            ["", "No id", "shirt", "10.00", "EUR", "true", "", "g000001.jpg"],
            ["b1", "Bad price", "shirt", "ten", "EUR", "true", "", "g000001.jpg"],
            ["b2", "Bad currency", "shirt", "10.00", "EURO", "true", "", "g000001.jpg"],
            ["b3", "No image file", "shirt", "10.00", "EUR", "true", "", "missing.jpg"],
            ["b4", "Junk image", "shirt", "10.00", "EUR", "true", "", "junk.jpg"],
            ["b5", "Truncated image", "shirt", "10.00", "EUR", "true", "", "cut.jpg"],
            ["g000002", "Duplicate", "shirt", "10.00", "EUR", "true", "", "g000001.jpg"],
            ["b6", "Bad attributes", "shirt", "10.00", "EUR", "true", "[1, 2]", "g000001.jpg"],
        ],
        columns=list(FEED_COLUMNS),
    )
    frame = pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False), bad])
    frame.to_csv(path, index=False)
    return path


def _config(tmp_path: Path) -> DrapeConfig:
    return DrapeConfig(data_dir=tmp_path / "data")


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    config = DrapeConfig(data_dir=tmp_path_factory.mktemp("models"))
    embed, version, close = inprocess_embedder(config)
    yield embed, version
    close()


def test_ingest_stores_embeds_indexes_and_lists_what_it_skipped(feed, embedder, tmp_path):
    config = _config(tmp_path)
    embed, version = embedder
    report = ingest(feed, feed.parent / "images", config, embed, version)
    assert (report.rows, report.ingested, report.embedded) == (48, 40, 40)
    reasons = {p.garment_id: p.reason for p in report.problems}
    assert len(report.problems) == 8
    assert reasons[""] == "garment_id is empty"
    assert "not a number" in reasons["b1"] and "ISO 4217" in reasons["b2"]
    assert "missing.jpg" in reasons["b3"] and "not a JPEG, PNG or WebP" in reasons["b4"]
    assert "could not be decoded" in reasons["b5"] and "duplicate" in reasons["g000002"]
    assert "JSON object" in reasons["b6"]

    catalog = Catalog.load(config.catalog_path())
    assert len(catalog) == 40
    row = catalog.row(0)
    assert (
        row["colour"] and row["pattern"] and row["image_uri"].startswith("drape-images://sha256/")
    )
    stored = config.images_path() / row["image_uri"].removeprefix("drape-images://")
    assert stored.read_bytes() == (feed.parent / "images" / "g000000.jpg").read_bytes()
    index = EmbeddingIndex.load(config.embeddings_path())
    assert len(index) == 40 and index.dim == 256
    # The garment's nearest neighbour in the index is itself.
    ids, _ = index.search(index.vector("g000005")[None], 1)
    assert ids[0][0] == "g000005"


def test_a_rerun_reuses_embeddings_and_publishes_the_same(feed, embedder, tmp_path):
    config = _config(tmp_path)
    embed, version = embedder
    ingest(feed, feed.parent / "images", config, embed, version)
    first = EmbeddingIndex.load(config.embeddings_path())
    first_catalog = Catalog.load(config.catalog_path()).frame
    calls = []

    def counting(items):
        calls.append(len(items))
        return embed(items)

    again = ingest(feed, feed.parent / "images", config, counting, version)
    assert again.reused == 40 and again.embedded == 0 and calls == []
    second = EmbeddingIndex.load(config.embeddings_path())
    ids = list(first_catalog["garment_id"])
    # The same vectors (the index re-normalises rows: equal up to float rounding).
    assert np.abs(first.vectors(ids)[0] - second.vectors(ids)[0]).max() < 1e-6
    pd.testing.assert_frame_equal(first_catalog, Catalog.load(config.catalog_path()).frame)
    # A new encoder version embeds everything again.
    ingest(feed, feed.parent / "images", config, counting, version + "-other")
    assert sum(calls) == 40


def test_a_failure_midway_leaves_the_published_index_and_catalog_alone(feed, embedder, tmp_path):
    config = _config(tmp_path)
    embed, version = embedder
    ingest(feed, feed.parent / "images", config, embed, version)
    before_catalog = Catalog.load(config.catalog_path()).frame
    before_files = sorted(p.name for p in config.data_dir.iterdir())
    batches = []

    def failing(items):
        batches.append(items)
        if len(batches) == 2:
            raise RuntimeError("encoder crashed")
        return embed(items)

    with pytest.raises(RuntimeError, match="encoder crashed"):
        ingest(feed, feed.parent / "images", config, failing, version + "-new", batch_size=8)
    pd.testing.assert_frame_equal(before_catalog, Catalog.load(config.catalog_path()).frame)
    assert len(EmbeddingIndex.load(config.embeddings_path())) == 40
    assert sorted(p.name for p in config.data_dir.iterdir()) == before_files


def test_ingest_through_the_features_service_matches_in_process(feed, embedder, tmp_path):
    config = ephemeral(_config(tmp_path))
    config.features.runner = "inprocess"
    service = RunningService(build_service("features", config), config.features.server).start()
    try:
        embed, version, close = service_embedder(service.address)
        try:
            remote = ingest(feed, feed.parent / "images", config, embed, version)
        finally:
            close()
    finally:
        service.stop(grace=1)
    assert remote.ingested == 40 and version == embedder[1]
    served = EmbeddingIndex.load(config.embeddings_path())
    local_config = _config(tmp_path / "local")
    ingest(feed, feed.parent / "images", local_config, *embedder)
    local = EmbeddingIndex.load(local_config.embeddings_path())
    ids = ["g000000", "g000017", "g000039"]
    # PNG on the wire is lossless: the same pixels, the same embeddings.
    assert np.abs(served.vectors(ids)[0] - local.vectors(ids)[0]).max() <= 1e-5


def test_feeds_are_read_from_parquet_and_bad_feeds_are_refused(feed, tmp_path):
    frame = read_feed(feed)
    frame.to_parquet(tmp_path / "feed.parquet")
    assert len(read_feed(tmp_path / "feed.parquet")) == len(frame)
    (tmp_path / "no-image.csv").write_text("garment_id,title,category,price\nx,t,shirt,1\n")
    with pytest.raises(ValueError, match="no column image"):
        read_feed(tmp_path / "no-image.csv")
    with pytest.raises(ValueError, match=r"use a \.csv"):
        (tmp_path / "x.json").write_text("{}")
        read_feed(tmp_path / "x.json")


def test_validate_row_normalises_fields():
    garment, reason = validate_row(
        {
            "garment_id": "a1",
            "title": " Tee ",
            "category": "T-Shirt",
            "price": "19.99",
            "currency": "usd",
            "in_stock": "no",
            "attributes": '{"color": "red"}',
        }
    )
    assert reason == ""
    assert garment == {
        "garment_id": "a1", "title": "Tee", "category": "t-shirt", "price_minor": 1999,
        "currency": "USD", "in_stock": False, "colour": "red", "pattern": "", "replenishable": False,
    }  # fmt: skip
    socks = {"garment_id": "s1", "title": "Socks", "category": "socks", "price": "4"}
    assert validate_row({**socks, "replenishable": "yes"})[0]["replenishable"] is True
    assert validate_row({**socks, "replenishable": "often"})[1] == (
        "replenishable 'often' is not true/false"
    )
    assert validate_row({"garment_id": "a b", "title": "x", "category": "y", "price": "1"})[1]
    assert (
        "negative"
        in validate_row({"garment_id": "a", "title": "x", "category": "y", "price": "-1"})[1]
    )


def test_the_cli_ingests_a_feed_and_reports(feed, tmp_path):
    small = tmp_path / "small.csv"
    pd.read_csv(feed, dtype=str, keep_default_na=False).iloc[[0, 1, 41]].to_csv(small, index=False)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "drape.cli",
            "ingest",
            str(small),
            "--images",
            str(feed.parent / "images"),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "ingested 2 of 3 rows" in result.stdout and "not a number" in result.stdout
    report = json.loads((tmp_path / "data" / "ingest-report.json").read_text())
    assert report["ingested"] == 2 and report["problems"][0]["garment_id"] == "b1"
    missing = subprocess.run(
        [sys.executable, "-m", "drape.cli", "ingest", str(tmp_path / "nope.csv"), "--images", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2 and "no catalog feed" in missing.stderr


def test_generated_feed_images_decode(tmp_path):
    path = write_generated_feed(3, tmp_path, seed=1)
    frame = pd.read_csv(path)
    assert list(frame["image"]) == ["g000000.jpg", "g000001.jpg", "g000002.jpg"]
    assert (tmp_path / "images" / "g000000.jpg").read_bytes()[:2] == encode_jpeg(
        np.zeros((8, 8, 3), np.uint8)
    )[:2]

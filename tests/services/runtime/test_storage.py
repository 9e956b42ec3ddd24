"""Object storage instead of a shared volume, against a real S3-compatible server (moto):
a writer's data folder publishes, a reader's empty data folder serves what was published."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drape.catalog.images import ImageStore
from drape.cli.train.recsys import train_recsys
from drape.models.images import encode_png
from drape.recsys.catalog import Catalog
from drape.services.events.store import StoredEvent, open_event_store
from drape.services.recommend.state import RecommendState
from drape.services.runtime.config import DrapeConfig
from drape.services.runtime.storage import ObjectStorage, StorageError
from drape.synthetic.catalog import generate_catalog
from drape.synthetic.shoppers import generate_shoppers


def _config(root: Path, url: str, endpoint: str, events: str) -> DrapeConfig:
    config = DrapeConfig(data_dir=root)
    config.storage.url, config.storage.endpoint_url = f"{url}/drape", endpoint
    config.storage.check_every_s = 0.01
    config.events.store_url = events
    return config


@pytest.fixture
def pods(tmp_path, s3_bucket, s3_endpoint):
    """A writer (ingest and training) and a reader (a recommend pod), sharing only the
    bucket and the event store; the writer holds a catalog and events."""
    events = f"sqlite:///{tmp_path / 'events.db'}"
    writer = _config(tmp_path / "writer", s3_bucket, s3_endpoint, events)
    reader = _config(tmp_path / "reader", s3_bucket, s3_endpoint, events)
    catalog = generate_catalog(120, seed=6)
    writer.data_dir.mkdir()
    catalog.save(writer.catalog_path())
    store = open_event_store(events)
    shoppers = generate_shoppers(catalog, 60, 1_500, seed=6)
    store.append([StoredEvent(*row) for row in shoppers.events.itertuples(index=False)])
    store.close()
    return writer, reader, catalog


def _reader_state(reader: DrapeConfig) -> RecommendState:
    store = open_event_store(reader.events_store_url())
    return RecommendState(reader.catalog_path(), store, reader.recommend,
                          reader.recsys_artifacts(), storage=ObjectStorage.from_config(reader))  # fmt: skip


def test_a_pod_with_an_empty_data_folder_serves_what_was_published(pods):
    writer, reader, catalog = pods
    ObjectStorage.from_config(writer).push_catalog()
    version = train_recsys(writer, tune=False, quiet=True)  # publishes to the bucket too
    state = _reader_state(reader)
    assert state.refresh(), state.last_error
    served = state.current()
    assert served.artifact_version == version and len(served.catalog) == len(catalog)
    assert (reader.recsys_artifacts() / version / "manifest.json").exists()

    # A new catalog and a new version published by the writer reach the running reader.
    bigger = generate_catalog(150, seed=6)
    bigger.save(writer.catalog_path())
    ObjectStorage.from_config(writer).push_catalog()
    newer = train_recsys(writer, tune=False, quiet=True)
    assert state.refresh(), state.last_error
    assert len(state.current().catalog) == 150 and state.current().artifact_version == newer


def test_a_version_without_current_is_never_served(pods):
    writer, reader, _ = pods
    remote = ObjectStorage.from_config(writer)
    remote.push_catalog()
    version = train_recsys(writer, tune=False, quiet=True)
    # A half-uploaded newer version (its folder, no CURRENT yet): readers keep the published one.
    half = writer.recsys_artifacts() / version / "manifest.json"
    remote.put_file(half, "artifacts/recsys/20991231T000000000-half/manifest.json")
    assert remote.pull_current() == version
    # CURRENT naming a version the bucket lacks: a clear error, and the last version serves on.
    state = _reader_state(reader)
    assert state.refresh()
    (writer.recsys_artifacts() / "CURRENT").write_text("missing-version\n")
    remote.put_file(writer.recsys_artifacts() / "CURRENT", "artifacts/recsys/CURRENT")
    assert not state.refresh()
    assert "nothing under artifacts/recsys/missing-version" in state.last_error
    assert state.current().artifact_version == version


def test_images_are_pushed_once_and_fetched_where_missing(pods):
    writer, reader, _ = pods
    data = encode_png(np.full((8, 8, 3), 200, dtype=np.uint8))
    remote = ObjectStorage.from_config(writer)
    _, uri = ImageStore(writer.images_path(), remote).put(data, "image/png")
    fetched = ImageStore(reader.images_path(), ObjectStorage.from_config(reader))
    assert fetched.read(uri) == data
    assert fetched.path(uri).exists()  # cached in the reader's data folder
    unknown = "drape-images://sha256/00/" + "0" * 64 + ".png"  # a well-formed name, not stored
    with pytest.raises(FileNotFoundError):
        fetched.read(unknown)


def test_an_unreachable_storage_is_a_clear_error_and_serving_goes_on(pods):
    writer, reader, _ = pods
    ObjectStorage.from_config(writer).push_catalog()
    train_recsys(writer, tune=False, quiet=True)
    state = _reader_state(reader)
    assert state.refresh()
    state.storage = ObjectStorage(
        "s3://nowhere/drape", reader.catalog_path(), reader.embeddings_path(),
        reader.images_path(), reader.recsys_artifacts(),
        {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}, "connect_timeout": 1,
         "config_kwargs": {"retries": {"max_attempts": 1}}}, check_every_s=0.0,
    )  # fmt: skip
    assert not state.refresh()
    assert "object storage s3://nowhere/drape" in state.last_error
    assert state.current().hybrid is not None  # the models in hand still serve


def test_drape_storage_push_then_pull(pods):
    writer, reader, _ = pods
    version = train_recsys(writer.model_copy(update={"storage": type(writer.storage)()}),
                           tune=False, quiet=True)  # a data folder that predates the storage  # fmt: skip
    env = {**os.environ, "DRAPE_STORAGE__URL": writer.storage.url,
           "DRAPE_STORAGE__ENDPOINT_URL": writer.storage.endpoint_url}  # fmt: skip

    def drape(config: DrapeConfig, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "drape.cli.main", "storage", action],
            env={**env, "DRAPE_DATA_DIR": str(config.data_dir)}, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip

    pushed = drape(writer, "push")
    assert pushed.returncode == 0, pushed.stderr
    assert "1 trained version(s)" in pushed.stdout
    pulled = drape(reader, "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert f"trained version {version}" in pulled.stdout
    assert (
        Catalog.load(reader.catalog_path()).ids.tolist()
        == Catalog.load(writer.catalog_path()).ids.tolist()
    )
    assert (reader.recsys_artifacts() / "CURRENT").read_text().strip() == version


def test_a_storage_url_must_be_a_url():
    with pytest.raises(ValueError, match="is not a URL"):
        DrapeConfig.model_validate({"storage": {"url": "my-bucket"}})
    with pytest.raises(StorageError, match="cannot open object storage"):
        ObjectStorage("nosuchscheme://x", Path("a"), Path("b"), Path("c"), Path("d"))

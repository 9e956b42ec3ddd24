"""Shared fixtures. Real servers (PostgreSQL, the Drape stack) listen on loopback only,
start inside bounded waits, and are stopped when the session ends."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from drape.cli.local_postgres import local_postgres, postgres_bin
from drape.cli.stack import Stack, ephemeral
from drape.services.events.store import EventStore, open_event_store
from drape.services.runtime.config import DrapeConfig, ServerConfig
from drape.synthetic.catalog import generate_catalog


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server (moto's server mode) on 127.0.0.1, stopped after the session;
    its fake credentials are set in this process's environment meanwhile."""
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return True
        except OSError:
            return False

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION")}  # fmt: skip
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
    try:
        if not wait_until(up, timeout=30, interval=0.2):
            pytest.fail(f"moto_server did not start on {endpoint}")
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new empty bucket on that server: its s3:// URL."""
    import boto3

    name = f"drape-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1, stopped after the session."""
    bindir = postgres_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries not found; scripts/install.sh installs them")
        pytest.skip("PostgreSQL is not installed")
    with local_postgres(bindir) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def event_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """An empty event store: SQLite, and PostgreSQL (a schema of its own on the session's
    server)."""
    if request.param == "sqlite":
        opened = open_event_store(f"sqlite:///{tmp_path / 'events.db'}")
    else:
        import psycopg

        base = request.getfixturevalue("postgres_url")
        schema = f"s{uuid.uuid4().hex[:12]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        opened = open_event_store(f"{base}?options=-csearch_path%3D{schema}")
    yield opened
    opened.close()


@pytest.fixture
def drape_config(tmp_path: Path) -> DrapeConfig:
    """Config for a stack on ephemeral loopback ports, data in a fresh folder."""
    config = ephemeral(DrapeConfig(data_dir=tmp_path / "data"))
    config.recommend.refresh_s = 0.3
    for name in ("events", "recommend", "gateway", "features", "tryon", "splice"):
        config.server(name).grace_s = 2
    return config


@pytest.fixture(scope="module")
def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole stack with a generated catalog (shared by a test module)."""
    root = tmp_path_factory.mktemp("stack")
    config = ephemeral(DrapeConfig(data_dir=root / "data"))
    config.recommend.refresh_s = 0.3
    generate_catalog(300, seed=1).save(config.catalog_path())
    stack = Stack(config, run_dir=root / "run")
    stack.start(timeout=60)
    try:
        yield stack
    finally:
        stack.stop()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Polls ``predicate`` until it is true or ``timeout`` passes (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


needs_chromium = pytest.mark.skipif(
    __import__("shutil").which("chromium") is None and not os.environ.get("CI"),
    reason="Chromium is installed by scripts/install.sh",
)


def chromium(profile: Path, *args: str) -> str:
    """Headless Chromium on its own throwaway profile (``args``: --screenshot=..., --dump-dom
    and the page); what it prints."""
    import subprocess

    command = ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
               f"--user-data-dir={profile}", *args]  # fmt: skip
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout


def ingest_feed(
    stack: Stack, feed: Path, garments: int, client: ServerConfig | None = None
) -> None:
    """Ingests a generated feed through the stack and waits until recommend serves it."""
    assert stack.ingest(feed, client) == garments

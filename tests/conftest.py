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

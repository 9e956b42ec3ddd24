"""`kill -9` of the events service, again and again under concurrent writers, on SQLite and
on PostgreSQL: every acknowledged event is stored exactly once (`drape bench crash` runs the
same with more cycles for the figures)."""

from __future__ import annotations

import uuid

import pytest

from drape.cli.bench.crash import crash_cycles
from drape.services.runtime.config import DrapeConfig


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_acknowledged_events_survive_repeated_sigkill(store: str, drape_config: DrapeConfig,
                                                     request: pytest.FixtureRequest):  # fmt: skip
    if store == "postgres":
        import psycopg

        base = request.getfixturevalue("postgres_url")
        schema = f"s{uuid.uuid4().hex[:12]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        drape_config.events.store_url = f"{base}?options=-csearch_path%3D{schema}"
    drape_config.events.server.grace_s = 1
    result = crash_cycles(drape_config, drape_config.data_dir / "run", cycles=4, writers=3, seed=1)
    assert result["acknowledged"] > 500, result  # the writers kept writing between the kills
    assert result["retried_calls"] > 0, result  # the kills landed while writes were in flight
    assert result["lost"] == 0 and result["duplicated"] == 0, result

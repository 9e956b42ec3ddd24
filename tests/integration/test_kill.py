"""`kill -9` at random points inside the commands that publish what the services load (a
small count here; `drape bench kill --cycles N` for the figures): after every kill the last
complete version still loads, and the next run succeeds (the trainer resuming)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drape.cli.bench.kill import kill_cycles


@pytest.mark.parametrize("target", ["train-recsys", "ingest", "train-tryon"])
def test_a_killed_publish_leaves_the_last_version_and_the_next_run_succeeds(
    target: str, tmp_path: Path
):
    result = kill_cycles(target, tmp_path, cycles=3, seed=3)
    assert result["killed"] >= 1, result  # some runs were killed mid-way, not after they finished
    assert result["broken_after_kill"] == 0, result["problems"]
    assert result["next_run"] == "ok", result["published"]

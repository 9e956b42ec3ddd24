"""The command line as a user runs it: `drape demo`, `drape bench events`, `drape doctor`."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from drape.cli.main import build_parser
from drape.cli.stack import free_ports


def _drape(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drape.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _children_named(fragment: str) -> list[int]:
    """Pids of Drape service processes whose command line mentions ``fragment``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if "drape.cli serve" in cmd and fragment in cmd:
            found.append(int(entry.name))
    return found


def test_demo_runs_the_flow_and_leaves_nothing_running(tmp_path: Path):
    page = tmp_path / "page"
    result = _drape("demo", "--data-dir", str(tmp_path / "demo"), "--users", "120",
                    "--events", "3000", "--garments", "400", "--out", str(page))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # The main flow: 8 garments previewed on the astronaut, on a page with its images.
    assert "gets 8 garments previewed on it" in out and "8 cached" in out
    assert out.count("preview OK") == 8
    html = (page / "index.html").read_text()
    previews = sorted(page.glob("*-preview.png"))
    assert len(previews) == 8 and all(p.name in html for p in previews)
    assert (page / "shopper.png").exists() and str((page / "index.html").resolve()) in out
    assert "3000 stored, 0 duplicates" in out
    assert "0 stored, 500 duplicates" in out
    assert "experiment demo-previews/" in out
    assert out.count("-> 7 stored") == 4
    assert "INVALID_ARGUMENT: k: must be between 1 and 200" in out
    assert "all services stopped" in out
    assert not _children_named(str(tmp_path)), "demo left services running"
    # The experiment run to its report: every shopper's list logged and attributed, the
    # table printed, and the HTML page written beside the previews page.
    assert "120 shoppers each got a list" in out
    assert "experiment demo-previews:" in out and "120 exposed users" in out
    assert "Conversion" in out and "sample ratio:" in out and "Holm" in out
    report = (page / "experiment-report.html").read_text()
    assert "<svg" in report and 'class="lift"' in report and 'class="bar"' in report


def test_bench_events_writes_json(tmp_path: Path):
    out = tmp_path / "events.json"
    result = _drape("bench", "events", "--seconds", "0.5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [(r["batch"], r["clients"]) for r in report["results"]] == [
        (1, 1),
        (1, 8),
        (100, 1),
        (100, 4),
    ]
    for row in report["results"]:
        assert row["errors"] == 0 and row["events_per_s"] > 0 and row["p99_ms"] >= row["p50_ms"] > 0
    assert "events_per_s" in result.stdout


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_bench_scale_small(tmp_path: Path, store: str):
    # The scale benchmark's small version: two log sizes, every stage measured.
    out = tmp_path / "scale.json"
    sizes = "3000,6000" if store == "sqlite" else "4000"
    result = _drape("bench", "scale", "--sizes", sizes, "--garments", "400", "--no-tune",
                    "--new-events", "500", "--refreshes", "2", "--seconds", "0.5",
                    *(["--postgres"] if store == "postgres" else []),
                    "--out", str(out), timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["results"]
    assert [r["events"] for r in rows] == [int(s) for s in sizes.split(",")]
    assert json.loads(out.read_text())["store"] == store.replace("postgres", "postgresql")
    for row in rows:
        assert row["ingest_per_s"] > 0
        assert row["errors"] == 0 and row["workers"] >= 1 and row["qps_8"] > 0
        assert row["train_peak_mb"] > 0 and row["refresh_max_ms"] >= row["refresh_median_ms"] > 0
        # Each stage of the training timed: after the read, the matrix and the rules are
        # built beside the tuning and ALS, so each path fits in the total, not their sum.
        stages = row["train_stages_s"]
        assert set(stages) == {"read", "matrix", "als", "sequential", "total"}  # --no-tune
        paths = [("read", "matrix", "als"), ("read", "matrix", "sequential")]
        longest = max(sum(stages[k] for k in path) for path in paths)
        assert stages["read"] > 0
        assert longest <= stages["total"] + 0.01 <= sum(stages.values()) - stages["total"] + 0.02
        assert row["pod_pss_mb"] > 0 and row["worker_rss_mb"] > 0
        assert row["pod_start_peak_mb"] > 0  # sampled while the pod started
        assert len(row["worker_peaks_mb"].split("/")) == row["workers"]
        assert row["saved_base_mb"] > 0
        assert (
            row["mapped_start_s"] > row["mapped_read_s"] > 0
            and row["mapped_peak_mb"] >= row["mapped_pss_mb"] > 0
        )
        # The older half compacted; on PostgreSQL mostly by dropping whole weeks.
        assert row["events"] * 0.4 < row["compacted"] < row["events"] * 0.6
        if store == "postgres":
            assert row["compacted"] * 0.8 < row["dropped"] <= row["compacted"]
        else:
            assert row["dropped"] == 0
    assert "refresh_median_ms" in result.stdout


def test_doctor_passes_on_this_install():
    result = _drape("doctor", timeout=120)
    assert result.returncode == 0, result.stdout
    assert "drape doctor: ok" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("serve", "events", "--config", "/nonexistent/drape.toml"), "cannot read config file"),
        (("serve", "billing"), "invalid choice"),
    ],
)
def test_cli_errors_are_clear(args, fragment):
    result = _drape(*args, timeout=60)
    assert result.returncode != 0
    assert fragment in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["train", "recsys", "--epochs", "3"],  # an encoder flag
        ["train", "encoder", "--factors", "8"],  # a recsys flag
        ["train", "tryon", "--recipe", "r.toml", "--config", "r.toml"],  # --config is a DrapeConfig
        ["bench", "events", "--garments", "5"],  # a recommend benchmark flag
        ["eval", "tryon", "--checkpoint", "g.safetensors", "--dataset", "movielens"],
    ],
)
def test_each_command_takes_only_its_own_flags(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(args)
    assert exit_info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_config_means_a_drape_config_wherever_it_is_taken():
    from drape.cli.main import COMMAND_MODULES

    # Commands that load no Drape configuration (their own files, or none).
    without = {"demo", "generate", "eval", "bench", "doctor", "keys", "tls"}
    parser = build_parser()
    helps, taking = [], set()
    for action in parser._subparsers._group_actions:
        for name, command in action.choices.items():
            nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
            for sub in [command, *(p for a in nested for p in a.choices.values())]:
                found = [a.help for a in sub._actions if "--config" in a.option_strings]
                helps += found
                taking |= {name} if found else set()
    assert len(taking) >= len(COMMAND_MODULES) - len(without)  # every command that loads a config
    assert not taking & without
    assert set(helps) == {helps[0]} and "Drape configuration" in helps[0]


def test_serve_rejects_bad_env_config(monkeypatch):
    monkeypatch.setenv("DRAPE_EVENTS__MAX_BATCH", "0")
    result = _drape("serve", "events", timeout=60)
    assert result.returncode == 2
    assert "events.max_batch (from DRAPE_EVENTS__MAX_BATCH)" in result.stderr


def _start_up(config: Path, run_dir: Path, services: str = "") -> subprocess.Popen[str]:
    """`drape up` in the background, its stdout readable line by line."""
    args = [
        sys.executable,
        "-m",
        "drape.cli",
        "up",
        "--config",
        str(config),
        "--run-dir",
        str(run_dir),
    ]
    if services:
        args += ["--services", services]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def test_up_starts_everything_and_sigterm_stops_it_cleanly(tmp_path: Path):
    import os
    import signal

    config = tmp_path / "drape.toml"
    lines = [f'data_dir = "{tmp_path / "data"}"']
    for name in ("gateway", "recommend", "features", "tryon", "splice", "events"):
        lines += [f"[{name}.server]", "port = 0", "metrics_port = 0", "grace_s = 2"]
    ports = free_ports(3)
    lines += [
        "[triton]",
        f"grpc_port = {ports[0]}",
        f"http_port = {ports[1]}",
        f"metrics_port = {ports[2]}",
    ]
    config.write_text("\n".join(lines) + "\n")
    proc = _start_up(config, tmp_path / "run")
    run_dir = str(tmp_path / "run")
    try:
        seen = []
        for line in proc.stdout:  # bounded: `drape up` prints 8 lines then waits
            seen.append(line)
            if "all services up" in line or len(seen) > 20:
                break
        assert any(line.startswith("gateway") for line in seen), seen
        assert len(_children_named(str(tmp_path / "run"))) == 7  # six services and Triton
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not _children_named(run_dir), "services outlived `drape up`"


def test_services_die_with_a_killed_supervisor(tmp_path: Path):
    """Even `kill -9` of `drape up` leaves no service behind (parent-death signal)."""
    import os
    import signal
    import time

    config = tmp_path / "drape.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[events.server]\nport = 0\nmetrics_port = 0\n'
    )
    run_dir = str(tmp_path / "run")
    proc = _start_up(config, tmp_path / "run", "events")
    try:
        for line in proc.stdout:
            if "all services up" in line:
                break
        assert len(_children_named(run_dir)) == 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _children_named(run_dir) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _children_named(run_dir)
    finally:
        for pid in _children_named(run_dir):
            os.kill(pid, signal.SIGKILL)


def test_train_recsys_without_data_says_what_to_do(tmp_path: Path):
    config = tmp_path / "drape.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    result = _drape("train", "recsys", "--config", str(config), timeout=120)
    assert result.returncode == 2
    assert "no catalog" in result.stdout
    result = _drape("train", "recsys", "--config", str(config), "--iterations", "0", timeout=120)
    assert result.returncode == 2
    assert "ALS needs factors and iterations >= 1" in result.stdout

"""`drape bench kill`: the commands that publish what the services load, killed with SIGKILL
at random points, again and again: `drape train recsys` (a recommender version), `drape
ingest` (the catalog and its index), `drape export models` (a Triton repository) and `drape
train tryon` (its checkpoint). After every kill what a service would load must load (the last
complete version), and after the cycles the command must run to the end (the trainer resuming
from its checkpoint).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drape.cli.bench import format_table, write_report

TARGETS = ("train-recsys", "ingest", "export-models", "train-tryon")
TINY_TRYON = """[spec]
height = 64
width = 48
base_channels = 8
flow_channels = 4
depth = 3
[train]
batch_size = 2
steps = STEPS
checkpoint_every = 1
sample_every = 1000
real_share = 0.0
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cycles", type=int, default=10, help="kills per command")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help=f"comma-separated: {', '.join(TARGETS)}"
    )
    parser.add_argument("--seed", type=int, default=0)


def _run(command: list[str], kill_after: float | None = None) -> tuple[int, float, str]:
    """Runs ``drape COMMAND``; with ``kill_after``, SIGKILLs its whole process group then."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "drape.cli", *command], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, text=True)  # fmt: skip
    try:
        out, _ = (
            proc.communicate(timeout=kill_after)
            if kill_after is not None
            else proc.communicate(timeout=1800)
        )
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    return proc.returncode, time.monotonic() - started, out or ""


def _prepare(
    target: str, root: Path
) -> tuple[Callable[[int], list[str]], Callable[[], str], Callable[[str], bool]]:
    """The command of run ``i`` (each with work to do: a changed feed, more training steps),
    the check of what it publishes (a description, raising if broken) and whether a finished
    run's output shows it completed (resumed, for the trainer)."""
    from drape.services.runtime.config import DrapeConfig

    data = root / "data"
    config_file = root / "drape.toml"
    config_file.write_text(f'data_dir = "{data}"\n')
    config = DrapeConfig(data_dir=data)
    if target == "train-recsys":
        from drape.recsys import artifacts
        from drape.recsys.datasets import attribute_vectors
        from drape.recsys.index import EmbeddingIndex
        from drape.services.events.store import StoredEvent, open_event_store
        from drape.synthetic.catalog import generate_catalog
        from drape.synthetic.shoppers import generate_shoppers

        catalog = generate_catalog(800, seed=9)
        catalog.save(config.catalog_path())
        store = open_event_store(config.events_store_url())
        store.append([StoredEvent(*row) for row in generate_shoppers(catalog, 1500, 60_000, seed=9)
                      .events.itertuples(index=False)])  # fmt: skip
        store.close()
        EmbeddingIndex.build(catalog.ids, attribute_vectors(catalog)).save(config.embeddings_path())

        def check() -> str:
            loaded = artifacts.load(config.recsys_artifacts())
            return f"version {loaded.version}"

        return lambda i: ["train", "recsys", "--config", str(config_file)], check, lambda out: True
    if target == "ingest":
        from drape.recsys.catalog import Catalog
        from drape.recsys.index import EmbeddingIndex
        from drape.synthetic.catalog import write_generated_feed

        def command(i: int) -> list[str]:  # each run's feed changes its images: work to do
            feed = write_generated_feed(40, root / "feed", seed=i)
            return [
                "ingest",
                str(feed),
                "--images",
                str(feed.parent / "images"),
                "--config",
                str(config_file),
            ]

        def check() -> str:
            catalog = Catalog.load(config.catalog_path())
            index = EmbeddingIndex.load(config.embeddings_path())
            assert len(catalog.ids) == len(index), (len(catalog.ids), len(index))
            return f"{len(catalog.ids)} garments, {len(index)} indexed"

        return command, check, lambda out: True
    if target == "export-models":
        from drape.models.encoder import ENCODER_MODEL
        from drape.models.export import onnx_session

        repository = root / "models"

        def check() -> str:
            model = repository / ENCODER_MODEL
            assert "max_batch_size" in (model / "config.pbtxt").read_text()
            onnx_session(model / "1" / "model.onnx", threads=1)
            return "the repository's encoder loads in onnxruntime"

        def export(i: int) -> list[str]:
            return [
                "export",
                "models",
                "--repository",
                str(repository),
                "--config",
                str(config_file),
            ]

        return export, check, lambda out: True
    if target == "train-tryon":
        from drape.models.state import load_state
        from drape.models.tryon.training import TRAINER_STATE, read_generator

        recipe, run = root / "recipe.toml", root / "run"

        def check() -> str:
            spec, _ = read_generator(run / "generator.safetensors")
            state = load_state(run / "checkpoint" / TRAINER_STATE)
            return f"checkpoint at step {state['step']} ({spec.height}x{spec.width})"

        def command(i: int) -> list[str]:  # two more steps each run: work to do, from a checkpoint
            recipe.write_text(TINY_TRYON.replace("STEPS", str(4 + 2 * i)))
            return ["train", "tryon", "--recipe", str(recipe), "--out", str(run)]

        return command, check, lambda out: "resumed at step" in out
    raise ValueError(f"unknown target {target!r}; one of {', '.join(TARGETS)}")


def kill_cycles(target: str, root: Path, cycles: int, seed: int) -> dict[str, Any]:
    """One complete run (the version to keep serving), ``cycles`` runs killed at random
    points of the first 80% of a full run, each followed by the check, then one run to the end."""
    rng = random.Random(seed)
    command_for, check, completed = _prepare(target, root)
    command = command_for(0)
    code, full_s, out = _run(command)
    if code != 0:
        raise RuntimeError(f"drape {' '.join(command)} failed before any kill:\n{out[-3000:]}")
    check()
    broken, killed = [], 0
    for i in range(1, cycles + 1):
        code, _, _ = _run(command_for(i), kill_after=rng.uniform(0.05, 0.8) * full_s)
        killed += code == -signal.SIGKILL
        try:
            check()
        except Exception as exc:
            broken.append(f"{type(exc).__name__}: {exc}"[:300])
    code, _, out = _run(command_for(cycles + 1))
    final = check() if code == 0 else f"the run after the kills failed: {out[-500:]}"
    return {"command": f"drape {command[0]} {command[1]}", "full_run_s": round(full_s, 1), "cycles": cycles,
            "killed": killed, "broken_after_kill": len(broken), "next_run": "ok" if code == 0 and completed(out)
            else "failed", "published": final, "problems": broken}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    rows = []
    with tempfile.TemporaryDirectory(prefix="drape-kill-") as tmp:
        for target in [t.strip() for t in args.targets.split(",") if t.strip()]:
            root = Path(tmp) / target
            root.mkdir()
            rows.append({"target": target, **kill_cycles(target, root, args.cycles, args.seed)})
    print(f"each command killed with SIGKILL at random points, {args.cycles} times")
    print(
        format_table(
            rows, ["target", "full_run_s", "cycles", "killed", "broken_after_kill", "next_run"]
        )
    )
    for row in rows:
        print(f"  {row['target']}: after the cycles, {row['published']}")
        for problem in row["problems"]:
            print(f"    broken: {problem}")
    out = write_report("kill", rows, args.out, {"cycles": args.cycles})
    print(f"wrote {out}")
    return 1 if any(r["broken_after_kill"] or r["next_run"] != "ok" for r in rows) else 0

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from drape.recsys.experiments import (
    Experiment,
    ExperimentError,
    PlanSource,
    Variant,
    load_experiment,
    load_plan,
)


def _experiment(shares=(50, 50), salt="s1") -> Experiment:
    return Experiment(
        "exp", salt, tuple(Variant(f"v{i}", s, "popularity", bool(i)) for i, s in enumerate(shares))
    )


def test_assignment_is_deterministic_and_follows_shares():
    experiment = _experiment((20, 80))
    users = [f"user-{i}" for i in range(20_000)]
    first = [experiment.assign(u).name for u in users]
    assert first == [experiment.assign(u).name for u in users]
    share = Counter(first)["v0"] / len(users)
    assert 0.18 < share < 0.22


def _assignments(shares, users):
    experiment = _experiment(shares)
    return [experiment.assign(u).name for u in users]


def test_changing_a_share_moves_only_the_users_it_must():
    users = [f"user-{i}" for i in range(30_000)]
    before = _assignments((34, 33, 33), users)
    after = _assignments((40, 30, 30), users)
    moves = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    # Everybody who moved went into the grown variant, from either of the others ...
    assert {a for _, a in moves} == {"v0"}
    # ... and about as many as the share change requires (6% of users).
    assert 0.05 < len(moves) / len(users) < 0.07
    shrunk = _assignments((40, 20, 30), users)
    moved = [(b, a) for b, a in zip(after, shrunk, strict=True) if b != a]
    assert {b for b, _ in moved} == {"v1"}


def test_zero_share_gets_nobody():
    assert "v1" not in set(_assignments((1, 0), [f"u{i}" for i in range(2000)]))


def test_salt_reshuffles():
    users = [f"user-{i}" for i in range(2000)]
    a = [_experiment(salt="a").assign(u).name for u in users]
    b = [_experiment(salt="b").assign(u).name for u in users]
    agreement = sum(x == y for x, y in zip(a, b, strict=True)) / len(users)
    assert 0.4 < agreement < 0.6  # independent 50/50 assignments agree half the time


def test_load_yaml(tmp_path: Path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        "name: pdp-previews\n"
        "salt: x\n"
        "variants:\n"
        "  - {name: control, share: 1, previews: false}\n"
        "  - {name: treatment, share: 1}\n"
    )
    experiment = load_experiment(path)
    assert [v.name for v in experiment.variants] == ["control", "treatment"]
    assert experiment.variants[0].previews is False and experiment.variants[1].previews is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: Bad Name\nvariants: [{name: a}]", "must match"),
        ("name: e\nvariants: []", "no variants"),
        ("name: e\nvariants: [{name: a}, {name: a}]", "repeats a variant"),
        ("name: e\nvariants: [{name: a, share: -1}]", "must not be negative"),
        ("name: e\nvariants: [{name: a, share: 0}]", "add up to zero"),
        ("name: e\nvariants: [{name: a, strategy: magic}]", "unknown strategy"),
        ("variants: [{name: a}]", "missing or malformed"),
        ("- just a list", "expected a mapping"),
        ("name: [unclosed", "cannot read"),
    ],
)
def test_invalid_files(tmp_path: Path, text: str, message: str):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    with pytest.raises(ExperimentError, match=message):
        load_experiment(path)


PLAN = """
defaults: {strategy: popularity, previews: true}
layers:
  - {name: ranking, salt: l-rank}
  - {name: previews, salt: l-prev}
experiments:
  - name: hybrid-test
    layer: ranking
    buckets: [0, 500]
    start: 2026-12-01T00:00:00Z
    stop: 2026-12-15T00:00:00Z
    variants:
      - {name: control, share: 50, strategy: popularity}
      - {name: treatment, share: 50, strategy: hybrid}
  - name: embedding-test
    layer: ranking
    buckets: [500, 1000]
    variants:
      - {name: control, share: 1}
      - {name: treatment, share: 1, strategy: embedding}
  - name: previews-test
    layer: previews
    variants:
      - {name: control, share: 1, previews: false}
      - {name: treatment, share: 1}
"""
DEC_5 = 1_764_892_800_000_000  # 2025-12-05T00:00:00Z
IN_TEST = 1_796_428_800_000_000  # 2026-12-05T00:00:00Z


def _plan(tmp_path: Path, text: str = PLAN):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return load_plan(path)


def test_layers_are_exclusive_inside_and_independent_across(tmp_path: Path):
    plan = _plan(tmp_path)
    users = [f"user-{i}" for i in range(8000)]
    assigned = [plan.assign(u, IN_TEST) for u in users]
    ranking = Counter(a.arms[0].experiment.name for a in assigned)
    # Every user is in exactly one ranking experiment (half each) and in the previews one.
    assert all(len(a.arms) == 2 for a in assigned)
    assert 0.47 < ranking["hybrid-test"] / len(users) < 0.53
    assert {a.arms[1].experiment.name for a in assigned} == {"previews-test"}
    # Independence: previews treatment is half of each ranking arm.
    for name in ("hybrid-test", "embedding-test"):
        inside = [a for a in assigned if a.arms[0].experiment.name == name]
        share = sum(a.arms[1].variant.name == "treatment" for a in inside) / len(inside)
        assert 0.46 < share < 0.54
    # The settings: each layer sets what it owns, the rest stay at the defaults.
    for a in assigned:
        expected_strategy = {"hybrid-test": {"control": "popularity", "treatment": "hybrid"},
                             "embedding-test": {"control": "popularity",
                                                "treatment": "embedding"}}  # fmt: skip
        assert a.strategy == expected_strategy[a.arms[0].experiment.name][a.arms[0].variant.name]
        assert a.previews == (a.arms[1].variant.name == "treatment")


def test_start_and_stop_bound_who_is_assigned(tmp_path: Path):
    plan = _plan(tmp_path)
    user = next(f"u{i}" for i in range(100)
                if plan.assign(f"u{i}", IN_TEST).arms[0].experiment.name == "hybrid-test")  # fmt: skip
    before = plan.assign(user, DEC_5)
    assert [a.experiment.name for a in before.arms] == ["previews-test"]
    assert before.strategy == "popularity"  # the defaults, outside the window


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (PLAN.replace("buckets: [500, 1000]", "buckets: [400, 1000]"), "share layer 'ranking'"),
        (
            PLAN.replace(
                "{name: treatment, share: 1}\n", "{name: treatment, share: 1, strategy: hybrid}\n"
            ),
            "which layer 'ranking' owns",
        ),
        (PLAN.replace("layer: previews", "layer: nowhere"), "unknown layer 'nowhere'"),
        (PLAN.replace("2026-12-15T00:00:00Z", "2026-11-15T00:00:00Z"), "stop must be after"),
        (PLAN.replace("2026-12-15T00:00:00Z", "2026-12-15T00:00:00"), "needs a time zone"),
        (PLAN.replace("buckets: [0, 500]", "buckets: [0, 5000]"), "buckets must be"),
        (PLAN.replace("name: embedding-test", "name: hybrid-test"), "used twice"),
    ],
)
def test_invalid_plans(tmp_path: Path, text: str, message: str):
    with pytest.raises(ExperimentError, match=message):
        _plan(tmp_path, text)


def test_versions_follow_the_definition(tmp_path: Path):
    a = _plan(tmp_path).experiment("hybrid-test")
    assert a.version == _plan(tmp_path).experiment("hybrid-test").version
    changed = _plan(
        tmp_path, PLAN.replace("share: 50, strategy: hybrid", "share: 60, strategy: hybrid")
    )
    assert changed.experiment("hybrid-test").version != a.version
    assert changed.experiment("embedding-test").version == _plan(tmp_path).experiment(
        "embedding-test").version  # fmt: skip


def test_reload_refuses_reallocating_a_running_experiment_unless_forced(tmp_path: Path):
    path = tmp_path / "plan.yaml"
    running = PLAN.replace("    start: 2026-12-01T00:00:00Z\n    stop: 2026-12-15T00:00:00Z\n", "")
    path.write_text(running)
    changes, errors = [], []
    source = PlanSource(path, check_every_s=3600, on_change=changes.append,
                        on_error=errors.append)  # fmt: skip
    version = source.current().experiment("hybrid-test").version
    # Treatment from 50 to 80: users would switch arms mid-experiment.
    path.write_text(running.replace("share: 50, strategy: hybrid", "share: 80, strategy: hybrid"))
    assert source.reload().experiment("hybrid-test").version == version
    assert len(errors) == 1 and "moves users between arms" in errors[0]
    # An invalid file is refused the same way; the running plan stays.
    path.write_text("name: [unclosed")
    source.reload()
    assert len(errors) == 2 and source.current().experiment("hybrid-test").version == version
    # Forced: taken, with a new version.
    forced = running.replace(
        "    layer: ranking\n    buckets: [0, 500]\n",
        "    layer: ranking\n    buckets: [0, 500]\n    force: true\n",
        1,
    )
    path.write_text(forced.replace("share: 50, strategy: hybrid", "share: 80, strategy: hybrid"))
    assert source.reload().experiment("hybrid-test").version != version
    assert len(changes) == 2
    # Changing what a variant does (not who is in it) needs no force; neither does a new
    # experiment, or any change to one that is not running.
    path.write_text(forced.replace("share: 50, strategy: hybrid", "share: 80, strategy: hybrid")
                    .replace("strategy: embedding", "strategy: als"))  # fmt: skip
    assert source.reload().experiment("embedding-test").variants[1].strategy == "als"

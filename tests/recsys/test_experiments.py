from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from drape.recsys.experiments import Experiment, ExperimentError, Variant, load_experiment


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

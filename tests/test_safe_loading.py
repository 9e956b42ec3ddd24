"""Nothing Drape loads from disk can run code: a malicious pickle dropped where each loader
looks is refused or ignored, never executed (its payload would create a marker file), and
the code holds no pickle, no torch.load without weights_only=True, no allow_pickle=True."""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]


class _Payload:
    """Unpickling this calls open(marker, "w"): the marker's existence means code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _evil(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_Payload(marker)))
    return path


def test_the_person_analysis_memo_refuses_a_pickle(tmp_path: Path):
    from drape.models.tryon.data import ANALYSES_FILE, MemoAnalyzer

    marker = tmp_path / "ran"
    _evil(tmp_path / "person-analyses.pkl", marker)  # the old memo's name: never read
    assert MemoAnalyzer(tmp_path / ANALYSES_FILE)._memo == {}
    _evil(tmp_path / ANALYSES_FILE, marker)  # a pickle under the memo's own name: refused
    with pytest.raises(ValueError, match="pickled data"):
        MemoAnalyzer(tmp_path / ANALYSES_FILE)
    assert not marker.exists()


def test_a_trainer_checkpoint_holds_no_pickle_and_ignores_one(tmp_path: Path):
    import torch

    from drape.models.state import load_state, save_state

    state = {"step": 7, "rng": torch.get_rng_state(), "python": (3, (1, 2), None),
             "groups": [{"lr": 2e-4, "betas": (0.5, 0.999), "params": [0, 1]}],
             "state": {0: {"exp_avg": torch.ones(3)}}, "scale": float("inf")}  # fmt: skip
    save_state(state, tmp_path / "trainer")
    loaded = load_state(tmp_path / "trainer")
    assert loaded["python"] == (3, (1, 2), None) and loaded["state"][0]["exp_avg"].tolist() == [
        1,
        1,
        1,
    ]
    assert torch.equal(loaded["rng"], state["rng"]) and loaded["scale"] == float("inf")
    assert json.loads((tmp_path / "trainer.json").read_text())["dict"][0] == ["step", 7]
    marker = tmp_path / "ran"
    _evil(tmp_path / "trainer.pt", marker)  # the old format's name: never read
    _evil(tmp_path / "bad.safetensors", marker)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(Exception):  # noqa: B017 (safetensors' own error type)
        load_state(tmp_path / "bad")
    assert not marker.exists()


def test_torch_and_numpy_loaders_refuse_pickles(tmp_path: Path):
    import torch

    from drape.models.encoder import load_verified_state_dict, sha256_of
    from drape.recsys.als import ALSModel, ALSParams

    marker = tmp_path / "ran"
    weights = _evil(tmp_path / "encoder.pth", marker)
    with pytest.raises(pickle.UnpicklingError):
        load_verified_state_dict(weights, sha256_of(weights))
    ALSModel(np.ones((2, 2), np.float32), np.ones((3, 2), np.float32), ALSParams()).save(
        tmp_path / "als"
    )
    np.save(
        tmp_path / "als" / "user_factors.npy",
        np.array([_Payload(marker)], dtype=object),
        allow_pickle=True,
    )
    # The factors are memory-mapped: an array of objects cannot be, and is refused unread.
    with pytest.raises(ValueError, match=r"Python objects|allow_pickle=False"):
        ALSModel.load(tmp_path / "als")
    # The sequential rules too (mapped the same way).
    from drape.recsys.sequential import SequentialParams, SequentialRules

    SequentialRules(sp.identity(3, format="csr"), SequentialParams()).save(tmp_path / "rules")
    np.save(tmp_path / "rules" / "rules.data.npy", np.array([_Payload(marker)], dtype=object),
            allow_pickle=True)  # fmt: skip
    with pytest.raises(ValueError, match=r"Python objects|allow_pickle=False"):
        SequentialRules.load(tmp_path / "rules")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(weights, weights_only=True)
    assert not marker.exists()


def test_no_unsafe_loading_in_the_code():
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {Path(folder).parts[0] for folder in setuptools["package-dir"].values()}
    found = []
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                    if any(
                        n.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib")
                        for n in names
                    ):
                        found.append(f"{where}: imports a pickle library")
                if isinstance(node, ast.Call):
                    name = ast.unparse(node.func)
                    keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
                    if name.endswith("torch.load") and keywords.get("weights_only") != "True":
                        found.append(f"{where}: torch.load without weights_only=True")
                    if keywords.get("allow_pickle") == "True":
                        found.append(f"{where}: allow_pickle=True")
    assert not found, found

"""`drape train tryon`: a tiny run through the CLI, resume with data-loading workers, and bad
recipes refused with the reason."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from drape.cli.main import main
from drape.models.tryon.data import ANALYSES_FILE, MemoAnalyzer
from tests.models.test_tryon_serving import TINY_RECIPE


def _config(tmp_path: Path, steps: int, workers: int) -> Path:
    path = tmp_path / f"tiny-{steps}-{workers}.toml"
    path.write_text(TINY_RECIPE.replace("STEPS", str(steps)) + f"workers = {workers}\n")
    return path


def _steps(log: Path) -> list[int]:
    with open(log) as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def _train(tmp_path: Path, out: Path, steps: int, workers: int) -> int:
    return main(["train", "tryon", "--recipe", str(_config(tmp_path, steps, workers)),
                 "--out", str(out)])  # fmt: skip


def test_train_runs_resumes_and_memoises_person_analysis(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _train(tmp_path, out, steps=2, workers=0) == 0
    assert (out / "generator.safetensors").stat().st_size > 0
    assert (out / "samples" / "step-000002.png").exists()
    assert _steps(out / "log.csv") == [1, 2]
    memo = MemoAnalyzer(out / ANALYSES_FILE)
    assert memo._memo, "the bundled photos' analyses are kept beside the run"

    # Same settings, more steps, two data-loading workers: resumes at step 2, appends to the log.
    assert _train(tmp_path, out, steps=4, workers=2) == 0
    assert _steps(out / "log.csv") == [1, 2, 3, 4]
    assert (out / "samples" / "step-000004.png").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[train]\nsteps = 2\nbatchsize = 4\n",
            "[train] batchsize: Extra inputs are not permitted",
        ),
        ("[spec]\nheight = 64\ncolour = 3\n", "[spec] colour: Unexpected keyword argument"),
        ("[train]\nsteps = -1\n", "[train] steps: Input should be greater than 0"),
        ("[weights]\nssim = 'high'\n", "[weights] ssim: Input should be a valid number"),
        ("[train\n", "is not valid TOML"),
    ],
)
def test_bad_recipes_are_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["train", "tryon", "--recipe", str(path), "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists(), "nothing is written for a refused recipe"


def test_a_missing_recipe_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "tryon", "--recipe", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read the recipe" in capsys.readouterr().err

"""One import root: everything installs under `drape`, the top-level folders of a checkout do
not import under their own names, the package list names every package folder, and building
the command line loads none of the heavy libraries (every `drape serve` builds it)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    # Run from the checkout's root: its folders are on sys.path there, as in a developer's shell.
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.mark.parametrize("name", ["services", "models", "recsys", "catalog", "synthetic", "cli"])
def test_top_level_folders_do_not_import_by_their_own_name(name: str):
    result = _python(f"import {name}")
    assert result.returncode != 0
    assert f"import drape.{name}, not {name}" in result.stderr


def test_everything_imports_under_drape():
    result = _python("import drape.services.gateway.service, drape.v1.gateway_pb2, drape.cli.main")
    assert result.returncode == 0, result.stderr


def test_the_package_list_names_every_package_folder():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {package: ROOT / folder for package, folder in setuptools["package-dir"].items()}
    found = set()
    for package, folder in roots.items():
        for init in folder.rglob("__init__.py"):
            relative = init.parent.relative_to(folder).parts
            found.add(".".join((package, *relative)))
    assert found == set(setuptools["packages"])


def test_the_shipped_generator_is_package_data_of_drape_models():
    import drape.models
    from drape.services.runtime.config import DrapeConfig

    checkpoint = DrapeConfig().tryon_checkpoint()
    assert checkpoint.parent.parent == Path(drape.models.__file__).parent
    assert checkpoint.is_file()


def test_building_the_command_line_loads_no_heavy_library():
    result = _python(
        "import sys; from drape.cli.main import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'faiss', 'implicit', 'cv2', 'mediapipe', 'pandas', "
        "'tritonclient', 'onnxruntime') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_image_copies_every_package_folder():
    """The Dockerfile's build stage copies every folder pyproject.toml maps into `drape` (one
    left out fails the build, or worse, ships without it)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {Path(folder).parts[0] for folder in setuptools["package-dir"].values()}
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            copied |= {Path(w).parts[0] for w in words[1:-1]}
    assert folders <= copied, f"not copied: {sorted(folders - copied)}"

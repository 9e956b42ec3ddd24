"""One import root: everything installs under `drape`, the top-level folders of a checkout do
not import under their own names, the package list names every package folder, and building
the command line loads none of the heavy libraries (every `drape serve` builds it)."""

from __future__ import annotations

import re
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


def _requirement_names(requirements: list[str]) -> set[str]:
    """Distribution names a list of requirements declares, extras' own packages included
    (``psycopg[binary,pool]`` declares psycopg, psycopg-binary and psycopg-pool)."""
    names = set()
    for requirement in requirements:
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[([^\]]+)\])?", requirement)
        assert match, requirement
        base = match.group(1).lower().replace("_", "-")
        names.add(base)
        names |= {
            f"{base}-{extra.strip()}"
            for extra in (match.group(2) or "").split(",")
            if extra.strip()
        }
    return names


def test_every_imported_module_is_declared():
    """Every third-party module Drape's code imports belongs to a declared dependency: the
    main list, or the optional extra whose feature imports it (faiss: cpu/gpu, the
    evaluation data: eval). Test tools only in the dev extra."""
    import ast
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _requirement_names(project["dependencies"])
    extras = {
        name: _requirement_names(reqs) for name, reqs in project["optional-dependencies"].items()
    }
    allowed = runtime | extras["cpu"] | extras["gpu"] | extras["eval"]
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {Path(folder).parts[0] for folder in setuptools["package-dir"].values()}
    distributions = packages_distributions()
    undeclared = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in sys.stdlib_module_names or top == "drape":
                        continue
                    owners = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
                    # The benchmarks (drape bench) run with the dev extra installed.
                    bench = path.is_relative_to(ROOT / "cli" / "bench")
                    if not owners & (allowed | extras["dev"] if bench else allowed):
                        undeclared.setdefault(top, str(path.relative_to(ROOT)))
    assert not undeclared, undeclared
    assert {"pytest", "ruff"} <= extras["dev"] and "pytest" not in runtime


@pytest.mark.parametrize("folder", ["recsys", "models"])
def test_the_model_layers_import_no_service_or_command(folder: str):
    """recsys and models are the libraries the services and commands are built on: they
    import neither (a helper both need lives down here)."""
    upward = re.compile(r"^\s*(from|import)\s+drape\.(services|cli)\b", re.MULTILINE)
    found = [f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
             for path in sorted((ROOT / folder).rglob("*.py"))
             for match in upward.finditer(path.read_text())]  # fmt: skip
    assert not found, found

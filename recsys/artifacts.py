"""Versioned recommender artifacts on disk.

    <root>/<version>/manifest.json    what was trained, on what, with which settings
    <root>/<version>/users.txt        id maps (rows/columns of the training matrix)
    <root>/<version>/items.txt
    <root>/<version>/als/             ALS factors
    <root>/<version>/embeddings/      garment embedding index (when embeddings exist)
    <root>/<version>/sequential/      sequential rules (versions trained since they exist)
    <root>/CURRENT                    the version services load

A version is written completely in a temporary folder, renamed into place,
and only then published by atomically replacing CURRENT: a reader never sees
a half-written set.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from drape.recsys.als import ALSModel
from drape.recsys.hybrid import BlendWeights, HybridParams
from drape.recsys.idmap import IdMap
from drape.recsys.index import EmbeddingIndex
from drape.recsys.sequential import SequentialRules


class NoArtifacts(FileNotFoundError):
    """No trained version has been published yet."""


@dataclass
class ArtifactSet:
    version: str
    # The training's id maps: rows of the factors. None when loaded without them (see load).
    users: IdMap | None
    items: IdMap | None
    als: ALSModel
    embeddings: EmbeddingIndex | None
    params: HybridParams
    manifest: dict[str, object]
    sequential: SequentialRules | None = None


def current_version(root: Path) -> str | None:
    pointer = Path(root) / "CURRENT"
    return pointer.read_text().strip() if pointer.exists() else None


def publish(root: Path, name: str, write: Callable[[Path], None]) -> Path:
    """Writes folder ``name`` under ``root`` (``write`` fills an empty folder), renames it
    into place once complete and then points ``root/CURRENT`` at it by an atomic replace:
    a reader of CURRENT never sees part of a folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    final = root / name
    try:
        write(staging)
        if final.exists():
            raise FileExistsError(f"{final} already exists")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pointer = root / ".CURRENT.tmp"
    pointer.write_text(name + "\n")
    os.replace(pointer, root / "CURRENT")
    return final


def save(root: Path, artifacts: ArtifactSet) -> Path:
    """Writes a version and publishes it as CURRENT."""

    def write(folder: Path) -> None:
        artifacts.users.save(folder / "users.txt")
        artifacts.items.save(folder / "items.txt")
        artifacts.als.save(folder / "als")
        if artifacts.embeddings is not None:
            artifacts.embeddings.save(folder / "embeddings")
        if artifacts.sequential is not None:
            artifacts.sequential.save(folder / "sequential")
        about = {
            **artifacts.manifest,
            "version": artifacts.version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "params": asdict(artifacts.params),
        }
        (folder / "manifest.json").write_text(json.dumps(about, indent=2, default=str))

    return publish(root, artifacts.version, write)


def load_id_maps(root: Path, version: str) -> tuple[IdMap, IdMap]:
    """``version``'s (users, garments) maps."""
    users, items = load_ids(root, version)
    return IdMap(users), IdMap(items)


def load_ids(root: Path, version: str) -> tuple[np.ndarray, np.ndarray]:
    """``version``'s user and garment ids in index order, without the maps' lookup tables
    (a pandas Index of a million ids costs about 100 MB)."""
    directory = Path(root) / version
    return tuple(  # type: ignore[return-value]
        np.array((directory / f"{name}.txt").read_text().splitlines(), dtype=object)
        for name in ("users", "items")
    )


def manifest(root: Path, version: str) -> dict[str, object]:
    """What ``version`` was trained on and how (its stages' seconds among it)."""
    return json.loads((Path(root) / version / "manifest.json").read_text())


def load(root: Path, version: str | None = None, id_maps: bool = True) -> ArtifactSet:
    """Loads ``version`` (default: CURRENT). Without ``id_maps`` the maps are left out: a
    million shopper ids cost a process about 100 MB, and the recommend service needs them
    only for a full read (:func:`load_id_maps`)."""
    root = Path(root)
    version = version or current_version(root)
    if not version:
        raise NoArtifacts(f"no trained recommender under {root}; run `drape train recsys`")
    directory = root / version
    about = manifest(root, version)
    raw = about["params"]
    params = HybridParams(**{**raw, "weights": BlendWeights(**raw["weights"])})
    embeddings = (
        EmbeddingIndex.load(directory / "embeddings")
        if (directory / "embeddings").exists()
        else None
    )
    users, items = load_id_maps(root, version) if id_maps else (None, None)
    return ArtifactSet(
        version=version,
        users=users,
        items=items,
        als=ALSModel.load(directory / "als"),
        embeddings=embeddings,
        params=params,
        manifest=about,
        sequential=(
            SequentialRules.load(directory / "sequential")
            if (directory / "sequential").exists()
            else None
        ),
    )

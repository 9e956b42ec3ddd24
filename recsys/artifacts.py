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
from dataclasses import asdict, dataclass
from pathlib import Path

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


def save(root: Path, artifacts: ArtifactSet) -> Path:
    """Writes a version and publishes it as CURRENT."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    try:
        artifacts.users.save(staging / "users.txt")
        artifacts.items.save(staging / "items.txt")
        artifacts.als.save(staging / "als")
        if artifacts.embeddings is not None:
            artifacts.embeddings.save(staging / "embeddings")
        if artifacts.sequential is not None:
            artifacts.sequential.save(staging / "sequential")
        manifest = {
            **artifacts.manifest,
            "version": artifacts.version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "params": asdict(artifacts.params),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        final = root / artifacts.version
        if final.exists():
            raise FileExistsError(f"artifact version {artifacts.version} already exists")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pointer = root / ".CURRENT.tmp"
    pointer.write_text(artifacts.version + "\n")
    os.replace(pointer, root / "CURRENT")
    return final


def load_id_maps(root: Path, version: str) -> tuple[IdMap, IdMap]:
    """``version``'s (users, garments) maps."""
    directory = Path(root) / version
    return IdMap.load(directory / "users.txt"), IdMap.load(directory / "items.txt")


def load(root: Path, version: str | None = None, id_maps: bool = True) -> ArtifactSet:
    """Loads ``version`` (default: CURRENT). Without ``id_maps`` the maps are left out: a
    million shopper ids cost a process about 100 MB, and the recommend service needs them
    only for a full read (:func:`load_id_maps`)."""
    root = Path(root)
    version = version or current_version(root)
    if not version:
        raise NoArtifacts(f"no trained recommender under {root}; run `drape train recsys`")
    directory = root / version
    manifest = json.loads((directory / "manifest.json").read_text())
    raw = manifest["params"]
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
        manifest=manifest,
        sequential=(
            SequentialRules.load(directory / "sequential")
            if (directory / "sequential").exists()
            else None
        ),
    )

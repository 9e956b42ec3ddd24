"""Ingestion: a catalog feed (CSV, TSV or Parquet) into Drape; `drape ingest` runs it.

Each row is validated; its image is read, decoded (same checks as the features service),
stored content-addressed in the image store (:mod:`drape.catalog.images`) and embedded,
in-process or through a running features service. Then the garment embedding index is
built and the catalog published.

* The feed is the whole catalog: garments absent from it leave the catalog.
* Idempotent: an image already embedded by the same encoder version (same content hash)
  is not embedded again, and a re-run of the same feed publishes the same catalog.
* Bad rows and unreadable images are listed in the summary and skipped; nothing crashes.
* Nothing is half-written: the index is built in a temporary folder and swapped in, and
  the catalog is replaced atomically, only after everything succeeded.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from drape.catalog.images import ImageStore
from drape.models.images import ImageRejected, decode_image
from drape.recsys.catalog import COLUMNS, Catalog
from drape.recsys.index import EmbeddingIndex
from drape.services.runtime.config import DrapeConfig
from drape.services.runtime.images import image_limits
from drape.services.runtime.storage import ObjectStorage

MANIFEST = "ingest.json"
ALIASES = {"id": "garment_id", "color": "colour", "image_path": "image", "image_file": "image"}
REQUIRED = ("garment_id", "title", "category", "image")


@dataclass
class Problem:
    row: int  # 1-based data row of the feed (header excluded)
    garment_id: str
    reason: str


@dataclass
class IngestReport:
    rows: int = 0
    ingested: int = 0
    embedded: int = 0
    reused: int = 0
    problems: list[Problem] = field(default_factory=list)
    model_version: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "ingested": self.ingested,
            "embedded": self.embedded,
            "reused": self.reused,
            "skipped": len(self.problems),
            "model_version": self.model_version,
            "problems": [p.__dict__ for p in self.problems],
        }


def read_feed(path: Path) -> pd.DataFrame:
    """The feed as strings, columns lower-cased and aliases resolved."""
    if not path.exists():
        raise FileNotFoundError(f"no catalog feed at {path}")
    if path.suffix.lower() == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix.lower() in (".csv", ".tsv"):
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, sep="\t" if path.suffix == ".tsv" else ","
        )
    else:
        raise ValueError(f"{path}: use a .csv, .tsv or .parquet catalog feed")
    frame.columns = [ALIASES.get(c.strip().lower(), c.strip().lower()) for c in frame.columns]
    missing = [c for c in REQUIRED if c not in frame.columns]
    if "price" not in frame.columns and "price_minor" not in frame.columns:
        missing.append("price (or price_minor)")
    if missing:
        raise ValueError(f"{path}: the feed has no column {', '.join(missing)}")
    return frame.astype(object).where(frame.notna(), "")


def _text(value: object) -> str:
    return (
        ""
        if value is None or (isinstance(value, float) and math.isnan(value))
        else str(value).strip()
    )


def validate_row(row: dict[str, object]) -> tuple[dict[str, object] | None, str]:
    """A catalog row (without ``image_uri``) or the reason the feed row is unusable."""
    garment_id = _text(row.get("garment_id"))
    if not garment_id:
        return None, "garment_id is empty"
    if len(garment_id) > 128 or any(c.isspace() for c in garment_id):
        return None, "garment_id must be at most 128 characters without spaces"
    title, category = _text(row.get("title")), _text(row.get("category")).lower()
    if not title:
        return None, "title is empty"
    if not category:
        return None, "category is empty"
    try:
        if _text(row.get("price_minor")):
            price_minor = int(_text(row.get("price_minor")))
        else:
            price_minor = round(float(_text(row.get("price"))) * 100)
    except ValueError:
        return None, f"price {_text(row.get('price') or row.get('price_minor'))!r} is not a number"
    if price_minor < 0:
        return None, "price is negative"
    currency = _text(row.get("currency")).upper() or "EUR"
    if len(currency) != 3 or not currency.isalpha():
        return None, f"currency {currency!r} is not an ISO 4217 code"
    stock = _text(row.get("in_stock")).lower() or "true"
    if stock not in ("true", "false", "1", "0", "yes", "no"):
        return None, f"in_stock {stock!r} is not true/false"
    replenishable = _text(row.get("replenishable")).lower() or "false"
    if replenishable not in ("true", "false", "1", "0", "yes", "no"):
        return None, f"replenishable {replenishable!r} is not true/false"
    attributes: dict[str, object] = {}
    if _text(row.get("attributes")):
        try:
            attributes = json.loads(_text(row.get("attributes")))
        except json.JSONDecodeError:
            return None, "attributes is not a JSON object"
        if not isinstance(attributes, dict):
            return None, "attributes is not a JSON object"
    return {
        "garment_id": garment_id,
        "title": title,
        "category": category,
        "price_minor": price_minor,
        "currency": currency,
        "in_stock": stock in ("true", "1", "yes"),
        "colour": _text(row.get("colour"))
        or _text(attributes.get("colour") or attributes.get("color")),
        "pattern": _text(row.get("pattern")) or _text(attributes.get("pattern")),
        "replenishable": replenishable in ("true", "1", "yes"),
    }, ""


@dataclass
class _Pending:
    number: int  # the row's number in the feed
    row: dict[str, object]
    digest: str
    pixels: np.ndarray | None  # None when the embedding is reused


Embedder = Callable[[list[tuple[str, np.ndarray]]], dict[str, np.ndarray | str]]


def ingest(
    feed: Path,
    images_dir: Path,
    config: DrapeConfig,
    embedder: Embedder,
    model_version: str,
    progress: Callable[[Iterable, str], Iterable] = lambda items, _stage: items,
    batch_size: int = 32,
) -> IngestReport:
    """Validates, stores, embeds and publishes a catalog feed (see the module docstring).

    ``embedder`` maps [(garment id, RGB pixels)] to {garment id: embedding or error}.
    """
    frame = read_feed(feed)
    report = IngestReport(rows=len(frame), model_version=model_version)
    limits = image_limits(config.features)
    remote = ObjectStorage.from_config(config)
    if remote is not None:  # what an earlier ingest published, as the services see it
        remote.pull_catalog(force=True, embeddings=True)
    store = ImageStore(config.images_path(), remote)
    previous = _previous_embeddings(config.embeddings_path(), model_version)
    seen: set[str] = set()
    pending: list[_Pending] = []
    for number, row in enumerate(progress(frame.to_dict("records"), "read"), start=1):
        garment, reason = validate_row(row)
        if garment is None:
            report.problems.append(Problem(number, _text(row.get("garment_id")), reason))
            continue
        garment_id = str(garment["garment_id"])
        if garment_id in seen:
            report.problems.append(
                Problem(number, garment_id, "duplicate garment_id (first row kept)")
            )
            continue
        image_path = images_dir / _text(row.get("image"))
        try:
            data = image_path.read_bytes()
            decoded = decode_image(data, limits)
        except (OSError, ImageRejected) as exc:
            why = exc.reason if isinstance(exc, ImageRejected) else (exc.strerror or str(exc))
            report.problems.append(Problem(number, garment_id, f"image {image_path.name}: {why}"))
            continue
        seen.add(garment_id)
        digest, uri = store.put(data, decoded.media_type)
        garment["image_uri"] = uri
        reuse = previous.get(garment_id)
        pixels = None if reuse is not None and reuse[0] == digest else decoded.pixels
        pending.append(_Pending(number, garment, digest, pixels))

    vectors: dict[str, np.ndarray] = {}
    to_embed = [(str(p.row["garment_id"]), p.pixels) for p in pending if p.pixels is not None]
    row_of = {str(p.row["garment_id"]): p.number for p in pending}
    for start in progress(range(0, len(to_embed), batch_size), "embed"):
        results = embedder(to_embed[start : start + batch_size])
        for garment_id, result in results.items():
            if isinstance(result, str):
                report.problems.append(Problem(row_of[garment_id], garment_id, result))
            else:
                vectors[garment_id] = result
        report.embedded += sum(1 for _, r in results.items() if not isinstance(r, str))
    kept = []
    for item in pending:
        garment_id = str(item.row["garment_id"])
        if item.pixels is None:
            vectors[garment_id] = previous[garment_id][1]
            report.reused += 1
        if garment_id in vectors:
            kept.append(item)
    report.ingested = len(kept)
    if not kept:
        return report
    ids = np.array([str(p.row["garment_id"]) for p in kept], dtype=object)
    matrix = np.stack([vectors[g] for g in ids]).astype(np.float32)
    catalog = Catalog(pd.DataFrame([p.row for p in kept], columns=list(COLUMNS)))
    manifest = {
        "model_version": model_version,
        "image_sha256": {str(p.row["garment_id"]): p.digest for p in kept},
    }
    _publish_index(config.embeddings_path(), EmbeddingIndex.build(ids, matrix), manifest)
    catalog.save(config.catalog_path())
    if remote is not None:
        remote.push_catalog()
    return report


def _previous_embeddings(directory: Path, model_version: str) -> dict[str, tuple[str, np.ndarray]]:
    """{garment id: (image hash, embedding)} from the last ingest with this encoder."""
    manifest_path = directory / MANIFEST
    if not manifest_path.exists() or not (directory / "index.json").exists():
        return {}
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("model_version") != model_version:
        return {}
    index = EmbeddingIndex.load(directory)
    hashes: dict[str, str] = manifest.get("image_sha256", {})
    ids = [g for g in hashes if g in index]
    vectors, _ = index.vectors(ids)
    return {g: (hashes[g], vectors[i]) for i, g in enumerate(ids)}


def _publish_index(directory: Path, index: EmbeddingIndex, manifest: dict[str, object]) -> None:
    """Writes the index into a new versioned folder and points ``directory`` (a symlink) at
    it with one atomic rename: readers see the old index or the new one, never half."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{directory.name}-", dir=directory.parent))
    try:
        index.save(staging)
        (staging / MANIFEST).write_text(json.dumps(manifest))
        old_target = directory.resolve() if directory.is_symlink() else None
        if directory.exists() and not directory.is_symlink():
            # A plain folder from an older layout: move it aside once.
            os.replace(directory, directory.with_name(f"{directory.name}-legacy"))
        link = directory.with_name(f".{directory.name}.link")
        link.unlink(missing_ok=True)
        link.symlink_to(staging.name)
        os.replace(link, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old_target is not None and old_target != staging.resolve():
        shutil.rmtree(old_target, ignore_errors=True)
    shutil.rmtree(directory.with_name(f"{directory.name}-legacy"), ignore_errors=True)

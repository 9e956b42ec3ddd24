"""`drape train encoder`: contrastive fine-tuning of the garment encoder on the ingested
catalog's images (or a generated garment set), with kNN@5 category accuracy on held-out
garments before and after."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from drape.cli.options import add_config_argument
from drape.services.runtime.config import DrapeConfig, load_config

HELD_OUT_SHARE = 0.2


def catalog_images(config: DrapeConfig) -> tuple[list[np.ndarray], list[str], list[str]]:
    """(RGB images, categories, garment ids) of the ingested catalog."""
    from drape.catalog.images import ImageStore
    from drape.models.images import decode_image
    from drape.recsys.catalog import Catalog
    from drape.services.runtime.storage import ObjectStorage

    remote = ObjectStorage.from_config(config)
    if remote is not None:
        remote.pull_catalog(force=True)
    catalog = Catalog.load(config.catalog_path())
    store = ImageStore(config.images_path(), remote)
    images, labels, ids = [], [], []
    for position in range(len(catalog)):
        row = catalog.row(position)
        uri = str(row["image_uri"])
        if not store.holds(uri):
            continue
        images.append(decode_image(store.read(uri)).pixels)
        labels.append(str(row["category"]))
        ids.append(str(row["garment_id"]))
    if not images:
        raise ValueError(
            f"the catalog at {config.catalog_path()} has no ingested images; run `drape ingest`"
        )
    return images, labels, ids


def _held_out(garment_id: str) -> bool:
    """A stable 20% of garments, by hash of the id, never trained on."""
    return (
        int(hashlib.sha256(garment_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < HELD_OUT_SHARE
    )


def register(sub: argparse._SubParsersAction) -> None:
    encoder = sub.add_parser(
        "encoder", help="contrastive fine-tuning of the encoder on the ingested catalog"
    )
    add_config_argument(encoder)
    encoder.add_argument("--epochs", type=int, default=3)
    encoder.add_argument("--batch-size", type=int, default=16, help="images per step")
    encoder.add_argument("--lr", type=float, default=3e-4, help="learning rate")
    encoder.add_argument("--train-blocks", type=int, default=2, help="top backbone blocks trained")
    encoder.add_argument(
        "--generated", type=int, default=0, help="train on N generated garments instead"
    )
    encoder.add_argument("--unsupervised", action="store_true", help="ignore categories (NT-Xent)")
    encoder.add_argument(
        "--out", type=Path, help="output folder (default: <data_dir>/models/encoder-finetune)"
    )
    encoder.add_argument("--no-resume", action="store_true", help="start over")
    encoder.add_argument("--seed", type=int, default=0)
    encoder.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from drape.models.finetune import FinetuneSettings, finetune
    from drape.models.garments import product_mask
    from drape.models.images import letterbox
    from drape.models.metrics import knn_accuracy
    from drape.models.runners import OnnxEncoder
    from drape.services.features.extractor import crop_to_mask, encoder_spec
    from drape.synthetic.garments import garment_set

    config = load_config(args.config)
    spec = encoder_spec(config)
    if args.generated:
        rng = np.random.default_rng(args.seed)
        per = int(np.ceil(args.generated / 400))
        rendered = garment_set(per, seed=args.seed)
        train_set = [rendered[i] for i in rng.permutation(len(rendered))[: args.generated]]
        test_set = garment_set(per, seed=args.seed + 1000)
        train_images, train_labels = [s.image for s in train_set], [s.category for s in train_set]
        test_images, test_labels = [s.image for s in test_set], [s.category for s in test_set]
        source = f"{len(train_images)} generated garments (held out: {len(test_images)} others)"
    else:
        try:
            images, labels, ids = catalog_images(config)
        except (FileNotFoundError, ValueError) as exc:
            print(f"drape train encoder: {exc}", file=sys.stderr)
            return 2
        # The encoder sees garments cut out like the features service cuts them.
        images = [crop_to_mask(image, product_mask(image)) for image in images]
        held = [_held_out(g) for g in ids]
        train_images = [im for im, h in zip(images, held, strict=True) if not h]
        train_labels = [x for x, h in zip(labels, held, strict=True) if not h]
        test_images = [im for im, h in zip(images, held, strict=True) if h]
        test_labels = [x for x, h in zip(labels, held, strict=True) if h]
        source = f"{len(train_images)} catalog garments (held out: {len(test_images)})"
    supervised = not args.unsupervised and len(set(train_labels)) > 1
    out_dir = args.out or config.models_path() / "encoder-finetune"
    settings = FinetuneSettings(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
        train_blocks=args.train_blocks, seed=args.seed,
    )  # fmt: skip
    print(f"fine-tuning on {source}; loss: {'supervised contrastive' if supervised else 'NT-Xent'}")

    def accuracy(checkpoint: Path | None) -> float | None:
        if len(test_images) <= 5:
            return None
        runner = OnnxEncoder(spec, checkpoint, config.models_path())
        inputs = np.stack([letterbox(im, spec.image_size) for im in test_images])
        return knn_accuracy(runner.embed(inputs), np.array(test_labels), k=5)

    before = accuracy(None)
    started = time.perf_counter()
    checkpoint = finetune(
        train_images,
        train_labels if supervised else None,
        out_dir,
        spec,
        settings,
        resume=not args.no_resume,
        progress=lambda items, desc: tqdm(items, desc=desc, unit="batch", file=sys.stderr),
    )
    seconds = time.perf_counter() - started
    after = accuracy(checkpoint)
    report = {
        "source": source,
        "loss": "supcon" if supervised else "nt-xent",
        "settings": settings.__dict__,
        "seconds": seconds,
        "knn5_category_accuracy_before": before,
        "knn5_category_accuracy_after": after,
        "checkpoint": str(checkpoint),
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    if before is not None and after is not None:
        print(f"kNN@5 category accuracy on held-out garments: {before:.3f} -> {after:.3f}")
    print(
        f"wrote {checkpoint} in {seconds:.0f} s; serve it with DRAPE_ENCODER__CHECKPOINT={checkpoint}"
    )
    return 0

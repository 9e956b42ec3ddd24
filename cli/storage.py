"""`drape storage pull|push`: the data folder and the object storage the pods share
(``storage.url``; see :mod:`drape.services.runtime.storage`).

``pull`` fetches the catalog, its embeddings and the published recommender version into the
data folder: a pod's init container runs it, so the services start from local files.
``push`` copies what a data folder holds (images, catalog, embeddings, every trained version,
then CURRENT) to the storage: once, when a deployment moves off a shared volume."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from drape.cli.options import add_config_argument


def register(sub: argparse._SubParsersAction) -> None:
    storage = sub.add_parser("storage", help="pull from or push to the shared object storage")
    add_config_argument(storage)
    storage.add_argument("action", choices=("pull", "push"))
    storage.add_argument("--feeds", action="store_true",
                         help="pull: also the bucket's feeds/ into <data_dir>/feeds (for ingest)")  # fmt: skip
    storage.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drape.services.runtime.config import load_config
    from drape.services.runtime.storage import ObjectStorage, StorageError

    config = load_config(args.config)
    remote = ObjectStorage.from_config(config)
    if remote is None:
        raise SystemExit("no object storage is configured: set storage.url (DRAPE_STORAGE__URL)")
    try:
        return _act(args.action, config, remote, args.feeds)
    except StorageError as exc:
        print(f"drape storage {args.action}: {exc}", file=sys.stderr)
        return 1


def _act(action: str, config: Any, remote: Any, feeds: bool) -> int:
    if action == "pull":
        if feeds:
            count = remote.pull_feeds(config.data_dir / "feeds")
            print(f"pulled {count} feed file(s) into {config.data_dir / 'feeds'}")
        result = remote.pull()
        version = result["version"] or "none published yet"
        print(f"pulled from {remote.url} into {config.data_dir}: trained version {version}"
              f"{', catalog updated' if result['catalog_changed'] else ''}")  # fmt: skip
    else:
        counts = remote.push()
        print(f"pushed {config.data_dir} to {remote.url}: {counts['images']} image file(s), "
              f"{counts['versions']} trained version(s)")  # fmt: skip
    return 0

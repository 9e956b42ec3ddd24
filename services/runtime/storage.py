"""Object storage for what the pods share: the catalog, the garment embeddings, the garment
images and the trained recommender versions, kept in a bucket (``s3://``, ``gs://`` or any
URL fsspec opens) instead of a volume every pod mounts.

The bucket is the source of truth; each pod's data folder is a cache of it, so everything
that reads local files stays as it is:

    <url>/catalog.db                     the catalog (replaced whole by `drape ingest`)
    <url>/embeddings/...                 its embedding index (written before the catalog)
    <url>/images/sha256/ab/<hash>.jpg    garment images (content-addressed, written once)
    <url>/artifacts/recsys/<version>/... a trained version (written once)
    <url>/artifacts/recsys/CURRENT       the version to serve (written last: the publication)
    <url>/feeds/...                      catalog feeds for `drape ingest` (put there by you)
    <url>/previews/ab/<hash>.jpg         try-on previews served by URL (content-addressed, written once)

Writers (`drape ingest`, `drape train recsys`) write locally as always, then push. Readers
pull: `drape storage pull` before a pod starts, the recommend service at every refresh (a
new CURRENT or catalog), the try-on service an image when it first needs it. Objects are
downloaded to a temporary name and renamed, so a reader never sees half a file; an immutable
version folder is downloaded whole before it is renamed into place.

Credentials come from the environment the way each filesystem reads them (for S3:
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, or the pod's workload identity); never from
Drape's configuration.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("drape.storage")

CATALOG_KEY, EMBEDDINGS_KEY, IMAGES_KEY = "catalog.db", "embeddings", "images"
ARTIFACTS_KEY = "artifacts/recsys"
PREVIEWS_KEY = "previews"
FEEDS_KEY = "feeds"


class StorageError(RuntimeError):
    """The object store could not be reached or lacks what was asked for."""


class ObjectStorage:
    """A bucket prefix mirrored into local paths (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        catalog: Path,
        embeddings: Path,
        images: Path,
        artifacts: Path,
        options: Mapping[str, Any] | None = None,
        check_every_s: float = 10.0,
    ) -> None:
        import fsspec

        self.url = url.rstrip("/")
        try:
            self.fs, self.base = fsspec.core.url_to_fs(self.url, **dict(options or {}))
        except (ImportError, ValueError) as exc:
            raise StorageError(f"cannot open object storage {url!r}: {exc}") from exc
        self.base = self.base.rstrip("/")
        self.catalog, self.embeddings, self.images, self.artifacts = (
            Path(catalog), Path(embeddings), Path(images), Path(artifacts)
        )  # fmt: skip
        self.check_every_s = check_every_s
        self._checked_catalog = -float("inf")
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Any) -> ObjectStorage | None:
        """The configured storage (``storage.url``), or None where the data folder is the only
        copy (the default)."""
        if not config.storage.url:
            return None
        options = dict(config.storage.options)
        if config.storage.endpoint_url:  # an S3-compatible server other than AWS
            options.setdefault("client_kwargs", {})["endpoint_url"] = config.storage.endpoint_url
        return cls(
            config.storage.url, config.catalog_path(), config.embeddings_path(),
            config.images_path(), config.recsys_artifacts(), options,
            config.storage.check_every_s,
        )  # fmt: skip

    def key(self, relative: str) -> str:
        return f"{self.base}/{relative}" if relative else self.base

    def _call(self, what: str, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except FileNotFoundError:
            raise
        except Exception as exc:  # the filesystems raise their own kinds
            raise StorageError(f"object storage {self.url}: {what} failed: {exc}") from exc

    # -- writing -----------------------------------------------------------------------
    def put_file(self, local: Path, relative: str) -> None:
        self._call(f"writing {relative}", self.fs.put_file, str(local), self.key(relative))

    def put_tree(self, local: Path, relative: str) -> int:
        """Uploads every file under ``local``; returns how many."""
        files = sorted(p for p in Path(local).rglob("*") if p.is_file())
        for path in files:
            self.put_file(path, f"{relative}/{path.relative_to(local).as_posix()}")
        return len(files)

    def push_catalog(self) -> None:
        """The embedding index, then the catalog that names it."""
        if self.embeddings.exists():
            self.put_tree(self.embeddings, EMBEDDINGS_KEY)
        self.put_file(self.catalog, CATALOG_KEY)

    def push_image(self, local: Path, relative: str) -> None:
        self.put_file(local, f"{IMAGES_KEY}/{relative}")

    def push_version(self, version: str) -> None:
        """A trained version, then CURRENT naming it: readers never see part of one."""
        self.put_tree(self.artifacts / version, f"{ARTIFACTS_KEY}/{version}")
        self.put_file(self.artifacts / "CURRENT", f"{ARTIFACTS_KEY}/CURRENT")

    # -- reading -----------------------------------------------------------------------
    def _stamp(self, relative: str) -> str | None:
        """What identifies an object's content (its ETag, or size and time); None if absent."""
        try:
            info = self._call(f"looking up {relative}", self.fs.info, self.key(relative))
        except FileNotFoundError:
            return None
        tag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("mtime")
        return f"{tag}:{info.get('size')}"

    def _get_file(self, relative: str, local: Path) -> None:
        """Downloads an object to ``local``, atomically."""
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.", suffix=".part")
        os.close(fd)
        try:
            self._call(f"reading {relative}", self.fs.get_file, self.key(relative), tmp)
            os.replace(tmp, local)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _get_tree(self, relative: str, local: Path) -> int:
        """Downloads every object under ``relative`` into a new folder ``local``, renamed into
        place once complete (an existing folder is left as it is)."""
        prefix = self.key(relative)
        keys = self._call(f"listing {relative}", self.fs.find, prefix)
        if not keys:
            raise StorageError(f"object storage {self.url} has nothing under {relative}")
        local.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=local.parent, prefix=f".{local.name}."))
        try:
            for key in keys:
                target = staging / key[len(prefix) :].lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                self._call(f"reading {key}", self.fs.get_file, key, str(target))
            if local.exists():
                return 0
            staging.rename(local)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return len(keys)

    def pull_catalog(self, force: bool = False, embeddings: bool = False) -> bool:
        """Fetches the catalog (with ``embeddings``, its embedding index too) when the stored
        one changed; checks at most every ``check_every_s`` seconds unless ``force``. True if
        it changed."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._checked_catalog < self.check_every_s:
                return False
            self._checked_catalog = now
            stamp = self._stamp(CATALOG_KEY)
            if stamp is None:
                return False  # nothing ingested yet: the services say so themselves
            marker = self.catalog.with_name(f".{self.catalog.name}.stamp")
            if marker.exists() and marker.read_text() == stamp and self.catalog.exists():
                return False
            if embeddings and self._stamp(f"{EMBEDDINGS_KEY}/index.json") is not None:
                self._replace_tree(EMBEDDINGS_KEY, self.embeddings)
            self._get_file(CATALOG_KEY, self.catalog)
            _write_atomically(marker, stamp)
            log.info("pulled the catalog", extra={"url": self.url})
            return True

    def _replace_tree(self, relative: str, local: Path) -> None:
        """Replaces a mutable folder (the embedding index, read by one process per pod)."""
        staged = Path(tempfile.mkdtemp(dir=local.parent, prefix=f".{local.name}.new-")) / "tree"
        try:
            self._get_tree(relative, staged)
            old = staged.parent / "old"
            if local.exists():
                local.rename(old)
            staged.rename(local)
        finally:
            shutil.rmtree(staged.parent, ignore_errors=True)

    def pull_current(self) -> str | None:
        """Fetches the published version when it is not here yet and points the local CURRENT
        at it; returns it (None before the first `drape train recsys`)."""
        pointer = f"{ARTIFACTS_KEY}/CURRENT"
        try:
            version = self._call("reading CURRENT", self.fs.cat_file, self.key(pointer))
        except FileNotFoundError:
            return None
        version = version.decode().strip()
        if not version or "/" in version or version.startswith("."):
            raise StorageError(f"object storage {self.url}: CURRENT names {version!r}")
        with self._lock:
            folder = self.artifacts / version
            if not folder.exists():
                self._get_tree(f"{ARTIFACTS_KEY}/{version}", folder)
                log.info("pulled a trained version", extra={"version": version})
            local = self.artifacts / "CURRENT"
            if not local.exists() or local.read_text().strip() != version:
                _write_atomically(local, version + "\n")
        return version

    def _pull_object(self, relative: str, local: Path) -> bool:
        try:
            self._get_file(relative, local)
        except FileNotFoundError:
            return False
        return True

    def pull_image(self, relative: str, local: Path) -> bool:
        """Fetches one image; False if the bucket does not hold it."""
        return self._pull_object(f"{IMAGES_KEY}/{relative}", local)

    def pull_preview(self, relative: str, local: Path) -> bool:
        """Fetches one stored preview; False if the bucket does not hold it."""
        return self._pull_object(f"{PREVIEWS_KEY}/{relative}", local)

    def pull_feeds(self, local: Path) -> int:
        """Copies the bucket's ``feeds/`` (catalog feeds and their images) to ``local``."""
        if local.exists():
            shutil.rmtree(local)
        return self._get_tree(FEEDS_KEY, local)

    def pull(self) -> dict[str, object]:
        """Everything a pod starts from: the catalog, its embeddings, the published version."""
        changed = self.pull_catalog(force=True, embeddings=True)
        return {"catalog_changed": changed, "version": self.pull_current()}

    def push(self) -> dict[str, int]:
        """Everything this data folder holds, for a move to object storage: the images, the
        catalog and its embeddings, every trained version and CURRENT (last)."""
        counts = {"images": 0, "versions": 0}
        if self.images.exists():
            counts["images"] = self.put_tree(self.images, IMAGES_KEY)
        if self.catalog.exists():
            self.push_catalog()
        if (self.artifacts / "CURRENT").exists():
            for folder in sorted(p for p in self.artifacts.iterdir() if p.is_dir()):
                if not folder.name.startswith("."):
                    self.put_tree(folder, f"{ARTIFACTS_KEY}/{folder.name}")
                    counts["versions"] += 1
            self.put_file(self.artifacts / "CURRENT", f"{ARTIFACTS_KEY}/CURRENT")
        return counts


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)

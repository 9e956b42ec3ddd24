"""One read of the whole event log per pod, shared by the pod's worker processes.

Without it, every worker of a pod reads the whole log at start and whenever a new trained
version is published, and keeps its own copy of what it built: at 20M events that read
peaks near 1.6 GB in each worker (see :mod:`drape.recsys.coded`). With it, the first worker
to need a full build takes a file lock, reads the log, and saves the result
(:meth:`LiveLog.save`: ``.npy`` arrays and a manifest, no pickle) into a directory of the
pod's; every worker, the builder included, then maps those files read-only, so the kernel
holds one copy of their pages for the pod.
A worker that finds a saved base for its catalog and trained version maps it instead of
reading, and reads on from the watermark saved with it. When a worker's added entries are
merged into a new base (:meth:`LiveLog.compact`), it saves that base the same way unless
another worker saved a newer one first, which it then maps and reads on from.

The ALS item index (FAISS, over the trained item factors of the garments in the catalog)
is shared too: the first worker to need it for a trained version and catalog builds and
saves it, and the others load it instead of building their own.

The directory is private to the pod (``server.shared_dir``, by default the supervisor's
run directory, on the pod's own disk): a worker that dies leaves nothing locked (the kernel drops its lock), and a base
that cannot be read is logged and replaced by a fresh full read.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from drape.recsys import artifacts
from drape.recsys.index import EmbeddingIndex
from drape.recsys.live import LiveLog
from drape.services.events.store import Watermark

log = logging.getLogger("drape.recommend")
ALS_INDEXES = "als-index"  # the folder of the shared ALS item indexes, beside the bases


@dataclass(frozen=True)
class SavedBase:
    path: Path
    key: str  # the catalog and trained version it was built for
    watermark: Watermark  # where the read it was built from stopped
    generation: int  # one more than the base it replaced


def _watermark_json(mark: Watermark) -> dict[str, object]:
    return {"position": mark.position, "seen": sorted(mark.seen)}


class SharedBases:
    """The saved bases of one pod's workers, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Held while a worker reads the log to build a base, or chooses and saves one."""
        with open(self.directory / "lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def latest(self) -> SavedBase | None:
        """The newest saved base; None when there is none or it cannot be read."""
        try:
            name = artifacts.current_version(self.directory)
            if name is None:
                return None
            about = LiveLog.saved_about(self.directory / name)
            mark = about["watermark"]
            if not isinstance(mark, dict):
                raise ValueError(f"watermark {mark!r} is not an object")
            return SavedBase(
                self.directory / name,
                str(about["key"]),
                Watermark(int(mark["position"]), frozenset(map(str, mark["seen"]))),
                int(str(about["generation"])),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "shared base unreadable; it will be built again",
                extra={"directory": str(self.directory), "error": str(exc)},
            )
            return None

    def save(self, live: LiveLog, key: str, mark: Watermark, generation: int) -> SavedBase:
        """Saves ``live``'s base as the newest, and removes the older ones (workers that
        still map them keep their pages until they let go)."""
        name = f"base-{generation}-{os.getpid()}"
        artifacts.publish(
            self.directory, name,
            lambda folder: live.save(folder, key=key, watermark=_watermark_json(mark),
                                     generation=generation),
        )  # fmt: skip
        _remove_others(self.directory, keep=(name, ALS_INDEXES))
        return SavedBase(self.directory / name, key, mark, generation)

    def als_index(self, key: str, build: Callable[[], EmbeddingIndex]) -> EmbeddingIndex:
        """The ALS item index saved for ``key`` (a trained version and a catalog's
        fingerprint) by a worker of the pod, or ``build()``'s, then saved for the others.
        Under the lock: the pod builds it once, the workers that wait then load it."""
        root = self.directory / ALS_INDEXES
        with self.locked():
            if artifacts.current_version(root) == key:
                try:
                    return EmbeddingIndex.load(root / key)
                except (OSError, ValueError, KeyError, RuntimeError) as exc:  # RuntimeError: FAISS
                    log.warning("shared ALS index unreadable; building it",
                                extra={"path": str(root / key), "error": str(exc)})  # fmt: skip
            index = build()
            try:
                shutil.rmtree(root / key, ignore_errors=True)  # a broken one, or a half-written
                artifacts.publish(root, key, index.save)
            except OSError as exc:  # a full disk: this worker keeps its own
                log.warning("shared ALS index not saved", extra={"error": str(exc)})
                return index
            _remove_others(root, keep=(key,))
            return index


def _remove_others(directory: Path, keep: tuple[str, ...]) -> None:
    """Removes the folders of ``directory`` not named in ``keep``: those replaced, and any a
    worker that died left half written (workers that still map files in them keep their
    pages until they let go)."""
    for folder in directory.iterdir():
        if folder.is_dir() and folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def pod_bases(shared_dir: str) -> SharedBases | None:
    """The bases kept in ``server.shared_dir`` (none when it is empty)."""
    return SharedBases(Path(shared_dir) / "recommend") if shared_dir else None

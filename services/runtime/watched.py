"""A file a running service re-reads when it changes (an experiments file, the API keys):
checked at most every ``check_every_s`` by whoever asks for its value, taken only if it
loads, else the value in use stays and ``on_error`` is told. Kubernetes updates a mounted
ConfigMap or Secret by swapping a symlink, which changes what ``stat`` sees."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("drape.watched")


def file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class WatchedFile(Generic[T]):
    def __init__(self, path: Path, load: Callable[[Path, T | None], T], check_every_s: float = 5.0,
                 on_error: Callable[[str], None] | None = None) -> None:  # fmt: skip
        """``load(path, current)`` reads the file (``current``: the value in use, None the
        first time) and raises ``ValueError`` to refuse it; the first load's error is raised."""
        self.path = path
        self.check_every_s = check_every_s
        self._load, self._on_error = load, on_error
        self._lock = threading.Lock()
        self._stamp = file_stamp(path)
        self._value = load(path, None)
        self._checked = time.monotonic()

    def current(self) -> T:
        if time.monotonic() - self._checked >= self.check_every_s:
            with self._lock:
                if time.monotonic() - self._checked >= self.check_every_s:
                    self._reload()
        return self._value

    def reload(self) -> T:
        """Checks the file now."""
        with self._lock:
            self._reload()
        return self._value

    def _reload(self) -> None:
        self._checked = time.monotonic()
        stamp = file_stamp(self.path)
        if stamp is None or stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._value = self._load(self.path, self._value)
        except ValueError as exc:
            log.error("%s not reloaded, the version in use stays: %s", self.path, exc)
            if self._on_error:
                self._on_error(str(exc))

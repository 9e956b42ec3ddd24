"""Commands that run until they are stopped (`drape up`, `drape web`): Ctrl-C, or SIGTERM as a
pod being stopped sends it, stops what they started in the reverse order, and further signals
are ignored meanwhile so that a second Ctrl-C cannot cut the drain short and orphan services."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from contextlib import ExitStack


def run_until_stopped(command: str, body: Callable[[ExitStack], int],
                      errors: tuple[type[Exception], ...]) -> int:  # fmt: skip
    """``body``'s exit status; it registers how to stop each thing it starts on the given
    ExitStack (``stops.callback(server.stop)``) as soon as it has it. One of ``errors`` is
    printed as ``drape COMMAND: ...`` and exits 1; Ctrl-C or SIGTERM exits 0."""
    stops = ExitStack()
    try:
        return body(stops)
    except errors as exc:
        print(f"drape {command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stops.close()

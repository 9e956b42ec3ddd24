"""The request scope: request id and absolute deadline of the call being served.

The server interceptor opens a scope for every incoming call; client channels
made by :func:`drape.services.runtime.client.connect` read it to propagate the
request id and the remaining deadline to downstream services.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

REQUEST_ID_HEADER = "x-request-id"


@dataclass(frozen=True)
class RequestScope:
    request_id: str
    method: str
    # time.monotonic() value after which the caller has given up; None = no deadline.
    deadline: float | None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (may be negative), or None."""
        return None if self.deadline is None else self.deadline - time.monotonic()


_current: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "drape_request_scope", default=None
)


def current() -> RequestScope | None:
    return _current.get()


def remaining() -> float | None:
    """Seconds left before the current call's deadline, or None (no call, or no deadline)."""
    scope = _current.get()
    return scope.remaining() if scope else None


def current_request_id() -> str:
    scope = _current.get()
    return scope.request_id if scope else ""


def new_request_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def request_scope(
    request_id: str, method: str = "", timeout: float | None = None
) -> Iterator[RequestScope]:
    """Opens a scope; also usable by CLIs that call services outside any RPC."""
    deadline = None if timeout is None else time.monotonic() + timeout
    scope = RequestScope(request_id or new_request_id(), method, deadline)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


def enter(scope: RequestScope) -> contextvars.Token[RequestScope | None]:
    """Makes ``scope`` current for this thread; pair with :func:`leave`."""
    return _current.set(scope)


def leave(token: contextvars.Token[RequestScope | None]) -> None:
    _current.reset(token)

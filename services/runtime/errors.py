"""Exceptions that handlers raise; the server interceptor maps each to a gRPC status.

Handlers never call ``context.abort`` themselves: they raise one of these with a
message that tells the caller what was wrong and, where it helps, what to do.
"""

from __future__ import annotations

import grpc


class DrapeError(Exception):
    """Base class; ``code`` is the gRPC status the caller receives, ``trailers`` metadata
    sent with it (a retry delay, say)."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, trailers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.trailers = trailers


class InvalidArgument(DrapeError):
    """The request is malformed; ``field`` names the offending field."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(DrapeError):
    code = grpc.StatusCode.NOT_FOUND


class ResourceExhausted(DrapeError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(DrapeError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(DrapeError):
    """A dependency is down or overloaded; the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(DrapeError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(DrapeError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Unauthenticated(DrapeError):
    """No credentials, or credentials the service does not know."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(DrapeError):
    """Known credentials that do not allow this call."""

    code = grpc.StatusCode.PERMISSION_DENIED

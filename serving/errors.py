"""Domain errors and the gRPC status each one maps to (DESIGN §3 "Errors").

Every error the gateway raises on purpose is a :class:`ToitsuError`; the servicers' error
interceptor turns it into ``context.abort(code, message)``. Anything else that escapes is a bug
and becomes INTERNAL with a generic message (never a leaked assert as UNKNOWN).
"""

from __future__ import annotations

import grpc


class ToitsuError(Exception):
    """Base class: a message a person understands plus the gRPC status it travels with."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ToitsuError):
    """The request itself is unusable (bad audio, bad id, bad shape)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ToitsuError):
    """An identity, class or model the request names does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class NotOnThisVersion(NotFound):
    """The identity is enrolled only under an older model version (an activation kept it there):
    not found in this gallery, but a score here would be wrong, so FAILED_PRECONDITION says so."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class AlreadyExists(ToitsuError):
    """Creating something that is already there (enrolling an existing id in CREATE mode)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class ModelMismatch(ToitsuError):
    """An embedding or gallery bound to another model version than the one asked to score it."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class FailedPrecondition(ToitsuError):
    """The request is valid but the system is not in a state to do it (exporting an unfinished run,
    an activation already running, a version already active, identities that would be lost under
    the chosen policy)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Cancelled(ToitsuError):
    """The caller cancelled a long operation (an activation); nothing it started is left behind."""

    code = grpc.StatusCode.CANCELLED


class Unavailable(ToitsuError):
    """A backend, model or gallery is not ready (still loading, down, shutting down)."""

    code = grpc.StatusCode.UNAVAILABLE


class Overloaded(ToitsuError):
    """A bounded queue is full or a request is larger than a configured limit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(ToitsuError):
    """The client's deadline passed before the work finished."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class PermissionDenied(ToitsuError):
    """The caller's token lacks the role the RPC needs."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ToitsuError):
    """No bearer token, or one that is malformed, unknown, revoked or expired."""

    code = grpc.StatusCode.UNAUTHENTICATED

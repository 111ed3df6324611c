"""Per-request deadlines: the client's, or the server default when it sent none."""

from __future__ import annotations

import grpc

from serving.errors import DeadlineExceeded


def remaining(context: grpc.ServicerContext, default: float) -> float:
    """Seconds left for this request; DeadlineExceeded when none are."""
    left = context.time_remaining()
    seconds = default if left is None else min(left, default)
    if seconds <= 0:
        raise DeadlineExceeded("the request's deadline passed before its work started")
    return seconds

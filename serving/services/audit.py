"""``toitsu.v1.AuditService``: query the gateway's audit trail (``serving.audit``); admin only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import grpc

from protos.v1 import audit_pb2, audit_pb2_grpc
from serving.audit import AuditLog, Query
from serving.errors import FailedPrecondition

if TYPE_CHECKING:
    from serving.services.registry import Service


class AuditRuntime(Protocol):
    audit: AuditLog | None  # None when audit.enabled = false


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, runtime: AuditRuntime) -> None:
        self._runtime = runtime

    def Query(
        self, request: audit_pb2.QueryAuditRequest, context: grpc.ServicerContext
    ) -> audit_pb2.QueryAuditResponse:
        trail = self._runtime.audit
        if trail is None:
            raise FailedPrecondition("the audit trail is off on this gateway (audit.enabled = false)")
        events, truncated = trail.query(
            Query(
                since=request.since,
                until=request.until,
                subject=request.subject,
                identity=request.identity,
                method=request.method,
                code=request.code,
                before_id=request.before_id,
                limit=request.limit,
            )
        )
        return audit_pb2.QueryAuditResponse(
            events=[
                audit_pb2.AuditEvent(
                    id=e.id,
                    time=e.at,
                    subject=e.subject,
                    token_id=e.token_id,
                    method=e.method,
                    code=e.code,
                    peer=e.peer,
                    identities=e.identities,
                    duration_ms=e.ms,
                )
                for e in events
            ],
            truncated=truncated,
        )


def audit_service() -> Service:
    """The registry entry: needs no loaded modality. ``Service`` is imported here, not at the top:
    the registry imports this module."""
    from serving.services.registry import Service

    descriptor = audit_pb2.DESCRIPTOR.services_by_name["AuditService"]
    return Service(descriptor.full_name, audit_pb2_grpc.add_AuditServiceServicer_to_server, AuditServicer, ())

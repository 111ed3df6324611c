"""The one per-RPC role table: every RPC of every service in ``SERVICES`` → the least role that may call it.

Roles are ordered: ``verify`` < ``enroll`` < ``admin``; a token may call an RPC when its role is at
least the RPC's. An RPC missing from :data:`RPC_ROLES` needs ``admin`` (fail closed), and
``tests/serving/security/test_roles.py`` fails until it is listed. A new service adds its lines here.
"""

from __future__ import annotations

ROLES = ("verify", "enroll", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}

_VERIFY = ("Embed", "Verify", "Identify", "Classify", "Detect")
_ENROLL = ("Enroll", "EnrollTracks", "Delete", "List", "EnrollClass", "DeleteClass", "ListClasses")


def _service(name: str, methods: dict[str, str]) -> dict[str, str]:
    return {f"/toitsu.v1.{name}/{method}": role for method, role in methods.items()}


def _by_name(*methods: str) -> dict[str, str]:
    return {m: "verify" if m in _VERIFY else "enroll" if m in _ENROLL else "admin" for m in methods}


RPC_ROLES: dict[str, str] = {
    **_service("SpeakerService", _by_name("Embed", "Enroll", "Verify", "Identify", "Delete", "List")),
    **_service("SoundService", _by_name("Embed", "EnrollClass", "Classify", "DeleteClass", "ListClasses")),
    **_service(
        "FaceService", _by_name("Detect", "Embed", "Enroll", "EnrollTracks", "Verify", "Identify", "Delete", "List")
    ),
    **_service(
        "ModelService",
        dict.fromkeys(
            (
                "ListModels",
                "StartTraining",
                "ListJobs",
                "GetJob",
                "WatchJob",
                "CancelJob",
                "Export",
                "Activate",
                "Rollback",
                "Purge",
            ),
            "admin",
        ),
    ),
    **_service("GalleryAdminService", dict.fromkeys(("Backup", "Verify"), "admin")),  # backups: admin only
    **_service("TokenService", dict.fromkeys(("Create", "List", "Revoke", "Rotate"), "admin")),  # not _by_name: List
    **_service("AuditService", {"Query": "admin"}),  # the audit trail (serving.audit)
    # Health and reflection are open by default (auth.open_services); when closed, any valid token may call them.
    "/grpc.health.v1.Health/Check": "verify",
    "/grpc.health.v1.Health/Watch": "verify",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": "verify",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": "verify",
}
"""``/package.Service/Method`` (gRPC's full method name) → the least role that may call it."""


def required_role(method: str) -> str:
    """The role ``method`` (``/package.Service/Method``) needs; ``admin`` for one not in the table."""
    return RPC_ROLES.get(method, "admin")


def allows(role: str, required: str) -> bool:
    """True when a token of ``role`` may call an RPC that needs ``required``."""
    return role in _RANK and _RANK[role] >= _RANK[required]

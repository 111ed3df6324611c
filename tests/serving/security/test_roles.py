"""The role table covers every RPC of every registered service, and the roles nest."""

from __future__ import annotations

from google.protobuf import descriptor_pool

from serving.security.roles import ROLES, RPC_ROLES, allows, required_role
from serving.services.registry import SERVICES


def _registered_methods() -> list[str]:
    pool = descriptor_pool.Default()
    methods = []
    for service in SERVICES.values():
        descriptor = pool.FindServiceByName(service.full_name)
        methods += [f"/{descriptor.full_name}/{m.name}" for m in descriptor.methods]
    return methods


def test_every_rpc_of_every_service_has_a_role():
    methods = _registered_methods()
    assert len(methods) >= 29  # the four services of today at least
    missing = [m for m in methods if m not in RPC_ROLES]
    assert not missing, f"add these RPCs to serving/security/roles.py RPC_ROLES: {missing}"
    assert set(RPC_ROLES.values()) <= set(ROLES)


def test_the_table_names_no_rpc_that_does_not_exist():
    assert not {m for m in RPC_ROLES if not m.startswith("/grpc.")} - set(_registered_methods())


def test_the_roles_of_the_issue():
    assert required_role("/toitsu.v1.SpeakerService/Verify") == "verify"
    assert required_role("/toitsu.v1.FaceService/Detect") == "verify"
    assert required_role("/toitsu.v1.SoundService/Classify") == "verify"
    assert required_role("/toitsu.v1.FaceService/EnrollTracks") == "enroll"
    assert required_role("/toitsu.v1.SpeakerService/List") == "enroll"
    assert required_role("/toitsu.v1.SoundService/DeleteClass") == "enroll"
    assert all(role == "admin" for m, role in RPC_ROLES.items() if "/toitsu.v1.ModelService/" in m)
    assert required_role("/toitsu.v1.NotInTheTable/Anything") == "admin"  # fail closed


def test_roles_nest():
    assert allows("admin", "verify") and allows("admin", "enroll") and allows("enroll", "verify")
    assert not allows("verify", "enroll") and not allows("enroll", "admin") and not allows("nobody", "verify")

"""The gateway's gRPC services, one line each (DESIGN §3: "Services are registered in one SERVICES
table").

The gateway adds every entry to its server, lists it in server reflection and gives it a health
entry: SERVING once every modality it ``needs`` is loaded and its backend ready. A new service is
its module in ``serving/services/`` plus one line in :data:`SERVICES`; a service that needs no
model (a ModelService) has ``needs=()`` and is SERVING from the start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

import grpc

from protos.v1 import (
    face_pb2,
    face_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    sound_pb2,
    sound_pb2_grpc,
    speaker_pb2,
    speaker_pb2_grpc,
)
from serving.activation import Activator
from serving.audit import AuditLog
from serving.backup_schedule import BackupScheduler
from serving.config import Config
from serving.jobs.supervisor import JobSupervisor
from serving.modality import AudioModality, FaceModality
from serving.security.tokens import TokenStore
from serving.services.audit import audit_service
from serving.services.face import FaceServicer
from serving.services.gallery_admin import gallery_admin_service
from serving.services.model import ModelServicer
from serving.services.sound import SoundServicer
from serving.services.speaker import SpeakerServicer
from serving.services.tokens import token_service


class Runtime(Protocol):
    """What a servicer is built from: the gateway's configuration, its loaded modalities, its jobs."""

    config: Config
    jobs: JobSupervisor
    activator: Activator
    backups: BackupScheduler
    tokens: TokenStore
    audit: AuditLog | None

    def active_models(self) -> dict[str, tuple[str, int]]:
        """modality → (model name, version) each loaded modality serves."""
        ...

    def modality(self, name: str) -> AudioModality | FaceModality:
        """The loaded modality, or Unavailable saying why it is not (yet)."""
        ...


@dataclass(frozen=True)
class Service:
    full_name: str  # "toitsu.v1.SpeakerService": its health entry and its reflection name
    add_to_server: Callable[[Any, grpc.Server], None]  # the generated add_…Servicer_to_server
    make_servicer: Callable[[Runtime], Any]
    needs: tuple[str, ...]  # modalities (config sections) that must be loaded for SERVING


def modality_service(pb2: ModuleType, pb2_grpc: ModuleType, service: str, servicer: type, modality: str) -> Service:
    """A service over one modality; its servicer is built as ``servicer(runtime, deadline, store_media)``,
    where ``runtime()`` returns the loaded modality or raises Unavailable."""
    descriptor = pb2.DESCRIPTOR.services_by_name.get(service)
    if descriptor is None:
        raise KeyError(f"{pb2.__name__} defines no service {service!r}")

    def make(runtime: Runtime) -> Any:
        return servicer(
            lambda: runtime.modality(modality),
            runtime.config.server.default_deadline_seconds,
            getattr(runtime.config, modality).store_media,
        )

    return Service(descriptor.full_name, getattr(pb2_grpc, f"add_{service}Servicer_to_server"), make, (modality,))


def model_service() -> Service:
    """The model lifecycle (``toitsu.v1.ModelService``): needs no loaded modality to be SERVING."""
    descriptor = model_pb2.DESCRIPTOR.services_by_name["ModelService"]
    return Service(descriptor.full_name, model_pb2_grpc.add_ModelServiceServicer_to_server, ModelServicer, ())


SERVICES: dict[str, Service] = {
    "speaker": modality_service(speaker_pb2, speaker_pb2_grpc, "SpeakerService", SpeakerServicer, "speaker"),
    "sound": modality_service(sound_pb2, sound_pb2_grpc, "SoundService", SoundServicer, "sound"),
    "face": modality_service(face_pb2, face_pb2_grpc, "FaceService", FaceServicer, "face"),
    "model": model_service(),
    "gallery_admin": gallery_admin_service(),
    "tokens": token_service(),
    "audit": audit_service(),
}

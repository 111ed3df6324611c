"""``toitsu.v1.GalleryAdminService``: online backups and verification of the served galleries.

A served gallery's folder is locked by the gateway, so an online backup can only be taken by the
gateway process: this servicer runs :func:`serving.gallery.backup.take` on the loaded gallery
(searches and enrollments go on meanwhile). It needs no modality to be SERVING: Verify must be
able to explain why one is not (a damaged store, with the backup that would bring it back).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import grpc

from protos.v1 import gallery_admin_pb2, gallery_admin_pb2_grpc
from serving.backup_schedule import BackupScheduler
from serving.config import Config
from serving.errors import InvalidInput, Unavailable
from serving.gallery import backup, checkup
from serving.loader import MODALITIES, enabled_modalities, gallery_root
from serving.modality import AudioModality, FaceModality

if TYPE_CHECKING:
    from serving.services.registry import Service


class AdminRuntime(Protocol):
    config: Config
    backups: BackupScheduler  # told of each backup taken (the backup-age gauge)

    def modality(self, name: str) -> AudioModality | FaceModality:
        """The loaded modality, or Unavailable saying why it is not (yet)."""
        ...


class GalleryAdminServicer(gallery_admin_pb2_grpc.GalleryAdminServiceServicer):
    def __init__(self, runtime: AdminRuntime) -> None:
        self._runtime = runtime

    def Backup(
        self, request: gallery_admin_pb2.BackupRequest, context: grpc.ServicerContext
    ) -> gallery_admin_pb2.BackupResponse:
        config = self._runtime.config
        target = request.WhichOneof("target")
        if target == "modality":
            names = [_known(request.modality)]
        elif target == "all" and request.all:
            names = enabled_modalities(config)
        else:
            raise InvalidInput("name the modality to back up, or ask for all")
        if request.destination:
            dest = Path(request.destination)
        elif config.paths.backups:
            dest = Path(config.paths.backups) / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        else:
            raise InvalidInput("no destination given and no backup folder configured (paths.backups)")
        loaded = [(name, self._runtime.modality(name)) for name in names]  # all loaded, or nothing written
        reply = gallery_admin_pb2.BackupResponse()
        for name, modality in loaded:
            s = backup.take(modality.gallery, gallery_root(config, name), dest.resolve(), name)
            self._runtime.backups.record(s)
            reply.backups.add(
                modality=s.modality,
                path=s.path,
                sequence=s.sequence,
                identities=s.identities,
                model=s.model,
                version=s.version,
                dim=s.dim,
                created_at=s.created_at,
                bytes=s.bytes,
                seconds=s.seconds,
            )
        return reply

    def Verify(
        self, request: gallery_admin_pb2.VerifyGalleryRequest, context: grpc.ServicerContext
    ) -> gallery_admin_pb2.VerifyGalleryResponse:
        config = self._runtime.config
        names = [_known(request.modality)] if request.modality else enabled_modalities(config)
        reply = gallery_admin_pb2.VerifyGalleryResponse(ok=True)
        for name in names:
            try:
                found = checkup.check_open(self._runtime.modality(name).gallery, name, config.paths.backups)
            except Unavailable as exc:  # not loaded (maybe because its store is damaged): check the file
                found = checkup.check_unopened(gallery_root(config, name), name, config.paths.backups, exc.message)
            report = found.consistency
            reply.galleries.add(
                modality=name,
                ok=found.ok,
                integrity=found.integrity,
                store_count=report.store_count if report else 0,
                index_count=report.index_count if report else 0,
                store_sequence=report.store_sequence if report else 0,
                index_sequence=report.index_sequence if report else 0,
                message=found.message(),
                newest_backup=found.newest_backup.path if found.newest_backup else "",
            )
            reply.ok = reply.ok and found.ok
        return reply


def _known(name: str) -> str:
    if name not in MODALITIES:
        raise InvalidInput(f"unknown modality {name!r} (known: {', '.join(MODALITIES)})")
    return name


def gallery_admin_service() -> Service:
    """The registry entry: needs no loaded modality to be SERVING (it reports on those that are not).
    ``Service`` is imported here, not at the top: the registry imports this module."""
    from serving.services.registry import Service

    descriptor = gallery_admin_pb2.DESCRIPTOR.services_by_name["GalleryAdminService"]
    return Service(
        descriptor.full_name, gallery_admin_pb2_grpc.add_GalleryAdminServiceServicer_to_server, GalleryAdminServicer, ()
    )

"""``toitsu gallery backup|verify|restore``: gallery backups (serving.gallery.backup).

``backup`` and ``verify`` are clients of ``toitsu.v1.GalleryAdminService``: the gateway holds each
gallery's folder lock, so the online backup is taken by the gateway, into a folder on ITS machine.
``restore`` is local and offline (the gateway stopped): it replaces the folders a gateway would
lock. ``verify --var`` checks a stopped gateway's galleries locally.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from toitsu.client import channel, client_options, emit, rpc_call, to_dict


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("gallery", help="back up, verify and restore galleries")
    sub = parser.add_subparsers(dest="gallery_command", required=True, metavar="ACTION")
    p = sub.add_parser("backup", parents=[client_options()], help="online backup through the gateway")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--modality", choices=("speaker", "sound", "face"))
    which.add_argument("--all", action="store_true", help="every loaded modality")
    p.add_argument("dest", nargs="?", default="", help="folder on the gateway's machine (default: paths.backups/TIME)")
    p.set_defaults(run=backup)
    p = sub.add_parser("verify", parents=[client_options()], help="integrity check and index = store")
    p.add_argument("--modality", default="", help="one modality (default: every enabled one)")
    p.add_argument("--var", type=Path, default=None, help="check this var/ folder locally (gateway stopped)")
    p.add_argument("--backups", default="", help="with --var: where to look for the newest usable backup")
    p.set_defaults(run=verify)
    p = sub.add_parser("restore", help="restore a backup into a var/ folder (offline: stop the gateway first)")
    p.add_argument("src", type=Path, help="a backup folder (DEST, or DEST/<modality>)")
    p.add_argument("--var", type=Path, default=Path("var"), help="the gateway's var/ folder (default: var/)")
    p.add_argument("--force", action="store_true", help="replace a gallery that holds data (it is kept beside)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(run=restore)


def _stub(args: argparse.Namespace) -> Any:
    from protos.v1 import gallery_admin_pb2_grpc

    return gallery_admin_pb2_grpc.GalleryAdminServiceStub(channel(args.target, args))


def backup(args: argparse.Namespace) -> int:
    from protos.v1 import gallery_admin_pb2

    if args.all:
        request = gallery_admin_pb2.BackupRequest(all=True, destination=args.dest)
    else:
        request = gallery_admin_pb2.BackupRequest(modality=args.modality, destination=args.dest)
    reply = rpc_call(args, lambda: _stub(args).Backup(request, timeout=args.timeout))
    emit(args, to_dict(reply), lambda p: "\n".join(_backup_line(b) for b in p["backups"]))
    return 0


def _backup_line(b: dict[str, Any]) -> str:
    return (
        f"{b['modality']}: {b['path']}  {b['identities']} identities, sequence {b['sequence']}, "
        f"{b['model']} v{b['version']}, {int(b['bytes']) / 1e6:.1f} MB in {b['seconds']:.2f} s"
    )


def verify(args: argparse.Namespace) -> int:
    if args.var is not None:
        payload = _verify_local(args)
    else:
        from protos.v1 import gallery_admin_pb2

        request = gallery_admin_pb2.VerifyGalleryRequest(modality=args.modality)
        payload = to_dict(rpc_call(args, lambda: _stub(args).Verify(request, timeout=args.timeout)))
    emit(args, payload, lambda p: "\n".join(g["message"] for g in p["galleries"]) or "no galleries")
    return 0 if payload["ok"] else 1


def _verify_local(args: argparse.Namespace) -> dict[str, Any]:
    from serving.gallery.checkup import check_offline

    galleries = args.var / "galleries"
    names = [args.modality] if args.modality else sorted(p.name for p in galleries.glob("[a-z]*") if p.is_dir())
    checks = [check_offline(galleries / name, name, args.backups) for name in names]
    rows = [
        {
            "modality": c.modality,
            "ok": c.ok,
            "integrity": c.integrity,
            "message": c.message(),
            "newest_backup": c.newest_backup.path if c.newest_backup else "",
        }
        for c in checks
    ]
    return {"galleries": rows, "ok": all(c.ok for c in checks)}


def restore(args: argparse.Namespace) -> int:
    from serving.errors import ToitsuError
    from serving.gallery.restore import restore_all

    try:
        done = restore_all(args.src, args.var, force=args.force)
    except ToitsuError as exc:
        raise SystemExit(f"error: {exc.message}") from None
    rows = [
        {
            "modality": r.modality,
            "root": r.root,
            "identities": r.identities,
            "sequence": r.sequence,
            "replaced": r.replaced,
            "seconds": round(r.seconds, 3),
        }
        for r in done
    ]
    emit(
        args,
        {"restored": rows},
        lambda p: "\n".join(
            f"{r['modality']}: {r['identities']} identities (sequence {r['sequence']}) restored into {r['root']}"
            f" in {r['seconds']} s; index rebuilt and checked"
            + (f"; the old gallery is at {r['replaced']}" if r["replaced"] else "")
            for r in p["restored"]
        ),
    )
    return 0

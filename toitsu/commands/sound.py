"""``toitsu sound …``: a client of SoundService (embed, enroll a class, classify, delete, list)."""

from __future__ import annotations

import argparse
from pathlib import Path

from protos.v1 import sound_pb2, sound_pb2_grpc
from toitsu.client import candidate_lines, channel, client_options, emit, list_all, rpc_call, to_dict
from toitsu.commands.speaker import _MODES, _audio, _model


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("sound", help="environmental sounds: embeddings and few-shot classes")
    sub = parser.add_subparsers(dest="sound_command", required=True, metavar="ACTION")
    common = client_options()
    p = sub.add_parser("embed", parents=[common], help="embed one clip")
    p.add_argument("file", type=Path)
    p.set_defaults(run=embed)
    p = sub.add_parser("enroll", parents=[common], help="enroll a class from example clips")
    p.add_argument("label")
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--mode", choices=sorted(_MODES), default="create")
    p.add_argument("--store-media", action="store_true")
    p.set_defaults(run=enroll)
    p = sub.add_parser("classify", parents=[common], help="which enrolled class is FILE, if any?")
    p.add_argument("file", type=Path)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--far", type=float, default=0.0, help="target false-accept rate (default: the server's, 0.01)")
    p.set_defaults(run=classify)
    p = sub.add_parser("delete", parents=[common], help="remove a class")
    p.add_argument("label")
    p.set_defaults(run=delete)
    p = sub.add_parser("list", parents=[common], help="list enrolled classes")
    p.set_defaults(run=list_classes)


def _stub(args: argparse.Namespace) -> sound_pb2_grpc.SoundServiceStub:
    return sound_pb2_grpc.SoundServiceStub(channel(args.target, args))


def embed(args: argparse.Namespace) -> int:
    reply = rpc_call(
        args, lambda: _stub(args).Embed(sound_pb2.EmbedSoundRequest(audio=_audio(args.file)), timeout=args.timeout)
    )
    emit(args, to_dict(reply), lambda p: f"{len(p['embedding']['values'])}-d embedding from {_model(p['embedding'])}")
    return 0


def enroll(args: argparse.Namespace) -> int:
    request = sound_pb2.EnrollClassRequest(
        label=args.label, audio=[_audio(f) for f in args.files], mode=_MODES[args.mode], store_media=args.store_media
    )
    payload = to_dict(rpc_call(args, lambda: _stub(args).EnrollClass(request, timeout=args.timeout)))
    emit(
        args,
        payload,
        lambda p: (
            f"{'enrolled' if p['created'] else 'updated'} class {p['label']}: {p['num_samples']} clips, {_model(p)}"
        ),
    )
    return 0


def classify(args: argparse.Namespace) -> int:
    request = sound_pb2.ClassifySoundRequest(audio=_audio(args.file), top_k=args.top_k, target_far=args.far)
    payload = to_dict(rpc_call(args, lambda: _stub(args).Classify(request, timeout=args.timeout)))

    def human(p: dict) -> str:
        head = (
            p["label"] if p["known"] else "unknown"
        ) + f" (threshold {p['threshold']:.4f} at FAR {p['target_far']:g}, {p['classes']} classes, {_model(p)})"
        return "\n".join([head, *candidate_lines(p["candidates"])])

    emit(args, payload, human)
    return 0


def delete(args: argparse.Namespace) -> int:
    request = sound_pb2.DeleteClassRequest(label=args.label)
    payload = to_dict(rpc_call(args, lambda: _stub(args).DeleteClass(request, timeout=args.timeout)))
    emit(args, payload, lambda p: f"deleted class {p['label']}")
    return 0


def list_classes(args: argparse.Namespace) -> int:
    stub = _stub(args)
    classes, total = list_all(
        args,
        lambda token: stub.ListClasses(
            sound_pb2.ListClassesRequest(page_size=500, page_token=token), timeout=args.timeout
        ),
        "classes",
    )
    emit(
        args,
        {"classes": classes, "total": total},
        lambda p: "\n".join(
            [f"{p['total']} classes enrolled"] + [f"  {c['id']:<32} {c['num_samples']} clips" for c in p["classes"]]
        ),
    )
    return 0

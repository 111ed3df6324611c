"""``toitsu speaker …``: a client of SpeakerService (embed, enroll, verify, identify, delete, list)."""

from __future__ import annotations

import argparse
from pathlib import Path

from protos.v1 import common_pb2, speaker_pb2, speaker_pb2_grpc
from toitsu.client import candidate_lines, channel, client_options, emit, list_all, read_file, rpc_call, to_dict

_MODES = {"create": common_pb2.CREATE, "append": common_pb2.APPEND, "replace": common_pb2.REPLACE}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("speaker", help="speaker embedding, enrollment, verification, identification")
    sub = parser.add_subparsers(dest="speaker_command", required=True, metavar="ACTION")
    common = client_options()
    p = sub.add_parser("embed", parents=[common], help="embed one utterance")
    p.add_argument("file", type=Path)
    p.set_defaults(run=embed)
    p = sub.add_parser("enroll", parents=[common], help="enroll a speaker from one or more utterances")
    p.add_argument("speaker_id")
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument(
        "--mode",
        choices=sorted(_MODES),
        default="create",
        help="create (default; fails if enrolled), append samples, or replace them",
    )
    p.add_argument("--store-media", action="store_true", help="keep the audio so a new model can re-embed it")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="metadata (repeatable)")
    p.set_defaults(run=enroll)
    p = sub.add_parser("verify", parents=[common], help="is FILE the enrolled speaker ID?")
    p.add_argument("speaker_id")
    p.add_argument("file", type=Path)
    p.add_argument("--far", type=float, default=0.0, help="target false-accept rate (default: the server's, 0.01)")
    p.set_defaults(run=verify)
    p = sub.add_parser("identify", parents=[common], help="who is speaking in FILE, if anyone enrolled?")
    p.add_argument("file", type=Path)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--far", type=float, default=0.0)
    p.set_defaults(run=identify)
    p = sub.add_parser("delete", parents=[common], help="remove a speaker and everything stored for it")
    p.add_argument("speaker_id")
    p.set_defaults(run=delete)
    p = sub.add_parser("list", parents=[common], help="list enrolled speakers")
    p.add_argument("--page-size", type=int, default=500)
    p.set_defaults(run=list_speakers)


def _stub(args: argparse.Namespace) -> speaker_pb2_grpc.SpeakerServiceStub:
    return speaker_pb2_grpc.SpeakerServiceStub(channel(args.target, args))


def _audio(path: Path) -> common_pb2.Audio:
    return common_pb2.Audio(encoded=read_file(path))


def _model(payload: dict) -> str:
    model = payload.get("model", {})
    return f"{model.get('name')} v{model.get('version')}"


def embed(args: argparse.Namespace) -> int:
    reply = rpc_call(
        args, lambda: _stub(args).Embed(speaker_pb2.EmbedSpeakerRequest(audio=_audio(args.file)), timeout=args.timeout)
    )
    payload = to_dict(reply)
    emit(
        args,
        payload,
        lambda p: (
            f"{len(p['embedding']['values'])}-d embedding from {_model(p['embedding'])}; "
            f"{p['audio_info']['speech_seconds']:.2f} s of speech"
        ),
    )
    return 0


def enroll(args: argparse.Namespace) -> int:
    meta = dict(kv.split("=", 1) for kv in args.meta if "=" in kv)
    request = speaker_pb2.EnrollSpeakerRequest(
        speaker_id=args.speaker_id,
        audio=[_audio(f) for f in args.files],
        mode=_MODES[args.mode],
        store_media=args.store_media,
        metadata=meta,
    )
    payload = to_dict(rpc_call(args, lambda: _stub(args).Enroll(request, timeout=args.timeout)))
    emit(
        args,
        payload,
        lambda p: (
            f"{'enrolled' if p['created'] else 'updated'} {p['speaker_id']}: "
            f"{p['num_samples']} samples, {_model(p)}, sequence {p['sequence']}"
        ),
    )
    return 0


def verify(args: argparse.Namespace) -> int:
    request = speaker_pb2.VerifySpeakerRequest(speaker_id=args.speaker_id, audio=_audio(args.file), target_far=args.far)
    payload = to_dict(rpc_call(args, lambda: _stub(args).Verify(request, timeout=args.timeout)))
    d = payload["decision"]
    emit(
        args,
        payload,
        lambda p: (
            f"{'ACCEPT' if d['accepted'] else 'REJECT'} {p['speaker_id']}: score "
            f"{d['score']:.4f}, threshold {d['threshold']:.4f} at FAR {d['target_far']:g} ({_model(p)})"
        ),
    )
    return 0


def identify(args: argparse.Namespace) -> int:
    request = speaker_pb2.IdentifySpeakerRequest(audio=_audio(args.file), top_k=args.top_k, target_far=args.far)
    payload = to_dict(rpc_call(args, lambda: _stub(args).Identify(request, timeout=args.timeout)))

    def human(p: dict) -> str:
        head = (
            f"identified {p['best_id']}" if p["identified"] else "unknown speaker"
        ) + f" (threshold {p['threshold']:.4f} at FAR {p['target_far']:g}, {p['gallery_size']} enrolled, {_model(p)})"
        return "\n".join([head, *candidate_lines(p["candidates"])])

    emit(args, payload, human)
    return 0


def delete(args: argparse.Namespace) -> int:
    request = speaker_pb2.DeleteSpeakerRequest(speaker_id=args.speaker_id)
    payload = to_dict(rpc_call(args, lambda: _stub(args).Delete(request, timeout=args.timeout)))
    emit(args, payload, lambda p: f"deleted {p['speaker_id']}")
    return 0


def list_speakers(args: argparse.Namespace) -> int:
    stub = _stub(args)
    speakers, total = list_all(
        args,
        lambda token: stub.List(
            speaker_pb2.ListSpeakersRequest(page_size=args.page_size, page_token=token), timeout=args.timeout
        ),
        "speakers",
    )
    payload = {"speakers": speakers, "total": total}
    emit(
        args,
        payload,
        lambda p: "\n".join(
            [f"{p['total']} speakers enrolled"]
            + [
                f"  {s['id']:<32} {s['num_samples']} samples  {s['model']['name']} v{s['model']['version']}"
                for s in p["speakers"]
            ]
        ),
    )
    return 0

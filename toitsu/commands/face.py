"""``toitsu face …``: a client of FaceService (detect, embed, enroll, enroll-tracks, verify,
identify, delete, list)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from protos.v1 import face_pb2, face_pb2_grpc
from toitsu.client import candidate_lines, channel, client_options, emit, list_all, read_file, rpc_call, to_dict
from toitsu.commands.speaker import _MODES, _model

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
MANIFEST = "tracks.jsonl"
FRAMES_PER_MESSAGE = 16


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("face", help="faces: detection, embeddings, enrollment (tracks too), 1:1, 1:N")
    sub = parser.add_subparsers(dest="face_command", required=True, metavar="ACTION")
    common = client_options()
    p = sub.add_parser("detect", parents=[common], help="faces in an image: boxes, landmarks, quality")
    p.add_argument("image", type=Path)
    p.add_argument("--min-probability", type=float, default=0.0, help="detector probability floor (server default 0.9)")
    p.set_defaults(run=detect)
    p = sub.add_parser("embed", parents=[common], help="one embedding per face in an image")
    p.add_argument("image", type=Path)
    p.add_argument("--aligned", action="store_true", help="the image is already an aligned crop")
    p.set_defaults(run=embed)
    p = sub.add_parser("enroll", parents=[common], help="enroll a person from images (one face each)")
    p.add_argument("person")
    p.add_argument("images", type=Path, nargs="+")
    p.add_argument("--mode", choices=sorted(_MODES), default="create")
    p.add_argument("--store-media", action="store_true")
    p.set_defaults(run=enroll)
    p = sub.add_parser(
        "enroll-tracks",
        parents=[common],
        help=(
            "enroll face tracks from DIR: one folder of frames per track; the person is the folder's name, "
            f'or DIR/<person>/<track>/, or given by DIR/{MANIFEST} rows {{"track": folder, "person": id}}'
        ),
    )
    p.add_argument("dir", type=Path)
    p.add_argument("--aligned", action="store_true", help="frames are already aligned crops")
    p.add_argument("--best-frames", type=int, default=0, help="frames used per track (server default 5)")
    p.add_argument("--min-quality", type=float, default=0.0, help="frame quality floor (server default 0.25)")
    p.add_argument("--min-frames", type=int, default=0, help="usable frames a track needs (server default 1)")
    p.set_defaults(run=enroll_tracks)
    p = sub.add_parser("verify", parents=[common], help="is the face in IMAGE the enrolled PERSON?")
    p.add_argument("person")
    p.add_argument("image", type=Path)
    p.add_argument("--far", type=float, default=0.0, help="target false-accept rate (default: the server's, 0.01)")
    p.set_defaults(run=verify)
    p = sub.add_parser("identify", parents=[common], help="who is the face in IMAGE, if anyone?")
    p.add_argument("image", type=Path)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--far", type=float, default=0.0)
    p.set_defaults(run=identify)
    p = sub.add_parser("delete", parents=[common], help="remove a person")
    p.add_argument("person")
    p.set_defaults(run=delete)
    p = sub.add_parser("list", parents=[common], help="list enrolled people")
    p.set_defaults(run=list_people)


def _stub(args: argparse.Namespace) -> face_pb2_grpc.FaceServiceStub:
    return face_pb2_grpc.FaceServiceStub(channel(args.target, args))


def _image(path: Path) -> face_pb2.Image:
    return face_pb2.Image(encoded=read_file(path))


def _face_line(face: dict) -> str:
    q = face.get("quality", {})
    return (
        f"  box ({face['x1']:.0f}, {face['y1']:.0f}, {face['x2']:.0f}, {face['y2']:.0f})  "
        f"p={face['probability']:.3f}  quality {q.get('score', 0):.2f} (size {q.get('size', 0):.0f} px, "
        f"detail {q.get('sharpness', 0):.2f}, frontal {q.get('frontal', 0):.2f})"
    )


def detect(args: argparse.Namespace) -> int:
    reply = rpc_call(
        args,
        lambda: _stub(args).Detect(
            face_pb2.DetectFacesRequest(image=_image(args.image), min_probability=args.min_probability),
            timeout=args.timeout,
        ),
    )
    emit(
        args,
        to_dict(reply),
        lambda p: "\n".join(
            [f"{len(p['faces'])} face(s) in {p['image_info']['width']}×{p['image_info']['height']}"]
            + [_face_line(f) for f in p["faces"]]
        ),
    )
    return 0


def embed(args: argparse.Namespace) -> int:
    image = _image(args.image)
    request = face_pb2.EmbedFacesRequest(aligned=image) if args.aligned else face_pb2.EmbedFacesRequest(image=image)
    reply = rpc_call(args, lambda: _stub(args).Embed(request, timeout=args.timeout))
    emit(
        args,
        to_dict(reply),
        lambda p: (
            f"{len(p['faces'])} embedding(s)"
            + (
                f" of {len(p['faces'][0]['embedding']['values'])} values from {_model(p['faces'][0]['embedding'])}"
                if p["faces"]
                else ""
            )
        ),
    )
    return 0


def enroll(args: argparse.Namespace) -> int:
    request = face_pb2.EnrollFaceRequest(
        person_id=args.person,
        images=[_image(f) for f in args.images],
        mode=_MODES[args.mode],
        store_media=args.store_media,
    )
    payload = to_dict(rpc_call(args, lambda: _stub(args).Enroll(request, timeout=args.timeout)))
    emit(
        args,
        payload,
        lambda p: (
            f"{'enrolled' if p['created'] else 'updated'} {p['person_id']}: {p['num_samples']} samples, {_model(p)}"
        ),
    )
    return 0


def find_tracks(root: Path) -> list[tuple[str, str, list[Path]]]:
    """(track id, person id, frame paths in name order) for every track folder under ``root``."""

    def frames(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())

    manifest = root / MANIFEST
    if manifest.is_file():
        tracks = []
        for n, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                row = json.loads(line)
                if "track" not in row or "person" not in row:
                    raise SystemExit(f'error: {manifest}:{n}: each row needs "track" and "person"')
                folder = root / row["track"]
                tracks.append(
                    (
                        row.get("track_id", Path(row["track"]).as_posix().replace("/", ".")),
                        row["person"],
                        frames(folder),
                    )
                )
        return tracks
    tracks = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        own = frames(folder)
        if own:
            tracks.append((folder.name, folder.name, own))
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            if nested := frames(sub):
                tracks.append((f"{folder.name}.{sub.name}", folder.name, nested))
    return tracks


def _requests(
    tracks: list[tuple[str, str, list[Path]]], args: argparse.Namespace
) -> Iterator[face_pb2.EnrollTracksRequest]:
    options = face_pb2.TrackOptions(
        best_frames=args.best_frames,
        min_quality=args.min_quality,
        min_frames=args.min_frames,
        progress_every=FRAMES_PER_MESSAGE,
    )
    first = True
    for track_id, person, paths in tracks:
        chunks = [paths[i : i + FRAMES_PER_MESSAGE] for i in range(0, len(paths), FRAMES_PER_MESSAGE)] or [[]]
        for n, chunk in enumerate(chunks):
            frames = [
                face_pb2.Frame(aligned=_image(p)) if args.aligned else face_pb2.Frame(image=_image(p)) for p in chunk
            ]
            request = face_pb2.EnrollTracksRequest(
                track_id=track_id, person_id=person if n == 0 else "", frames=frames, end=n == len(chunks) - 1
            )
            if first:
                request.options.CopyFrom(options)
                first = False
            yield request


def enroll_tracks(args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        raise SystemExit(f"error: {args.dir} is not a folder")
    tracks = find_tracks(args.dir)
    if not tracks:
        raise SystemExit(f"error: no track folders with images under {args.dir}")
    results = []
    total = sum(len(paths) for _, _, paths in tracks)
    with tqdm(total=total, unit="frame", desc="enroll-tracks", disable=args.json, file=sys.stderr) as bar:

        def run() -> None:
            for reply in _stub(args).EnrollTracks(_requests(tracks, args), timeout=args.timeout * len(tracks)):
                if reply.WhichOneof("event") == "progress":
                    bar.update(reply.progress.frames_total - bar.n)
                else:
                    results.append(to_dict(reply.result))
                    bar.set_postfix(tracks=len(results), accepted=sum(r["accepted"] for r in results))
            bar.update(total - bar.n)

        rpc_call(args, run)
    accepted = sum(r["accepted"] for r in results)
    payload = {"tracks": len(results), "accepted": accepted, "results": results}
    emit(
        args,
        payload,
        lambda p: "\n".join(
            [f"{p['accepted']} of {p['tracks']} tracks enrolled"]
            + [
                f"  {r['track_id']:<28} {r['person_id']:<20} "
                + (
                    f"✓ {r['frames_used']}/{r['frames_received']} frames, quality {r['quality']['mean_used']:.2f}"
                    + (" (replaced)" if r["replaced"] else "")
                    if r["accepted"]
                    else f"✗ {r['reason']}"
                )
                for r in p["results"]
            ]
        ),
    )
    return 0 if accepted == len(results) else 2


def verify(args: argparse.Namespace) -> int:
    request = face_pb2.VerifyFaceRequest(person_id=args.person, image=_image(args.image), target_far=args.far)
    payload = to_dict(rpc_call(args, lambda: _stub(args).Verify(request, timeout=args.timeout)))
    d = payload["decision"]
    emit(
        args,
        payload,
        lambda p: (
            f"{'ACCEPT' if d['accepted'] else 'REJECT'} {p['person_id']}: score "
            f"{d['score']:.4f} vs threshold {d['threshold']:.4f} (FAR {d['target_far']:g}, {_model(p)})"
        ),
    )
    return 0


def identify(args: argparse.Namespace) -> int:
    request = face_pb2.IdentifyFaceRequest(image=_image(args.image), top_k=args.top_k, target_far=args.far)
    payload = to_dict(rpc_call(args, lambda: _stub(args).Identify(request, timeout=args.timeout)))

    def human(p: dict) -> str:
        head = (
            p["best_id"] if p["identified"] else "unknown"
        ) + f" (threshold {p['threshold']:.4f} at FAR {p['target_far']:g}, {p['gallery_size']} enrolled)"
        return "\n".join([head, *candidate_lines(p["candidates"])])

    emit(args, payload, human)
    return 0


def delete(args: argparse.Namespace) -> int:
    payload = to_dict(
        rpc_call(
            args, lambda: _stub(args).Delete(face_pb2.DeleteFaceRequest(person_id=args.person), timeout=args.timeout)
        )
    )
    emit(args, payload, lambda p: f"deleted {p['person_id']}")
    return 0


def list_people(args: argparse.Namespace) -> int:
    stub = _stub(args)
    people, total = list_all(
        args,
        lambda token: stub.List(face_pb2.ListFacesRequest(page_size=500, page_token=token), timeout=args.timeout),
        "people",
    )
    emit(
        args,
        {"people": people, "total": total},
        lambda p: "\n".join(
            [f"{p['total']} people enrolled"] + [f"  {c['id']:<32} {c['num_samples']} samples" for c in p["people"]]
        ),
    )
    return 0

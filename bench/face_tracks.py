"""EnrollTracks throughput and memory (issue 3): 100 tracks × 30 raw frames through `toitsu serve`.

The gateway runs as a child process (``toitsu serve``, default pack, face modality only); one
client stream sends every track (frames 320×240 JPEG, the face 130-170 px, a third of the frames
blurred) in chunks of 10 frames. Reported:

- faces/s through the gateway (frames with a face found ÷ stream wall time), and the same frames
  through the raw pipeline in this process (decode → MTCNN → dlib 5 points → chip → ONNX, two
  worker threads like the gateway's, no gRPC) measured in the same run: the ratio is gateway ÷ raw;
- the server's RSS sampled every 0.25 s: after the first 10 tracks, at the middle and at the end
  (bounded memory: it should stay flat however many tracks stream through);
- that sending every track again leaves the gallery unchanged (same people, same sample counts).

    .venv/bin/python bench/face_tracks.py --models models          # JSON in bench/results/face_tracks.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from protos.v1 import face_pb2, face_pb2_grpc  # noqa: E402
from training.data.face_scenes import frames  # noqa: E402

PEOPLE = ("astronaut", "grace-hopper")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--tracks", type=int, default=100)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "face_tracks.json")
    args = parser.parse_args()
    print(f"generating {args.tracks} tracks × {args.frames} frames …", flush=True)
    tracks = [
        (f"track-{t:04d}", f"{PEOPLE[t % 2]}-{t % 10}", frames(PEOPLE[t % 2], args.frames, seed=t, blur_every=3))
        for t in range(args.tracks)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        raw = raw_pipeline(args.models, tracks)
        print(f"raw pipeline: {raw['faces_per_s']:.1f} faces/s", flush=True)
        gateway = through_gateway(args.models, Path(tmp), tracks)
    result = {
        "tracks": args.tracks,
        "frames_per_track": args.frames,
        "cpus": os.cpu_count(),
        "raw": raw,
        "gateway": gateway,
        "ratio_gateway_vs_raw": gateway["first"]["faces_per_s"] / raw["faces_per_s"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def raw_pipeline(models: Path, tracks: list) -> dict:
    """The same frames through the gateway's pipeline objects in-process (the baseline)."""
    from serving.config import load_config
    from serving.errors import InvalidInput
    from serving.loader import face_pipeline, image_embedder
    from serving.models.repository import ModelRepository
    from serving.vision.decode import decode_encoded

    config = load_config(overrides={"paths.models": str(models)})
    repo = ModelRepository(models)
    embedder = image_embedder(config, repo, batching=False)
    pipeline, _ = face_pipeline(config, repo, embedder)

    def one(data: bytes):
        try:
            return pipeline.main_face(decode_encoded(data)).chip
        except InvalidInput:  # no face in the frame
            return None

    started, faces = time.perf_counter(), 0
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for _, _, data in tracks:
            chips = [c for c in pool.map(one, data) if c is not None]
            faces += len(chips)
            embedder.embed_many(chips[:5])  # the gateway embeds each track's best 5 frames
    elapsed = time.perf_counter() - started
    embedder.backend.close()
    return {"faces": faces, "seconds": elapsed, "faces_per_s": faces / elapsed}


def through_gateway(models: Path, tmp: Path, tracks: list) -> dict:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toitsu",
            "serve",
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--models",
            str(models),
            "--var",
            str(tmp / "var"),
            "--set",
            "speaker.enabled=false",
            "--set",
            "sound.enabled=false",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=open(tmp / "server.log", "wb"),
    )
    assert proc.stdout is not None  # stdout=PIPE
    try:
        target = proc.stdout.readline().decode().strip().rsplit(" ", 1)[-1]
        subprocess.run(
            [sys.executable, "-m", "toitsu", "health", "--wait", "60", "--target", target],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        stub = face_pb2_grpc.FaceServiceStub(grpc.insecure_channel(target))
        first = stream(stub, tracks, proc.pid)
        people_before = people(stub)
        again = stream(stub, tracks, proc.pid)
        unchanged = people(stub) == people_before and again["replaced"] == len(tracks)
        return {
            "first": first,
            "again": again,
            "people": len(people_before),
            "resend_leaves_gallery_unchanged": unchanged,
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def stream(stub, tracks: list, pid: int) -> dict:
    rss: list[tuple[int, float]] = []  # (results so far, RSS MiB)
    done = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            rss.append((done[0], _rss_mib(pid)))

    def requests():
        first = True
        for track_id, person, data in tracks:
            for start in range(0, len(data), 10):
                request = face_pb2.EnrollTracksRequest(
                    track_id=track_id,
                    person_id=person if start == 0 else "",
                    frames=[face_pb2.Frame(image=face_pb2.Image(encoded=f)) for f in data[start : start + 10]],
                    end=start + 10 >= len(data),
                )
                if first:
                    request.options.progress_every = 1000
                    first = False
                yield request

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started, faces, accepted, replaced = time.perf_counter(), 0, 0, 0
    for reply in stub.EnrollTracks(requests(), timeout=3600):
        if reply.WhichOneof("event") == "result":
            done[0] += 1
            faces += reply.result.frames_with_face
            accepted += reply.result.accepted
            replaced += reply.result.replaced
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()

    def at(fraction: float) -> float:
        wanted = max(1, int(fraction * len(tracks)))
        return next((m for n, m in rss if n >= wanted), rss[-1][1] if rss else float("nan"))

    return {
        "seconds": elapsed,
        "faces": faces,
        "faces_per_s": faces / elapsed,
        "accepted": accepted,
        "replaced": replaced,
        "rss_mib": {
            "after_10_tracks": at(10 / len(tracks)),
            "middle": at(0.5),
            "end": at(1.0),
            "max": max(m for _, m in rss) if rss else None,
        },
    }


def people(stub) -> dict[str, int]:
    return {p.id: p.num_samples for p in stub.List(face_pb2.ListFacesRequest(page_size=1000), timeout=30).people}


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    main()

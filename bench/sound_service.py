"""SoundService end to end through gRPC (issue 4): enroll 5 classes with 3 clips each, classify
held-out clips of those classes and clips of the 7 classes never enrolled.

Reports top-1 accuracy on the enrolled classes (closed set, and with the open-set decision:
right class *and* accepted), and the rate of correct "unknown" on never-enrolled classes, at the
card's calibrated FARs. Clips come from the generated everyday-sound corpus with a seed the
calibration dev set does not use.

    .venv/bin/python bench/sound_service.py --models models      # JSON in bench/results/sound_service.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from protos.v1 import common_pb2, sound_pb2, sound_pb2_grpc  # noqa: E402
from serving.config import load_config  # noqa: E402
from serving.server import Gateway  # noqa: E402
from training.data.manifest import read_manifest  # noqa: E402
from training.data.sound_corpus import build_sound_corpus  # noqa: E402

ENROLLED = ("siren", "hum", "bird", "door_knock", "clock_tick")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--clips", type=int, default=13, help="clips per class (3 enroll, the rest probes)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "sound_service.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = build_sound_corpus(Path(tmp) / "sounds", args.clips, 4.0, 16000, 1, seed=31, progress=False)
        clips: dict[str, list[bytes]] = {}
        for r in sorted(read_manifest(manifest), key=lambda r: str(r.path)):
            clips.setdefault(str(r.identity), []).append(r.path.read_bytes())
        gateway = Gateway(
            load_config(
                overrides={
                    "server.port": "0",
                    "server.metrics_port": "0",
                    "speaker.enabled": "false",
                    "face.enabled": "false",
                    "paths.models": str(args.models),
                    "paths.var": str(Path(tmp) / "var"),
                }
            )
        )
        port = gateway.start(background_load=False)
        try:
            result = run(sound_pb2_grpc.SoundServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}")), clips)
        finally:
            gateway.stop(grace=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def run(stub, clips: dict[str, list[bytes]]) -> dict:
    audio = lambda data: common_pb2.Audio(encoded=data)  # noqa: E731
    for label in ENROLLED:
        stub.EnrollClass(
            sound_pb2.EnrollClassRequest(label=label, audio=[audio(c) for c in clips[label][:3]]), timeout=60
        )
    fars = (0.01, 0.001)
    probes = [(label, c) for label in ENROLLED for c in clips[label][3:]]
    strangers = [(label, c) for label in clips if label not in ENROLLED for c in clips[label]]
    out: dict[str, Any] = {"enrolled": list(ENROLLED), "probes": len(probes), "stranger_clips": len(strangers)}
    out["by_far"] = {}
    for far in fars:
        replies = [
            stub.Classify(sound_pb2.ClassifySoundRequest(audio=audio(c), target_far=far), timeout=60) for _, c in probes
        ]
        top1 = np.mean([r.candidates[0].id == label for (label, _), r in zip(probes, replies)])
        open_set = np.mean([r.known and r.label == label for (label, _), r in zip(probes, replies)])
        unknown = np.mean(
            [
                not stub.Classify(sound_pb2.ClassifySoundRequest(audio=audio(c), target_far=far), timeout=60).known
                for _, c in strangers
            ]
        )
        out["by_far"][str(far)] = {
            "threshold": replies[0].threshold,
            "top1_accuracy_closed_set": float(top1),
            "accuracy_open_set": float(open_set),
            "correct_unknown_rate": float(unknown),
        }
    return out


if __name__ == "__main__":
    main()

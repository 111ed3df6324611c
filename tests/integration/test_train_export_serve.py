"""Issue 6's loop: train a tiny model for a few steps → `toitsu export` → the gateway loads the new
version → enroll and verify through gRPC."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import grpc
import pytest

from protos.v1 import common_pb2, speaker_pb2, speaker_pb2_grpc
from serving.config import load_config
from serving.server import Gateway
from tests.conftest import REPO
from tests.serving.services.test_model_service import tiny_recipe

pytestmark = pytest.mark.integration


def _toitsu(*argv: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "toitsu", *argv], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"toitsu {' '.join(argv)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_train_export_and_serve_a_new_model(models_dir, voices, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(tiny_recipe(tmp_path / "corpus", base=str(REPO / "recipes/speaker/synthetic-base.yaml")))
    run_dir = tmp_path / "run"
    _toitsu("train", str(recipe), "--run-dir", str(run_dir))
    run = json.loads((run_dir / "run.json").read_text())
    assert run["step"] == 3 and 0 <= run["eval"]["eer"] <= 1 and (run_dir / "eval" / "det.png").exists()

    models = tmp_path / "models"
    shutil.copytree(models_dir / "silero-vad", models / "silero-vad")
    _toitsu("export", str(run_dir), "--models", str(models), "--work", str(REPO / "build"))
    card = json.loads((models / "tiny-ecapa" / "1" / "card.json").read_text())
    assert card["provenance"]["config_hash"] == run["recipe_hash"] and card["provenance"]["step"] == 3
    assert card["provenance"]["data_manifest_sha256"] == run["data_manifest_sha256"]
    assert all(c["max_abs_diff"] <= 1e-4 for c in card["parity"]["checks"])
    assert {t["far"] for t in card["calibration"]["thresholds"]} >= {0.01, 0.001}

    gateway = Gateway(
        load_config(
            overrides={
                "server.port": "0",
                "server.metrics_port": "0",
                "paths.models": str(models),
                "paths.var": str(tmp_path / "var"),
                "speaker.model": "tiny-ecapa",
                "sound.enabled": "false",
                "face.enabled": "false",
            }
        )
    )
    port = gateway.start(background_load=False)
    try:
        assert gateway.wait_loaded(30)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = speaker_pb2_grpc.SpeakerServiceStub(channel)
            enrolled = stub.Enroll(
                speaker_pb2.EnrollSpeakerRequest(
                    speaker_id="ann", audio=[common_pb2.Audio(encoded=voices.clip(0, k)) for k in (0, 1)]
                ),
                timeout=60,
            )
            assert enrolled.model.name == "tiny-ecapa" and enrolled.model.version == 1
            verdict = stub.Verify(
                speaker_pb2.VerifySpeakerRequest(speaker_id="ann", audio=common_pb2.Audio(encoded=voices.clip(0, 2))),
                timeout=60,
            )
            # scoring = "auto": the export shipped a cohort, so the decision is AS-norm's, on its own table
            assert verdict.scoring == "as-norm" and card.get("cohort")
            thresholds = {t["far"]: t["threshold"] for t in card["calibration_as_norm"]["thresholds"]}
            assert verdict.decision.threshold == pytest.approx(thresholds[0.01], abs=1e-6)
            assert verdict.decision.accepted == (verdict.decision.score >= verdict.decision.threshold)
            assert (
                len(
                    stub.Embed(
                        speaker_pb2.EmbedSpeakerRequest(audio=common_pb2.Audio(encoded=voices.clip(1, 0))), timeout=60
                    ).embedding.values
                )
                == 32
            )
    finally:
        gateway.stop(grace=1)


def test_train_export_and_serve_a_face_model(models_dir, tmp_path):
    """The same loop for faces: a tiny graph-grouping run → `toitsu export` (calibrated through
    the gateway's face pipeline) → the gateway serves it as its face model."""
    from tests.training.recipes.test_face_recipe import TINY as FACE_TINY
    from training.data.face_scenes import encode, frames, photo

    recipe = tmp_path / "tiny-face.yaml"
    recipe.write_text(json.dumps({**FACE_TINY, "trainer": {**FACE_TINY["trainer"], "steps": 3}}))
    run_dir = tmp_path / "face-run"
    _toitsu("train", str(recipe), "--run-dir", str(run_dir))
    models = tmp_path / "models"
    for name in ("mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet", "dlib-sp5"):
        shutil.copytree(models_dir / name, models / name)
    _toitsu("export", str(run_dir), "--models", str(models), "--work", str(REPO / "build"))
    card = json.loads((models / "tiny-face" / "1" / "card.json").read_text())
    assert card["modality"] == "face" and {t["far"] for t in card["calibration"]["thresholds"]} >= {0.01, 0.001}
    assert card["calibration"]["n_nontarget"] >= 10_000

    from protos.v1 import face_pb2, face_pb2_grpc

    gateway = Gateway(
        load_config(
            overrides={
                "server.port": "0",
                "server.metrics_port": "0",
                "paths.models": str(models),
                "paths.var": str(tmp_path / "var"),
                "face.model": "tiny-face",
                "speaker.enabled": "false",
                "sound.enabled": "false",
            }
        )
    )
    port = gateway.start(background_load=False)
    try:
        assert gateway.wait_loaded(30)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = face_pb2_grpc.FaceServiceStub(channel)
            enrolled = stub.Enroll(
                face_pb2.EnrollFaceRequest(
                    person_id="eileen", images=[face_pb2.Image(encoded=encode(photo("astronaut")))]
                ),
                timeout=60,
            )
            assert enrolled.model.name == "tiny-face" and enrolled.model.version == 1
            verdict = stub.Verify(
                face_pb2.VerifyFaceRequest(
                    person_id="eileen", image=face_pb2.Image(encoded=frames("astronaut", 1, seed=4)[0])
                ),
                timeout=60,
            )
            assert verdict.model.name == "tiny-face" and -1 <= verdict.decision.score <= 1
            assert (
                len(
                    stub.Embed(
                        face_pb2.EmbedFacesRequest(image=face_pb2.Image(encoded=encode(photo("astronaut")))), timeout=60
                    )
                    .faces[0]
                    .embedding.values
                )
                == 16
            )
    finally:
        gateway.stop(grace=1)

"""[speaker] scoring = "as-norm" through a real gateway: a tiny cohort written in the test, the
AS-norm thresholds used and reported, and a version without a cohort refused at load."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import grpc
import numpy as np
import pytest

from contracts.card import CARD_FILE, load_card, write_card
from contracts.card_sections import FarThreshold
from export.speaker_dev import build_cohort
from protos.v1 import speaker_pb2, speaker_pb2_grpc
from serving.config import load_config
from serving.server import Gateway
from tests.conftest import SPEAKER_DIM, SPEAKER_MODEL, VAD_MODEL
from tests.serving.services.conftest import audio

TOP_N, AS_NORM_THRESHOLD = 3, -0.625  # a threshold no cosine calibration has: it shows which was used


def _repo(models_dir: Path, root: Path, cohort: np.ndarray | None) -> Path:
    """The served models linked into ``root``; the speaker card gets ``cohort`` (or nothing)."""
    for name in (SPEAKER_MODEL, VAD_MODEL):
        (root / name / "1").mkdir(parents=True)
        for item in (models_dir / name / "1").iterdir():
            if item.name not in (CARD_FILE, "cohort.npy"):
                os.symlink(item, root / name / "1" / item.name)
        raw = json.loads((models_dir / name / "1" / CARD_FILE).read_text())
        raw.pop("cohort", None), raw.pop("calibration_as_norm", None)
        (root / name / "1" / CARD_FILE).write_text(json.dumps(raw))
    folder = root / SPEAKER_MODEL / "1"
    if cohort is not None:
        card = load_card(folder)
        files = [Path(f"/cohort/spk{k}/u.wav") for k in range(len(cohort))]
        card.cohort = build_cohort(lambda _: cohort, files, folder, TOP_N)  # type: ignore[union-attr]
        calibration = card.calibration_section
        assert calibration is not None
        thresholds = [
            FarThreshold(far=t.far, threshold=AS_NORM_THRESHOLD - i, frr=0.1)
            for i, t in enumerate(calibration.thresholds)
        ]
        card.calibration_as_norm = calibration.model_copy(update={"score": "as-norm", "thresholds": thresholds})  # type: ignore[union-attr]
        write_card(folder, card)
    return root


def _gateway(root: Path, tmp_path: Path, scoring: str) -> Gateway:
    config = load_config(
        overrides={
            "server.port": "0",
            "server.metrics_port": "0",
            "sound.enabled": "false",
            "face.enabled": "false",
            "paths.models": str(root),
            "paths.var": str(tmp_path / "var"),
            "speaker.scoring": scoring,
        }
    )
    gw = Gateway(config)
    gw.start(background_load=False)
    return gw


def _direct_as_norm(raw: float, e: np.ndarray, t: np.ndarray, cohort: np.ndarray) -> float:
    top_e = sorted((float(e @ c) for c in cohort), reverse=True)[:TOP_N]
    top_t = sorted((float(t @ c) for c in cohort), reverse=True)[:TOP_N]
    return 0.5 * (
        (raw - statistics.fmean(top_e)) / statistics.pstdev(top_e)
        + (raw - statistics.fmean(top_t)) / statistics.pstdev(top_t)
    )


def test_verify_and_identify_with_as_norm_report_it_and_use_its_thresholds(models_dir, voices, tmp_path):
    rng = np.random.default_rng(11)
    cohort = rng.normal(size=(6, SPEAKER_DIM)).astype(np.float32)
    cohort /= np.linalg.norm(cohort, axis=1, keepdims=True)
    gw = _gateway(_repo(models_dir, tmp_path / "models", cohort), tmp_path, "as-norm")
    try:
        assert gw.wait_loaded(60)
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            stub = speaker_pb2_grpc.SpeakerServiceStub(ch)
            clips = [voices.clip(0, k) for k in (0, 1)]
            stub.Enroll(speaker_pb2.EnrollSpeakerRequest(speaker_id="a", audio=[audio(c) for c in clips]), timeout=60)
            stub.Enroll(speaker_pb2.EnrollSpeakerRequest(speaker_id="b", audio=[audio(voices.clip(1, 0))]), timeout=60)
            embed = [
                np.array(stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=audio(c)), timeout=30).embedding.values)
                for c in clips
            ]
            template = np.mean(embed, axis=0)
            template /= np.linalg.norm(template)
            probe = np.array(
                stub.Embed(speaker_pb2.EmbedSpeakerRequest(audio=audio(voices.clip(0, 2))), timeout=30).embedding.values
            )
            reply = stub.Verify(
                speaker_pb2.VerifySpeakerRequest(speaker_id="a", audio=audio(voices.clip(0, 2))), timeout=30
            )
            found = stub.Identify(
                speaker_pb2.IdentifySpeakerRequest(audio=audio(voices.clip(0, 2)), top_k=2), timeout=30
            )
    finally:
        gw.stop(grace=1)
    assert reply.scoring == "as-norm" and reply.decision.threshold == pytest.approx(AS_NORM_THRESHOLD)
    want = _direct_as_norm(float(template @ probe), template, probe, cohort)
    assert reply.decision.score == pytest.approx(want, abs=2e-3)
    assert reply.decision.accepted == (want >= AS_NORM_THRESHOLD)
    assert found.scoring == "as-norm" and found.threshold == pytest.approx(AS_NORM_THRESHOLD)
    assert found.candidates[0].id == "a" and found.candidates[0].score == pytest.approx(want, abs=2e-3)


def test_as_norm_without_a_cohort_is_refused_at_load(models_dir, tmp_path):
    gw = _gateway(_repo(models_dir, tmp_path / "models", None), tmp_path, "as-norm")
    try:
        assert not gw.wait_loaded(30)
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            with pytest.raises(grpc.RpcError) as err:
                speaker_pb2_grpc.SpeakerServiceStub(ch).List(speaker_pb2.ListSpeakersRequest(), timeout=5)
    finally:
        gw.stop(grace=0)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "as-norm" in err.value.details() and "cohort" in err.value.details()


def test_an_unknown_scoring_is_a_config_error():
    from serving.config import ConfigError

    with pytest.raises(ConfigError, match="scoring"):
        load_config(overrides={"speaker.scoring": "znorm"})


@pytest.mark.parametrize("with_cohort", [True, False])
def test_auto_scores_with_as_norm_exactly_where_the_version_has_a_cohort(models_dir, voices, tmp_path, with_cohort):
    """The default: a version with a cohort is AS-normalised, an older one without is served by
    cosine (not taken out of service), and the reply says which."""
    from serving.config import SpeakerSection

    assert SpeakerSection().scoring == "auto"
    cohort = np.eye(6, SPEAKER_DIM, dtype=np.float32) if with_cohort else None
    gw = _gateway(_repo(models_dir, tmp_path / "models", cohort), tmp_path, "auto")
    try:
        assert gw.wait_loaded(60)
        with grpc.insecure_channel(f"127.0.0.1:{gw.port}") as ch:
            stub = speaker_pb2_grpc.SpeakerServiceStub(ch)
            stub.Enroll(speaker_pb2.EnrollSpeakerRequest(speaker_id="a", audio=[audio(voices.clip(0, 0))]), timeout=60)
            reply = stub.Verify(
                speaker_pb2.VerifySpeakerRequest(speaker_id="a", audio=audio(voices.clip(0, 2))), timeout=30
            )
    finally:
        gw.stop(grace=1)
    assert reply.scoring == ("as-norm" if with_cohort else "cosine")
    assert (reply.decision.threshold == pytest.approx(AS_NORM_THRESHOLD)) == with_cohort

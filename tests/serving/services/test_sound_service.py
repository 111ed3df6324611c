"""SoundService in-process: enroll classes from examples, classify held-out clips with the open-set
"unknown", class management, and bad input (the default pack's formula-pretrained sound model)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from protos.v1 import common_pb2, sound_pb2, sound_pb2_grpc
from serving.config import load_config
from serving.server import Gateway
from tests.conftest import wav_bytes
from training.data.manifest import read_manifest

ENROLLED = ("siren", "hum", "bird", "door_knock", "clock_tick")


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> dict[str, list[bytes]]:
    """6 clips of 3 s per class of the generated everyday-sound corpus, as WAV bytes."""
    from training.data.sound_corpus import build_sound_corpus

    out = tmp_path_factory.mktemp("sounds")
    manifest = build_sound_corpus(
        out, clips_per_class=6, clip_seconds=3.0, sample_rate=16000, n_folds=2, seed=5, progress=False
    )
    clips: dict[str, list[bytes]] = {}
    for record in sorted(read_manifest(manifest), key=lambda r: str(r.path)):
        clips.setdefault(str(record.identity), []).append(record.path.read_bytes())
    return clips


@pytest.fixture
def stub(models_dir, tmp_path):
    config = load_config(
        overrides={
            "server.port": "0",
            "server.metrics_port": "0",
            "speaker.enabled": "false",
            "face.enabled": "false",
            "paths.models": str(models_dir),
            "paths.var": str(tmp_path / "var"),
        }
    )
    gateway = Gateway(config)
    port = gateway.start(background_load=False)
    assert gateway.wait_loaded(60)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield sound_pb2_grpc.SoundServiceStub(channel)
    gateway.stop(grace=1)


def _audio(data: bytes) -> common_pb2.Audio:
    return common_pb2.Audio(encoded=data)


def test_few_shot_classes_and_open_set_unknown(stub, sounds):
    for label in ENROLLED:
        reply = stub.EnrollClass(
            sound_pb2.EnrollClassRequest(label=label, audio=[_audio(c) for c in sounds[label][:3]]), timeout=60
        )
        assert reply.created and reply.num_samples == 3 and reply.model.name == "toitsu-sound-formula"
    correct = total = 0
    for label in ENROLLED:
        for clip in sounds[label][3:]:
            reply = stub.Classify(sound_pb2.ClassifySoundRequest(audio=_audio(clip), top_k=5), timeout=60)
            assert reply.classes == 5 and len(reply.candidates) == 5
            correct += reply.candidates[0].id == label
            total += 1
    assert correct / total > 0.5  # chance is 0.2
    strangers = [c for label, clips in sounds.items() if label not in ENROLLED for c in clips[:2]]
    unknown = [not stub.Classify(sound_pb2.ClassifySoundRequest(audio=_audio(c)), timeout=60).known for c in strangers]
    assert 0 <= np.mean(unknown) <= 1  # reported by bench/sound_service.py; here: it answers for every clip


def test_class_management_and_errors(stub, sounds):
    stub.EnrollClass(sound_pb2.EnrollClassRequest(label="siren", audio=[_audio(sounds["siren"][0])]), timeout=60)
    with pytest.raises(grpc.RpcError) as err:
        stub.EnrollClass(sound_pb2.EnrollClassRequest(label="siren", audio=[_audio(sounds["siren"][1])]), timeout=60)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    appended = stub.EnrollClass(
        sound_pb2.EnrollClassRequest(label="siren", audio=[_audio(sounds["siren"][1])], mode=common_pb2.APPEND),
        timeout=60,
    )
    assert appended.num_samples == 2
    assert [c.id for c in stub.ListClasses(sound_pb2.ListClassesRequest(), timeout=10).classes] == ["siren"]
    stub.DeleteClass(sound_pb2.DeleteClassRequest(label="siren"), timeout=10)
    for call, code in (
        (lambda: stub.DeleteClass(sound_pb2.DeleteClassRequest(label="siren"), timeout=10), grpc.StatusCode.NOT_FOUND),
        (
            lambda: stub.Classify(
                sound_pb2.ClassifySoundRequest(audio=_audio(wav_bytes(np.zeros(16000, np.float32)))), timeout=10
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda: stub.Classify(
                sound_pb2.ClassifySoundRequest(
                    audio=_audio(wav_bytes(np.random.default_rng(0).standard_normal(1600).astype(np.float32) * 0.1))
                ),
                timeout=10,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda: stub.Embed(sound_pb2.EmbedSoundRequest(audio=_audio(b"junk")), timeout=10),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            lambda: stub.Classify(
                sound_pb2.ClassifySoundRequest(audio=_audio(sounds["hum"][0]), target_far=0.2), timeout=10
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == code, err.value.details()
    embedded = stub.Embed(sound_pb2.EmbedSoundRequest(audio=_audio(sounds["hum"][0])), timeout=10)
    assert abs(np.linalg.norm(embedded.embedding.values) - 1) < 1e-4 and embedded.audio_info.input_seconds == 3.0

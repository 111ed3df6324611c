"""ModelService.ListModels carries a speaker card's red-team summary, and `toitsu models list`
through the gateway prints it as `--local` does; a version without one carries none."""

from __future__ import annotations

import json
import shutil

import grpc
import pytest

from contracts.card import SpeakerCard, load_card, write_card
from contracts.card_sections import Robustness, RobustnessPoint
from protos.v1 import model_pb2, model_pb2_grpc
from tests.conftest import SPEAKER_MODEL, VAD_MODEL
from tests.serving.services.test_model_service import start_gateway
from toitsu.cli import main

SECTION = Robustness(
    attack="lbfgsb",
    threshold=0.75,
    far=0.01,
    kappa=0.05,
    dev_trials="dev-speech",
    points=[
        RobustnessPoint(eps=0.001, budget=50, trials=4, successes=1, success_rate=0.25, median_snr_db=31.5),
        RobustnessPoint(eps=0.002, budget=50, trials=4, successes=0, success_rate=0.0),
    ],
    built="4 non-target trials",
)


@pytest.fixture
def target(models_dir, tmp_path):
    models = tmp_path / "models"
    for name in (SPEAKER_MODEL, VAD_MODEL):
        shutil.copytree(models_dir / name, models / name)
    shutil.copytree(models / SPEAKER_MODEL / "1", models / SPEAKER_MODEL / "2")
    card = load_card(models / SPEAKER_MODEL / "2")
    assert isinstance(card, SpeakerCard) and card.robustness is None
    write_card(models / SPEAKER_MODEL / "2", card.model_copy(update={"version": 2, "robustness": SECTION}))
    gateway = start_gateway(models, tmp_path)
    yield f"127.0.0.1:{gateway.port}"
    gateway.stop(grace=1)


def test_list_models_carries_the_robustness_summary(target, capsys):
    with grpc.insecure_channel(target) as channel:
        reply = model_pb2_grpc.ModelServiceStub(channel).ListModels(model_pb2.ListModelsRequest(), timeout=10)
    listed = {(m.model.name, m.model.version): m for m in reply.models}
    assert not listed[(SPEAKER_MODEL, 1)].HasField("robustness")
    section = listed[(SPEAKER_MODEL, 2)].robustness
    assert (section.attack, section.threshold, section.far, section.kappa) == ("lbfgsb", 0.75, 0.01, 0.05)
    assert section.dev_trials == "dev-speech" and section.built == "4 non-target trials"
    first, second = section.points
    assert (first.eps, first.budget, first.trials, first.successes, first.success_rate) == (0.001, 50, 4, 1, 0.25)
    assert first.HasField("median_snr_db") and first.median_snr_db == 31.5
    assert not second.HasField("median_snr_db") and second.successes == 0

    capsys.readouterr()
    assert main(["models", "list", "--target", target, "--json"]) == 0
    by_version = {int(m["model"]["version"]): m for m in json.loads(capsys.readouterr().out)["models"]}
    assert "robustness" not in by_version[1] and by_version[2]["robustness"]["points"][1]["success_rate"] == 0
    assert main(["models", "list", "--target", target]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if SPEAKER_MODEL in line}
    assert "attack@50 ε0.001:25%/4 ε0.002:0%/4" in lines["v2"] and "attack@" not in lines["v1"]

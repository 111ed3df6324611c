"""The red team on the real pack (GE2E, the fast one): bad input, the twin against the served ONNX
graph, the report folder, the card's summary. CPU-small: one to three 1-second probes, tiny budgets."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from contracts.card import SpeakerCard, load_card, write_card
from contracts.waveforms import waveform_batch
from export.redteam import impostor_trials, load_twin
from export.redteam_run import with_robustness
from tests.conftest import GE2E_MODEL, REPO, VAD_MODEL
from toitsu.cli import main
from training.redteam import quasi_newton
from training.redteam.oracle import Oracle


@pytest.fixture(scope="module")
def dev_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.data.speech_corpus import build_dev_trials

    out = tmp_path_factory.mktemp("redteam") / "dev"
    build_dev_trials(out, n_speakers=3, enroll_per_speaker=1, test_per_speaker=1, seed=5, workers=2, progress=False)
    return out


def _card_threshold(models_dir: Path, name: str, far: float = 0.01) -> float:
    raw = json.loads((models_dir / name / "1" / "card.json").read_text())
    return next(t["threshold"] for t in raw["calibration"]["thresholds"] if abs(t["far"] - far) < 1e-12)


def _copy_version(models_dir: Path, dest: Path, name: str, new_name: str | None = None) -> Path:
    target = dest / (new_name or name) / "1"
    shutil.copytree(models_dir / name / "1", target)
    if new_name:
        raw = json.loads((target / "card.json").read_text())
        raw["name"] = new_name
        (target / "card.json").write_text(json.dumps(raw))
    return target


def _redteam(*args: str) -> list[str]:
    return ["redteam", "speaker", "--no-progress", *args]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", VAD_MODEL], "is a vad model"),
        (["--model", "no-such-model"], "no model 'no-such-model'"),
        (["--model", f"{GE2E_MODEL}:9"], "has no version 9"),
        (["--model", f"{GE2E_MODEL}:x"], "NAME or NAME:VERSION"),
        (["--model", GE2E_MODEL, "--eps", "0.5"], "ε 0.5 is out of range"),
        (["--model", GE2E_MODEL, "--eps", "0"], "ε 0 is out of range"),
        (["--model", GE2E_MODEL, "--budget", "0"], "budget 0 is out of range"),
        (["--model", GE2E_MODEL, "--budget", "5000"], "budget 5000 is out of range"),
        (["--model", GE2E_MODEL, "--attacks", "lbfgsb,magic"], "unknown attack(s) magic"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(models_dir: Path, tmp_path: Path, extra, message):
    out = tmp_path / "report"
    with pytest.raises(SystemExit) as exc:
        main(_redteam("--models", str(models_dir), "--out", str(out), *extra))
    assert str(exc.value.code).startswith("error: ") and message in str(exc.value.code)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_speaker_model_without_a_torch_twin_or_with_other_weights_is_refused(models_dir: Path, tmp_path: Path):
    repo = tmp_path / "models"
    _copy_version(models_dir, repo, GE2E_MODEL, "someone-elses-speaker")
    with pytest.raises(SystemExit) as exc:
        main(_redteam("--models", str(repo), "--model", "someone-elses-speaker", "--out", str(tmp_path / "r")))
    assert "has no torch twin" in str(exc.value.code)
    version = _copy_version(models_dir, repo, GE2E_MODEL)
    raw = json.loads((version / "card.json").read_text())
    raw["provenance"]["source_sha256"] = "0" * 64  # the card claims other weights than the twin's
    (version / "card.json").write_text(json.dumps(raw))
    with pytest.raises(SystemExit) as exc:
        main(_redteam("--models", str(repo), "--model", GE2E_MODEL, "--out", str(tmp_path / "r")))
    assert "are not the version's" in str(exc.value.code)
    assert not (tmp_path / "r").exists()


def test_the_cli_process_exits_non_zero_on_bad_input(models_dir: Path, tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "toitsu", *_redteam("--models", str(models_dir), "--model", GE2E_MODEL, "--eps", "2")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 1 and "ε 2 is out of range" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_attack_on_the_twin_fools_the_served_onnx_graph(models_dir: Path, dev_folder: Path):
    """The twin is what is served: a δ found on it moves the ONNX graph's score above the card's τ."""
    import onnxruntime as ort

    from training.data.speech_corpus import load_dev_trials

    twin = load_twin(models_dir, GE2E_MODEL)
    assert twin.tau == pytest.approx(_card_threshold(models_dir, GE2E_MODEL))
    trial = impostor_trials(twin.encoder, load_dev_trials(dev_folder), 1, seed=0, max_seconds=1.0)[0]
    result = quasi_newton.lbfgsb(Oracle(twin.encoder, trial, twin.tau, 0.05, budget=30), eps=0.02)
    session = ort.InferenceSession(str(models_dir / GE2E_MODEL / "1" / "model.onnx"))

    def served(x: torch.Tensor) -> float:
        e = session.run(None, waveform_batch([x.numpy()]))[0][0]
        t = trial.target.numpy()
        return float(e @ t / (np.linalg.norm(e) * np.linalg.norm(t)))

    assert served(trial.waveform) < twin.tau  # an impostor, rejected before the attack
    assert result.success and result.delta.abs().max() <= 0.02 + 1e-7
    assert served(trial.waveform + result.delta) >= twin.tau - 1e-3  # parity is 1e-4; τ margin κ = 0.05


def test_report_folder_json_and_plots(models_dir: Path, dev_folder: Path, tmp_path: Path):
    out = tmp_path / "report"
    args = ["--models", str(models_dir), "--model", f"{GE2E_MODEL}:1", "--trials", str(dev_folder / "trials.txt")]
    args += ["--eps", "0.0005,0.02", "--budget", "3,15", "--attacks", "lbfgsb,fgsm", "--count", "2"]
    args += ["--dev-count", "0", "--max-seconds", "1", "--out", str(out)]
    assert main(_redteam(*args)) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["threshold"] == pytest.approx(_card_threshold(models_dir, GE2E_MODEL))
    assert report["trials"]["test"] == 2 and report["trials"]["dev_set"].startswith("synthetic-speech-dev-3spk")
    rows = {(r["attack"], r["eps"], r["budget"]): r for r in report["results"]}
    assert set(rows) == {(a, e, b) for a in ("lbfgsb", "fgsm") for e in (0.0005, 0.02) for b in (3, 15)}
    for eps in (0.0005, 0.02):
        assert rows["lbfgsb", eps, 3]["successes"] <= rows["lbfgsb", eps, 15]["successes"]  # more budget
        assert rows["fgsm", eps, 3]["successes"] == rows["fgsm", eps, 15]["successes"]  # one step either way
    for b in (3, 15):
        assert rows["lbfgsb", 0.0005, b]["successes"] <= rows["lbfgsb", 0.02, b]["successes"]  # larger box
    for r in rows.values():
        assert r["success_rate"] == r["successes"] / 2 and len(r["snr_db"]) <= r["successes"]
    for png in ("success-vs-eps.png", "success-vs-evaluations.png", "snr.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_hook_puts_the_summary_in_the_card_and_models_list_shows_it(
    models_dir: Path, dev_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from export.importers.resemblyzer_ge2e import load_pretrained
    from training.data.speech_corpus import load_dev_trials

    repo = tmp_path / "models"
    version = _copy_version(models_dir, repo, GE2E_MODEL)
    old = load_card(version)
    assert isinstance(old, SpeakerCard) and old.robustness is None  # a card from before reads as it was
    hook = with_robustness(lambda staged, card: old.calibration, load_pretrained(), load_dev_trials(dev_folder))
    card = old.model_copy(deep=True)
    assert hook(version, card) == old.calibration
    section = card.robustness
    assert section is not None and section.attack == "lbfgsb" and section.far == 0.01
    assert section.threshold == pytest.approx(_card_threshold(models_dir, GE2E_MODEL))
    assert [(p.eps, p.budget) for p in section.points] == [(0.001, 50), (0.002, 50)]
    assert all(p.trials == 3 and p.success_rate == p.successes / 3 for p in section.points)  # 3 dev speakers
    assert section.points[0].successes <= section.points[1].successes
    write_card(version, card)
    assert load_card(version).robustness == section
    capsys.readouterr()
    assert main(["models", "list", "--local", "--models", str(repo), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)[0]["robustness"]
    assert [p["successes"] for p in listed["points"]] == [p.successes for p in section.points]
    assert main(["models", "list", "--local", "--models", str(repo)]) == 0
    assert f"attack@50 ε0.001:{section.points[0].success_rate:.0%}/3" in capsys.readouterr().out

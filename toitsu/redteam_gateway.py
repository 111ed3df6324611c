"""Black-box red team through a running gateway (issue 14 item 3): only SpeakerService.Verify.

Each trial is an enrolled speaker id and an impostor's recording. Every query is one Verify RPC
on ``x + δ`` sent as raw float32 PCM (no 16-bit rounding of δ); its score and decision are all
the attack sees, and success is the gateway's own decision (its threshold at ``--far``, its
scoring: cosine or AS-norm). The optimiser is ``training.redteam.spsa`` (numpy); this module needs
grpc, numpy and soundfile only: no torch, no model files.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from protos.v1 import common_pb2, speaker_pb2, speaker_pb2_grpc
from training.redteam.spsa import QueryOracle, QueryRecord, SpsaSettings, spsa_lbfgs

RATE = 16000


class GatewayError(Exception):
    """The gateway cannot be attacked as asked (unreachable, refused, another model): exit 1."""


@dataclass(frozen=True)
class GatewayTrial:
    speaker_id: str
    probe: Path
    waveform: np.ndarray  # float32 [T], 16 kHz mono, in [−1, 1]


def read_probe(path: Path, max_seconds: float) -> np.ndarray:
    """A 16 kHz recording as mono float32, cut to ``max_seconds``; ValueError if it is not one."""
    import soundfile as sf

    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError) as exc:  # soundfile raises LibsndfileError (a RuntimeError)
        raise ValueError(f"{path}: cannot read it as audio ({exc})") from None
    if rate != RATE:
        raise ValueError(f"{path}: {rate} Hz; the black-box attack sends 16 kHz")
    x = np.ascontiguousarray(samples.mean(axis=1)[: int(max_seconds * RATE)])
    if x.size == 0:
        raise ValueError(f"{path}: no samples")
    return np.clip(x, -1.0, 1.0)


def _pcm(w: np.ndarray) -> common_pb2.Audio:
    return common_pb2.Audio(
        pcm=common_pb2.RawPcm(data=w.astype("<f4").tobytes(), sample_rate=RATE, channels=1, format=common_pb2.PCM_F32LE)
    )


class VerifyScorer:
    """``waveform → (score, accepted)`` by one Verify RPC; checks every reply's model against the asked one."""

    def __init__(
        self, channel: grpc.Channel, speaker_id: str, far: float, model: str, version: int | None, timeout: float
    ) -> None:
        self.stub = speaker_pb2_grpc.SpeakerServiceStub(channel)
        self.speaker_id, self.far, self.model, self.version, self.timeout = speaker_id, far, model, version, timeout
        self.threshold: float | None = None
        self.served: tuple[str, int] | None = None
        self.scoring = ""

    def __call__(self, w: np.ndarray) -> tuple[float, bool]:
        request = speaker_pb2.VerifySpeakerRequest(speaker_id=self.speaker_id, audio=_pcm(w), target_far=self.far)
        try:
            reply = self.stub.Verify(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise GatewayError(f"Verify {self.speaker_id}: {err.code().name}: {err.details()}") from None
        served = (reply.model.name, int(reply.model.version))
        if served[0] != self.model or (self.version is not None and served[1] != self.version):
            asked = self.model + (f" v{self.version}" if self.version is not None else "")
            raise GatewayError(f"the gateway serves {served[0]} v{served[1]} for speakers, not {asked}")
        self.served, self.threshold, self.scoring = served, float(reply.decision.threshold), reply.scoring
        return float(reply.decision.score), bool(reply.decision.accepted)


def _snr(x: np.ndarray, delta: np.ndarray | None) -> float | None:
    if delta is None:
        return None
    noise = float(np.sum(delta**2))
    return math.inf if noise == 0.0 else 10.0 * math.log10(float(np.sum(x.astype(np.float64) ** 2)) / noise)


def _trial_row(trial: GatewayTrial, eps: float, rec: QueryRecord, scorer: VerifyScorer) -> dict[str, Any]:
    snr = _snr(trial.waveform, rec.success_delta)
    return {
        "speaker_id": trial.speaker_id,
        "probe": str(trial.probe),
        "eps": eps,
        "threshold": scorer.threshold,
        "initial_score": rec.initial_score,
        "best_score": rec.best_score,
        "initially_accepted": rec.first_success == 1,
        "success": rec.first_success is not None,
        "queries": rec.queries,
        "queries_to_success": rec.first_success,
        "snr_db": snr if snr is None or math.isfinite(snr) else None,
        "max_abs_delta": rec.max_abs_delta,  # over every waveform submitted: ≤ ε
        "max_abs_sample": rec.max_abs_sample,  # ≤ 1
    }


def _row(eps: float, budget: int, trials: Sequence[dict[str, Any]]) -> dict[str, Any]:
    wins = [t for t in trials if t["success"] and t["queries_to_success"] <= budget]
    snr = [t["snr_db"] for t in wins if t["snr_db"] is not None]
    return {
        "attack": "spsa_lbfgs",
        "eps": eps,
        "budget": budget,
        "trials": len(trials),
        "successes": len(wins),
        "success_rate": len(wins) / len(trials),
        "snr_db": snr,
        "snr_db_median": statistics.median(snr) if snr else None,
        "queries_to_success_mean": statistics.fmean(t["queries_to_success"] for t in wins) if wins else None,
    }


def attack_gateway(
    channel: grpc.Channel,
    trials: Sequence[GatewayTrial],
    model: str,
    version: int | None,
    epsilons: Sequence[float],
    budgets: Sequence[int],
    far: float,
    settings: SpsaSettings,
    timeout: float,
    progress: bool = True,
) -> dict[str, Any]:
    """Every trial at every ε, run once at the largest query budget (the attack stops at its first
    success, so success within b queries is ``queries_to_success ≤ b``); rows per (ε, budget)."""
    top = max(budgets)
    per_trial, served, scoring = [], None, ""
    for eps in epsilons:
        for trial in trials:
            scorer = VerifyScorer(channel, trial.speaker_id, far, model, version, timeout)
            rec = spsa_lbfgs(QueryOracle(scorer, trial.waveform, eps, top), settings)
            per_trial.append(_trial_row(trial, eps, rec, scorer))
            served, scoring = scorer.served, scorer.scoring
            if progress:
                r = per_trial[-1]
                print(
                    f"  ε {eps:<7g} {trial.speaker_id} ← {trial.probe.name}: "
                    f"{'accepted' if r['success'] else 'rejected'} after {r['queries']} queries "
                    f"(score {r['initial_score']:.4f} → {r['best_score']:.4f}, τ {r['threshold']:.4f})",
                    flush=True,
                )
    rows = [_row(e, b, [t for t in per_trial if t["eps"] == e]) for e in epsilons for b in sorted(budgets)]
    queries = [t["queries_to_success"] for t in per_trial if t["success"]]
    return {
        "served": {"name": served[0], "version": served[1]} if served else None,
        "scoring": scoring,
        "queries_total": sum(t["queries"] for t in per_trial),
        "queries_to_success_mean": statistics.fmean(queries) if queries else None,
        "per_trial": per_trial,
        "results": rows,
    }

"""The METHODS §3 grid on a twin: every attack × ε × budget, the JSON report, the card's summary.

Budget curves cost one run per (attack, ε), not one per budget, where an attack's trajectory does
not depend on its budget (L-BFGS-B, tanh-L-BFGS, Adam, FGSM: the budget only stops them, and they
stop at the first success): success within b evaluations is then ``first_success ≤ b``, and the
δ reported at b is that first success. PGD (step 2.5ε/T) and objective B (the budget is split
over the bisection steps) depend on T, so they run once per budget.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from tqdm import tqdm

from contracts.card import AnyCard
from contracts.card_sections import Calibration, Robustness, RobustnessPoint
from contracts.trials import DevTrials
from export.pipeline import Calibrate
from export.redteam_ranges import ATTACKS, DEFAULT_FAR, KAPPA, check_attacks, check_ranges
from training.redteam import baselines, quasi_newton
from training.redteam.oracle import AttackResult, Encoder, Oracle, Trial
from training.redteam.steps import pick_adam_lr

PREFIX_ATTACKS = frozenset({"lbfgsb", "tanh_lbfgs", "adam", "fgsm"})  # budget-independent trajectories
# The card's robustness summary (issue 14): L-BFGS-B (objective A), 50 evaluations, a small fixed set.
SUMMARY_EPSILONS, SUMMARY_BUDGET, SUMMARY_TRIALS, SUMMARY_SECONDS, SUMMARY_SEED = (0.001, 0.002), 50, 4, 2.0, 0
OBJECTIVE_B_STEPS = 3


@dataclass(frozen=True)
class Outcome:
    """One attack on one trial, as seen at one budget."""

    success: bool
    first_success: int | None
    snr_db: float | None  # of the successful δ


def _outcome(result: AttackResult, trial: Trial, budget: int) -> Outcome:
    ok = result.first_success is not None and result.first_success <= budget and result.success
    return Outcome(ok, result.first_success if ok else None, result.snr_db(trial.waveform) if ok else None)


def _run(name: str, oracle_for: Callable[[int], Oracle], eps: float, budget: int, adam_lr: float) -> AttackResult:
    if name == "objective_b":
        share = max(1, budget // OBJECTIVE_B_STEPS)
        return quasi_newton.objective_b([oracle_for(share) for _ in range(OBJECTIVE_B_STEPS)], eps)
    oracle = oracle_for(budget)
    runs: dict[str, Callable[[], AttackResult]] = {
        "lbfgsb": lambda: quasi_newton.lbfgsb(oracle, eps),
        "tanh_lbfgs": lambda: quasi_newton.tanh_lbfgs(oracle, eps),
        "fgsm": lambda: baselines.fgsm(oracle, eps),
        "pgd": lambda: baselines.pgd(oracle, eps),
        "adam": lambda: baselines.adam(oracle, eps, adam_lr),
    }
    return runs[name]()


def attack_grid(
    encoder: Encoder,
    test: Sequence[Trial],
    dev: Sequence[Trial],
    tau: float,
    kappa: float,
    epsilons: Sequence[float],
    budgets: Sequence[int],
    attacks: Sequence[str] = ATTACKS,
    progress: bool = True,
) -> dict[str, Any]:
    """Rows of success rate, SNR and evaluations to first success per (attack, ε, budget) on ``test``;
    Adam's learning rate per ε picked on ``dev`` alone (at the largest budget)."""
    check_ranges(epsilons, budgets)
    check_attacks(attacks)
    top = max(budgets)
    picked = "adam" in attacks and bool(dev)  # the two step sizes compared on dev: ε/10 and ε/2
    adam_lr = {e: pick_adam_lr(encoder, dev, tau, kappa, e, top, (1.0, 5.0)) if picked else e / 10 for e in epsilons}
    jobs = [(a, e, b) for a in attacks for e in epsilons for b in ([top] if a in PREFIX_ATTACKS else budgets)]
    rows = []
    with tqdm(total=len(jobs) * len(test), desc="red team", unit="attack", disable=not progress) as bar:
        for name, eps in dict.fromkeys((a, e) for a, e, _ in jobs):
            runs_budgets = [b for a, e, b in jobs if (a, e) == (name, eps)]
            per_budget: dict[int, list[Outcome]] = {b: [] for b in budgets}
            for run_budget in runs_budgets:
                for trial in test:
                    result = _run(name, lambda n: Oracle(encoder, trial, tau, kappa, n), eps, run_budget, adam_lr[eps])
                    targets = budgets if name in PREFIX_ATTACKS else [run_budget]
                    for b in targets:
                        per_budget[b].append(_outcome(result, trial, b))
                    bar.update()
            rows += [_row(name, eps, b, per_budget[b]) for b in budgets]
    return {"adam_lr": {f"{e:g}": lr for e, lr in adam_lr.items()}, "results": rows}


def _row(attack: str, eps: float, budget: int, outcomes: list[Outcome]) -> dict[str, Any]:
    wins = [o for o in outcomes if o.success]
    snr = [o.snr_db for o in wins if o.snr_db is not None and math.isfinite(o.snr_db)]
    evals = [o.first_success for o in wins if o.first_success is not None]
    return {
        "attack": attack,
        "eps": eps,
        "budget": budget,
        "trials": len(outcomes),
        "successes": len(wins),
        "success_rate": len(wins) / len(outcomes) if outcomes else 0.0,
        "snr_db": snr,
        "snr_db_median": statistics.median(snr) if snr else None,
        "evaluations_to_success_mean": statistics.fmean(evals) if evals else None,
    }


def robustness_summary(encoder: Encoder, trials: Sequence[Trial], tau: float, far: float, dev_name: str) -> Robustness:
    """The card's section: L-BFGS-B success at ε = 0.001 and 0.002 within 50 evaluations."""
    grid = attack_grid(encoder, trials, [], tau, KAPPA, SUMMARY_EPSILONS, [SUMMARY_BUDGET], ["lbfgsb"], progress=False)
    points = [
        RobustnessPoint(
            eps=r["eps"],
            budget=r["budget"],
            trials=r["trials"],
            successes=r["successes"],
            success_rate=r["success_rate"],
            median_snr_db=r["snr_db_median"],
        )
        for r in grid["results"]
    ]
    return Robustness(
        attack="lbfgsb",
        threshold=tau,
        far=far,
        kappa=KAPPA,
        dev_trials=dev_name,
        points=points,
        built=f"{len(trials)} non-target trials of {dev_name} (seed {SUMMARY_SEED}, probes cut to "
        f"{SUMMARY_SECONDS:g} s), white-box on the torch twin, front end included, VAD left out",
    )


def with_robustness(calibrate: Calibrate, module: nn.Module, dev: DevTrials) -> Calibrate:
    """The calibration hook, then the red team's summary on the card (opt-in at export: a few CPU
    minutes for CAM++, so ``make models`` leaves it out). τ is the fresh calibration's threshold at
    the gateway's default FAR; the trials are a fixed set of ``SUMMARY_TRIALS`` non-target pairs."""
    from contracts.card import SpeakerCard
    from export.redteam import impostor_trials, module_encoder

    def run(staged: Path, card: AnyCard) -> Calibration:
        calibration = calibrate(staged, card)
        if isinstance(card, SpeakerCard):
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)
            encoder = module_encoder(module)
            trials = impostor_trials(encoder, dev, SUMMARY_TRIALS, SUMMARY_SEED, SUMMARY_SECONDS)
            tau = calibration.threshold_for(DEFAULT_FAR)
            print(f"{card.name}: red team (L-BFGS-B, {len(trials)} trials, 50 evaluations, ε 0.001 / 0.002)")
            card.robustness = robustness_summary(encoder, trials, tau, DEFAULT_FAR, dev.name)
            for point in card.robustness.points:
                print(f"  ε {point.eps:g}: success {point.successes}/{point.trials}")
        return calibration

    return run

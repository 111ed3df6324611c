"""Issue 12: does the default sound model transfer to sounds it never heard? Before vs after.

Compares, in one run and on the same held-out material:

- **before**: the formula-only encoder (``recipes/sound/pretrain-all.yaml``), with the threshold
  the old calibration gave it (the plain generated corpus: reverb and mild noise only);
- **before, matched threshold**: the same encoder calibrated on the real-use dev set (an
  ablation: how much is the calibration alone);
- **after**: the new default (``recipes/sound/everyday-mix.yaml`` from that run), calibrated on
  the real-use dev set (``recipes/sound/dev/real-use.yaml``), as ``make models`` builds it.

Held-out material: the classes of ``training/data/heldout_sounds.py`` (in no training set) under
the dev set's real-use conditions; and, when ``--real-dir`` holds them, real recorded sounds
(default: Debian ``sound-theme-freedesktop``'s ``/usr/share/sounds/freedesktop/stereo``), each
file one class, its clips the file looped to 3 s under drawn real-use conditions. Each class is
enrolled from ``--enroll`` clips (L2-normalised mean), the rest are probes. Printed per model:
few-shot top-1 among the held-out classes; "known" = share of probes whose best score passes the
FAR-1% threshold (what the server calls known; it should be high); "known & right" = passes
and top-1 is right; "unknown accepted" = share of probes that pass against the other classes
only (their own class left out of the gallery: an unknown sound; it should be near 1%).
Embeddings come from the torch encoders (the ONNX export matches them to 1e-4).

    .venv/bin/python bench/sound_transfer.py --formula-run build/runs/sound-formula-pretrain \\
        --mix-run build/runs/sound-everyday-mix
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contracts.trials import DevTrials  # noqa: E402
from export.calibration import trial_scores  # noqa: E402
from export.sound_calibration import load_dev_set, manifest_trials, sound_dev_trials  # noqa: E402

FAR = 0.01  # the server's default target FAR (serving/scoring.py)
REAL_DIR = Path("/usr/share/sounds/freedesktop/stereo")
# Speech (audio-channel-*, GPL voices) and sub-0.5 s blips are left out: not sounds to enrol.
REAL_SKIP = ("audio-channel-", "audio-test-signal")
Embed = Callable[[Sequence[Path]], np.ndarray]


def torch_embedder(run_dir: Path) -> Embed:
    """paths → L2-normalised embeddings [N, D] of a run's encoder (eval mode, one clip at a time)."""
    import torch

    from training.data.channel_effects import read_wav
    from training.recipes.sound import load_sound_run

    encoder = load_sound_run(run_dir).encoder
    cache: dict[Path, np.ndarray] = {}  # a model's rows are reused under both thresholds

    @torch.no_grad()
    def embed(paths: Sequence[Path]) -> np.ndarray:
        for p in paths:
            if p not in cache:
                x, _ = read_wav(p)
                w = torch.from_numpy(np.asarray(x, dtype=np.float32))[None]
                e = encoder(w, torch.tensor([w.shape[1]])).float()[0].numpy()
                cache[p] = e / (np.linalg.norm(e) + 1e-12)
        return np.stack([cache[p] for p in paths])

    return embed


def threshold(embed: Embed, dev: DevTrials) -> float:
    """The FAR-``FAR`` threshold on ``dev`` (as ``export.calibration.calibrate`` sets it)."""
    from training.evaluation.verification import threshold_at_far

    scores, labels, _, _ = trial_scores(embed, dev)
    return float(threshold_at_far(scores, labels, FAR))


def old_dev(work: Path, sample_rate: int) -> DevTrials:
    """The dev set of the old calibration: the plain generated corpus (30 clips × 3 s, seed 2025)."""
    from training.data.sound_corpus import build_sound_corpus

    manifest = Path(build_sound_corpus(work / "old-dev", 30, 3.0, sample_rate, 5, 2025))
    return manifest_trials(manifest, 3, "synthetic-sounds-dev-12cls-3e-seed2025")


def heldout_manifest(work: Path, clips: int, sample_rate: int) -> Path:
    """The held-out generated classes under the dev set's real-use conditions (another seed)."""
    from training.data.heldout_sounds import HELDOUT_CLASSES
    from training.data.real_use import RealUse, build_real_use_corpus

    conditions = RealUse.from_config(load_dev_set().real_use)
    return build_real_use_corpus(
        work / "heldout",
        HELDOUT_CLASSES,
        conditions,
        clips_per_class=clips,
        clip_seconds=3.0,
        sample_rate=sample_rate,
        seed=4242,
    )


def real_manifest(work: Path, real_dir: Path, clips: int, sample_rate: int) -> Path | None:
    """Real recordings (one class per file) looped to 3 s under drawn real-use conditions."""
    from training.data.channel_effects import write_wav
    from training.data.manifest import ManifestRecord, write_manifest
    from training.data.real_use import RealUse, apply_conditions

    files = sorted(f for f in real_dir.glob("*.oga") if not f.name.startswith(REAL_SKIP)) if real_dir.is_dir() else []
    sources = {}
    for f in files:
        raw = subprocess.run(
            ["sox", str(f), "-t", "f32", "-r", str(sample_rate), "-c", "1", "-"], capture_output=True, check=True
        )
        x = np.frombuffer(raw.stdout, dtype="<f4").astype(np.float64)
        if x.size >= sample_rate // 2:
            sources[f.stem] = x
    if len(sources) < 2:
        return None
    conditions, n = RealUse.from_config(load_dev_set().real_use), 3 * sample_rate
    records = []
    for c, (name, x) in enumerate(sources.items()):
        gap = np.zeros(int(0.3 * sample_rate))
        for j in range(clips):
            rng = np.random.default_rng([4242, c, j])
            cond = conditions.draw(rng)
            looped = np.tile(np.concatenate([x, gap]), int(np.ceil(2 * n / (x.size + gap.size))) + 1)
            start = int(rng.integers(x.size + gap.size))
            long = looped[start : start + int(np.ceil(n * (cond["tempo"] or 1.0))) + 1]
            path = write_wav(
                work / "real" / name / f"{name}_{j:04d}.wav",
                apply_conditions(long, n, sample_rate, cond, rng),
                sample_rate,
            )
            records.append(ManifestRecord(path=path, identity=name, duration=3.0, split="test", extra={}))
    manifest = work / "real" / "manifest.jsonl"
    write_manifest(manifest, records)
    return manifest


def few_shot_open_set(embed: Embed, trials: DevTrials, thr: float) -> dict[str, float]:
    """Top-1, known, known & right, unknown accepted (see the module docstring)."""
    classes = sorted(trials.enrollments)
    protos = []
    for c in classes:
        m = embed(trials.enrollments[c]).mean(0)
        protos.append(m / np.linalg.norm(m))
    probes = sorted({(t.test, t.speaker) for t in trials.trials if t.target})
    vectors = embed([p for p, _ in probes])
    scores = vectors @ np.stack(protos).T
    truth = np.array([classes.index(c) for _, c in probes])
    best = scores.argmax(1)
    known = scores.max(1) >= thr
    others = scores.copy()
    others[np.arange(len(truth)), truth] = -np.inf
    return {
        "top1": float(np.mean(best == truth)),
        "known": float(np.mean(known)),
        "known_right": float(np.mean(known & (best == truth))),
        "unknown_accepted": float(np.mean(others.max(1) >= thr)),
        "probes": float(len(probes)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--formula-run", type=Path, default=REPO / "build" / "runs" / "sound-formula-pretrain")
    parser.add_argument("--mix-run", type=Path, default=REPO / "build" / "runs" / "sound-everyday-mix")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "sound-transfer")
    parser.add_argument("--real-dir", type=Path, default=REAL_DIR)
    parser.add_argument("--clips", type=int, default=12, help="clips per held-out class")
    parser.add_argument("--enroll", type=int, default=3)
    args = parser.parse_args()
    sr = 16000
    before, after = torch_embedder(args.formula_run), torch_embedder(args.mix_run)
    matched, _ = sound_dev_trials(args.work, sr)
    thresholds = {
        "before (formula-only, old calibration)": (before, threshold(before, old_dev(args.work, sr))),
        "before, matched calibration": (before, threshold(before, matched)),
        "after (everyday mix, matched calibration)": (after, threshold(after, matched)),
    }
    material = {"held-out generated classes": heldout_manifest(args.work, args.clips, sr)}
    real = real_manifest(args.work, args.real_dir, args.clips, sr)
    if real is not None:
        material[f"real recordings ({args.real_dir})"] = real
    print(f"FAR {FAR:g} thresholds; enrolment {args.enroll} clips per class\n")
    print("| material | model | threshold | top-1 | known | known & right | unknown accepted |")
    print("|---|---|---|---|---|---|---|")
    for what, manifest in material.items():
        trials = manifest_trials(manifest, args.enroll, what)
        for label, (embed, thr) in thresholds.items():
            r = few_shot_open_set(embed, trials, thr)
            print(
                f"| {what} ({len(trials.enrollments)} classes, {r['probes']:.0f} probes) | {label} | {thr:.3f} | "
                f"{r['top1']:.3f} | {r['known']:.3f} | {r['known_right']:.3f} | {r['unknown_accepted']:.3f} |"
            )


if __name__ == "__main__":
    main()

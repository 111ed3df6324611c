"""Corpus and dev trial builders over the espeak-ng pseudo-speakers (DESIGN §4).

One job per speaker, run in a process pool; each finished speaker leaves a shard manifest
(audio/<spk>/utterances.jsonl) so that an interrupted build resumes where it stopped, and
build.json records the arguments so that a finished build is not redone. Voices and synthesis
live in training.data.synthetic_speech.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts.atomic import write_text_atomic
from contracts.trials import DevTrials, Trial, format_trial, parse_trial
from training.data.manifest import ManifestRecord, read_manifest, write_manifest
from training.data.synthetic_speech import (
    DEV_SPEAKER_OFFSET,
    SpeakerSpec,
    check_voices,
    enumerate_speakers,
    espeak_version,
    render_utterance,
)

_BUILD_VERSION = 1


@dataclass(frozen=True)
class _SpeakerJob:
    """One speaker's share of a build: which utterances to render into ``folder``."""

    spec: SpeakerSpec
    index: int  # k in enumerate_speakers, which seeds everything about this speaker
    seed: int
    sample_rate: int
    folder: Path
    utterances: tuple[tuple[int, str, str, str], ...]  # (j, file stem, split, effect)


def _render_speaker(job: _SpeakerJob) -> list[ManifestRecord]:
    """Render a job's utterances and its shard manifest, or read back a finished shard."""
    shard = job.folder / "utterances.jsonl"
    if shard.exists():
        return read_manifest(shard)
    records = []
    for j, stem, split, effect in job.utterances:
        path = job.folder / f"{stem}.wav"
        text, duration = render_utterance(job.spec, job.seed, job.index, j, path, job.sample_rate, effect)
        records.append(
            ManifestRecord(
                path=path,
                identity=job.spec.id,
                duration=duration,
                split=split,
                extra={"voice": job.spec.voice, "text": text, "effect": effect, "sample_rate": job.sample_rate},
            )
        )
    write_manifest(shard, records)
    return records


def _run_jobs(jobs: list[_SpeakerJob], workers: int | None, progress: bool, desc: str) -> list[ManifestRecord]:
    """Run ``jobs`` in ``workers`` processes (None: all CPUs); their records, in job order."""
    from tqdm import tqdm

    workers = (os.cpu_count() or 1) if workers is None else workers
    records: list[ManifestRecord] = []
    with tqdm(total=len(jobs), desc=desc, unit="spk", disable=not progress) as bar:
        if workers <= 1 or len(jobs) <= 1:
            results = map(_render_speaker, jobs)
            for result in results:
                records += result
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
                for result in pool.map(_render_speaker, jobs):
                    records += result
                    bar.update()
    return records


def _write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` to ``path`` atomically (temp file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _start_build(out_dir: Path, args: dict, outputs: tuple[str, ...]) -> bool:
    """True when ``out_dir`` already holds a finished build of ``args``.

    Otherwise records ``args`` in build.json as unfinished, first deleting the outputs of a
    build made with other arguments (never anything this builder did not write).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = out_dir / "build.json"
    args = json.loads(json.dumps({**args, "builder_version": _BUILD_VERSION, "espeak": espeak_version()}))
    if stamp.exists():
        old = json.loads(stamp.read_text(encoding="utf-8"))
        if old.get("args") == args:
            return bool(old.get("complete")) and all((out_dir / o).exists() for o in outputs)
        shutil.rmtree(out_dir / "audio", ignore_errors=True)
        for name in outputs:
            (out_dir / name).unlink(missing_ok=True)
    elif (out_dir / "audio").exists():
        raise FileExistsError(
            f"{out_dir} has an audio/ folder but no build.json, so it was not "
            f"made by this builder; choose an empty folder or remove it"
        )
    _write_json(stamp, {"args": args, "complete": False})
    return False


def _finish_build(out_dir: Path, **fields: object) -> None:
    """Mark build.json complete, adding ``fields``."""
    stamp = out_dir / "build.json"
    _write_json(stamp, {**json.loads(stamp.read_text(encoding="utf-8")), **fields, "complete": True})


def build_speech_corpus(
    out_dir: str | Path,
    n_speakers: int,
    utterances_per_speaker: int,
    seed: int,
    sample_rate: int = 16000,
    heldout_fraction: float = 0.2,
    workers: int | None = None,
    progress: bool = True,
    effects: tuple[str, ...] = ("clean",),
    speaker_offset: int = 0,
) -> Path:
    """Build ``out_dir/audio/<spk>/<utt>.wav`` and ``out_dir/manifest.jsonl``; return the latter.

    ``workers`` processes (None: os.cpu_count()) render one speaker each at a time.
    Speakers are ``enumerate_speakers(n_speakers, seed, start=speaker_offset)``; a seeded
    ``heldout_fraction`` of them get split "heldout", the rest "train" (a speaker split). Each
    utterance gets a channel effect drawn (seeded) from ``effects`` (preset names). Re-running
    with the same arguments returns at once; with other arguments it rebuilds from scratch.
    """
    out_dir = Path(out_dir).resolve()
    specs = enumerate_speakers(n_speakers, seed, start=speaker_offset)
    args = {
        "kind": "speech_corpus",
        "n_speakers": n_speakers,
        "seed": seed,
        "utterances_per_speaker": utterances_per_speaker,
        "sample_rate": sample_rate,
        "heldout_fraction": heldout_fraction,
        "effects": list(effects),
        "speaker_offset": speaker_offset,
    }
    if _start_build(out_dir, args, ("manifest.jsonl",)):
        return out_dir / "manifest.jsonl"
    check_voices(specs)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    n_heldout = round(n_speakers * heldout_fraction)
    heldout = set(rng.permutation(n_speakers)[:n_heldout].tolist())
    jobs = []
    for i, spec in enumerate(specs):
        split = "heldout" if i in heldout else "train"
        picks = rng.integers(len(effects), size=utterances_per_speaker)
        jobs.append(
            _SpeakerJob(
                spec,
                speaker_offset + i,
                seed,
                sample_rate,
                out_dir / "audio" / spec.id,
                tuple((j, f"utt{j:04d}", split, effects[e]) for j, e in enumerate(picks.tolist())),
            )
        )
    records = _run_jobs(jobs, workers, progress, "speech corpus")
    manifest = write_manifest(out_dir / "manifest.jsonl", records)
    _finish_build(out_dir, speakers=[s.to_dict() for s in specs])
    return manifest


DEV_TEST_EFFECTS = ("telephone", "noise_snr20", "noise_snr10", "noise_snr5", "reverb", "telephone+noise")


def build_dev_trials(
    out_dir: str | Path,
    n_speakers: int = 64,
    enroll_per_speaker: int = 3,
    test_per_speaker: int = 4,
    seed: int = 2024,
    test_effects: tuple[str, ...] = DEV_TEST_EFFECTS,
    sample_rate: int = 16000,
    workers: int | None = None,
    progress: bool = True,
    speaker_offset: int = DEV_SPEAKER_OFFSET,
) -> DevTrials:
    """Build a dev trial list: clean enrollment, test utterances through channel effects.

    Writes ``out_dir/manifest.jsonl`` (splits "enroll"/"test"), ``out_dir/trials.txt`` with
    lines ``<1|0> <speaker> <test wav relative to out_dir>`` for every test utterance against
    every speaker (n_speakers² · test_per_speaker lines, n_speakers · test_per_speaker
    targets) and build.json. Test effects cycle through ``test_effects`` across speakers.
    Speakers come from the reserved range at ``speaker_offset`` so that they are not among a
    training corpus's speakers (which start at 0). Re-running with the same arguments only
    reads the trials back.
    """
    out_dir = Path(out_dir).resolve()
    specs = enumerate_speakers(n_speakers, seed, start=speaker_offset)
    name = f"synthetic-speech-dev-{n_speakers}spk-{enroll_per_speaker}e{test_per_speaker}t-seed{seed}"
    args = {
        "kind": "dev_trials",
        "n_speakers": n_speakers,
        "seed": seed,
        "enroll_per_speaker": enroll_per_speaker,
        "test_per_speaker": test_per_speaker,
        "test_effects": list(test_effects),
        "sample_rate": sample_rate,
        "speaker_offset": speaker_offset,
    }
    if _start_build(out_dir, args, ("manifest.jsonl", "trials.txt")):
        return load_dev_trials(out_dir)
    check_voices(specs)
    jobs = []
    for i, spec in enumerate(specs):
        utts = [(j, f"enroll{j:02d}", "enroll", "clean") for j in range(enroll_per_speaker)]
        utts += [
            (
                enroll_per_speaker + j,
                f"test{j:02d}",
                "test",
                test_effects[(i * test_per_speaker + j) % len(test_effects)],
            )
            for j in range(test_per_speaker)
        ]
        jobs.append(_SpeakerJob(spec, speaker_offset + i, seed, sample_rate, out_dir / "audio" / spec.id, tuple(utts)))
    records = _run_jobs(jobs, workers, progress, "dev trials")
    write_manifest(out_dir / "manifest.jsonl", records)
    tests = [r for r in records if r.split == "test"]
    lines = [format_trial(Trial(s.id, t.path, t.identity == s.id), out_dir) for s in specs for t in tests]
    write_text_atomic(out_dir / "trials.txt", "\n".join(lines) + "\n")
    _finish_build(out_dir, name=name, speakers=[s.to_dict() for s in specs])
    return load_dev_trials(out_dir)


def load_dev_trials(out_dir: str | Path) -> DevTrials:
    """Read back a finished ``build_dev_trials`` folder (absolute paths)."""
    out_dir = Path(out_dir).resolve()
    stamp = json.loads((out_dir / "build.json").read_text(encoding="utf-8"))
    if not stamp.get("complete") or stamp["args"].get("kind") != "dev_trials":
        raise ValueError(f"{out_dir} does not hold a finished dev trial build")
    enrollments: dict[str, list[Path]] = {}
    for record in read_manifest(out_dir / "manifest.jsonl"):
        if record.split == "enroll":
            enrollments.setdefault(str(record.identity), []).append(record.path)
    trials = []
    for lineno, line in enumerate((out_dir / "trials.txt").read_text().splitlines(), 1):
        trials.append(parse_trial(line, out_dir, enrollments, f"{out_dir / 'trials.txt'}:{lineno}"))
    return DevTrials(name=stamp["name"], enrollments=enrollments, trials=trials)

"""Activation re-embedding throughput against the Embed RPC, and Verify latency during a re-embed,
measured in one run (issue 11).

1. Generated speech: a pool of ``--pool`` distinct clips of exactly ``--clip-seconds`` (2.5 s) of
   espeak-ng speech, ``--pool / 2`` voices × 2 utterances, as WAV bytes.
2. A speaker gallery of ``--identities`` (2,000) identities × 2 utterances with their media
   stored, written before the gateway starts: the served modality (``load_modality``, the same
   decode, VAD and model a request goes through) embeds each distinct clip of the pool once, and
   each identity is enrolled with ``Gallery.enroll(..., media=...)``, one transaction per
   identity, as an Enroll RPC with ``store_media`` would commit it. Identity ``i`` stores the two
   utterances of voice ``i mod (pool / 2)``, so voices repeat across identities.
   **Real**: every stored utterance is real encoded audio that the re-embed decodes, trims and
   embeds in full; the gallery, its store and the media rows are the production ones.
   **Shortcut**: the enrollment skips gRPC and the pool is reused, so the gallery holds
   duplicate templates (identification among them would be meaningless; nothing here scores
   identities against each other, and the re-embed's cost does not depend on it).
3. ``toitsu serve`` in a subprocess on that ``var/`` (speaker only; a model repository holding the
   default pack plus ``resemblyzer-ge2e`` v2 and v3: the v1 graph under another version, so
   re-embedding costs exactly what serving costs, and the Embed baseline and the re-embed run
   the same model).
4. Baseline: Embed RPC throughput (utterances/s) at concurrency 1 and 8 (closed-loop gRPC
   clients in this process sending the pool's clips) for ``--embed-seconds`` each; concurrency 1
   is measured again after step 5 and the two are averaged (the host may be shared).
5. Activate v2 over ModelService (``detach``, followed with WatchJob) with no other traffic:
   re-embedding throughput = stored utterances re-embedded per second of the re-embedding phase
   (between its first and last progress events, server timestamps; each event is one chunk).
   **Ratio = re-embed ÷ Embed at concurrency 1** (the headline, target ≥ 0.8): the re-embed is
   one worker thread with one inference call in flight at a time (batches of ``MEDIA_BATCH`` = 8
   media run directly on the backend, one ONNX Runtime thread, nice +10), which is what one
   client with one request in flight makes of the gateway. The ratio at concurrency 8 (the
   micro-batcher's full batch, one batch in flight per core) is reported too: the re-embed keeps
   to one core by design, so on 2 cores it cannot reach 0.8 of that.
   The re-embed pauses ``yield_ratio`` (0.25) × a chunk's time after each chunk that live
   traffic overlapped (serving/activation_copy.py); here there is none, so it pauses for 0 s
   (the report's ``yielded_seconds``). Before that rule it paused after every chunk, which costs
   1 - 1/1.25 = 20 % of the idle throughput.
6. Verify p50/p99 with ``--verify-threads`` (4) closed-loop clients (genuine probes, audio):
   idle for ``--verify-seconds`` (half before, half after the next activation), and with the same
   load while activating v3 (over the whole activation, and over the re-embedding phase alone; a
   re-embed still running after ``--during-seconds`` is cancelled, which discards its shadow and
   ends the measurement). Ratio = during ÷ idle (target ≤ 2). The re-embedding throughput under
   that load is reported as well.

On a 2-core machine the load-generating clients share the cores with the gateway; the machine
may be shared with other work, so the 1-minute load average is recorded at each step
(``--wait-load`` waits, up to ``--wait-seconds``, for it to fall below a bound before measuring).

    .venv/bin/python bench/bench_activation.py --models models            # ~8 min; bench/results/activation.json
    .venv/bin/python bench/bench_activation.py --models models --identities 300 --embed-seconds 8 \
        --verify-seconds 20 --during-seconds 60                           # quick look (~2 min)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from protos.v1 import common_pb2, model_pb2, model_pb2_grpc, speaker_pb2, speaker_pb2_grpc  # noqa: E402

MODEL = "resemblyzer-ge2e"
PER_IDENTITY = 2  # stored utterances per identity
FINISHED = (model_pb2.SUCCEEDED, model_pb2.FAILED, model_pb2.CANCELLED)


def main() -> None:
    args = _parse()
    loads: dict[str, float] = {"start": _load_average()}
    clips = make_clips(args.pool, args.clip_seconds)
    with tempfile.TemporaryDirectory(prefix="bench-activation-", dir=args.work) as tmp:
        repo = model_repo(args.models, Path(tmp) / "models", versions=(2, 3))
        var = Path(tmp) / "var"
        started = time.perf_counter()
        build_gallery(repo, var, clips, args.identities)
        build_s = time.perf_counter() - started
        print(f"gallery: {args.identities} identities × {PER_IDENTITY} stored utterances in {build_s:.0f} s")
        server, target = _start_server(repo, var)
        try:
            channel = grpc.insecure_channel(target)
            speakers = speaker_pb2_grpc.SpeakerServiceStub(channel)
            models = model_pb2_grpc.ModelServiceStub(channel)
            loads["before_measuring"] = _wait_for_load(args.wait_load, args.wait_seconds)
            embed = _embed_requests(clips)
            embed_call = lambda r: speakers.Embed(r, timeout=60)  # noqa: E731
            closed_loop(embed_call, embed, 2, 3.0)  # warm-up
            embed_c1 = closed_loop(embed_call, embed, 1, args.embed_seconds)
            embed_c8 = closed_loop(embed_call, embed, 8, args.embed_seconds)
            print(f"Embed RPC: {embed_c1.rate:.1f} /s at concurrency 1, {embed_c8.rate:.1f} /s at 8", flush=True)
            loads["before_reembed"] = _load_average()
            idle_activation = activate(models, 2, var, None)
            print(f"re-embed, no traffic: {idle_activation['reembed_utterances_per_s']:.1f} utterances/s", flush=True)
            embed_c1_after = closed_loop(embed_call, embed, 1, args.embed_seconds)
            verify = _verify_requests(clips, args.identities)
            call = lambda r: speakers.Verify(r, timeout=60)  # noqa: E731
            closed_loop(call, verify, args.verify_threads, 3.0)  # warm-up
            loads["before_verify_idle"] = _load_average()
            idle_before = closed_loop(call, verify, args.verify_threads, args.verify_seconds / 2)
            loads["before_verify_during"] = _load_average()
            during, loaded_activation = verify_during_activation(
                models, call, verify, args.verify_threads, 3, var, args.during_seconds
            )
            idle_after = closed_loop(call, verify, args.verify_threads, args.verify_seconds / 2)
            loads["end"] = _load_average()
        finally:
            server.terminate()
            server.wait(30)
    c1, c8 = (embed_c1.rate + embed_c1_after.rate) / 2, embed_c8.rate
    idle = Samples(idle_before.calls + idle_after.calls, idle_before.wall + idle_after.wall, args.verify_threads)
    reembed = idle_activation["reembed_utterances_per_s"]
    window = (loaded_activation["reembed_started_at"], loaded_activation["reembed_ended_at"])
    whole = (loaded_activation["asked_at"], loaded_activation["finished_at"])
    verify_idle, verify_whole, verify_reembed = idle.summary(), during.summary(*whole), during.summary(*window)
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average_1m": loads},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "gallery": {
            "identities": args.identities,
            "utterances_per_identity": PER_IDENTITY,
            "distinct_clips": len(clips),
            "clip_seconds": args.clip_seconds,
            "build_seconds": build_s,
        },
        "embed_rpc": {
            "concurrency_1": embed_c1.summary(),
            "concurrency_1_after_reembed": embed_c1_after.summary(),
            "concurrency_1_mean_per_s": c1,
            "concurrency_8": embed_c8.summary(),
        },
        "reembed_no_traffic": idle_activation,
        "throughput_ratio_c1": reembed / c1,
        "throughput_ratio_c8": reembed / c8,
        "verify_idle": verify_idle,
        "verify_idle_before": idle_before.summary(),
        "verify_idle_after": idle_after.summary(),
        "verify_during_activation": verify_whole,
        "verify_during_reembed_phase": verify_reembed,
        "activation_under_load": loaded_activation,
        "p99_ratio_activation": verify_whole["p99_ms"] / verify_idle["p99_ms"],
        "p99_ratio_reembed_phase": verify_reembed["p99_ms"] / verify_idle["p99_ms"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    _print(result)
    print(f"wrote {args.out}")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--work", type=Path, default=None, help="folder for the temporary var/ and model repo")
    parser.add_argument("--identities", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=32, help="distinct clips (voices × 2)")
    parser.add_argument("--clip-seconds", type=float, default=2.5)
    parser.add_argument("--embed-seconds", type=float, default=20.0, help="per Embed concurrency")
    parser.add_argument("--verify-threads", type=int, default=4)
    parser.add_argument("--verify-seconds", type=float, default=40.0, help="idle Verify: half before, half after")
    parser.add_argument("--during-seconds", type=float, default=240.0, help="cancel a loaded re-embed after this")
    parser.add_argument("--wait-load", type=float, default=None, help="wait for the 1-min load average below this")
    parser.add_argument("--wait-seconds", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "activation.json")
    args = parser.parse_args()
    if args.pool < 2 or args.pool % 2:
        parser.error("--pool must be an even number >= 2")
    return args


# --- the gallery -------------------------------------------------------------------------------


def make_clips(count: int, seconds: float) -> list[bytes]:
    """``count`` WAV clips of exactly ``seconds``: voices ``count // 2`` × 2 utterances (clip
    ``2v`` and ``2v + 1`` are voice ``v``), utterances concatenated until long enough."""
    import soundfile as sf

    from training.data.synthetic_speech import enumerate_speakers, synthesize_utterance

    n, clips = int(seconds * 16000), []
    for v, spec in enumerate(enumerate_speakers(count // 2, seed=11, start=5000)):
        for k in range(2):
            rng = np.random.default_rng([v, k, 11])
            x = np.zeros(0)
            while len(x) < n:
                x = np.concatenate([x, synthesize_utterance(spec, rng)[0]])
            buf = io.BytesIO()
            sf.write(buf, x[:n].astype(np.float32), 16000, format="WAV", subtype="PCM_16")
            clips.append(buf.getvalue())
    return clips


def clips_of(identity: int, pool: int) -> tuple[int, int]:
    """The pool indices identity ``identity`` stores: both utterances of voice ``identity mod pool/2``."""
    voice = identity % (pool // 2)
    return 2 * voice, 2 * voice + 1


def identity_name(i: int) -> str:
    return f"spk{i:05d}"


def model_repo(models: Path, repo: Path, versions: Sequence[int]) -> Path:
    """The pack at ``models`` (symlinked) plus ``MODEL`` at each of ``versions``: v1's files under a
    card that says that version (as tests/serving/activation/conftest.py builds them)."""
    repo.mkdir(parents=True)
    for entry in models.iterdir():
        if entry.is_dir() and not entry.name.startswith(".") and entry.name != MODEL:
            os.symlink(entry.resolve(), repo / entry.name)
    (repo / MODEL).mkdir()
    source = models / MODEL / "1"
    os.symlink(source.resolve(), repo / MODEL / "1")
    for version in versions:
        folder = repo / MODEL / str(version)
        folder.mkdir()
        for item in source.iterdir():
            if item.name != "card.json":
                os.symlink(item.resolve(), folder / item.name)
        card = json.loads((source / "card.json").read_text())
        (folder / "card.json").write_text(json.dumps({**card, "version": version}))
    return repo


def _config(repo: Path, var: Path):
    from serving.config import load_config

    return load_config(overrides=_settings(repo, var))


def _settings(repo: Path, var: Path) -> dict[str, str]:
    return {
        "paths.models": str(repo),
        "paths.var": str(var),
        "speaker.version": "1",
        "sound.enabled": "false",
        "face.enabled": "false",
    }


def build_gallery(repo: Path, var: Path, clips: list[bytes], identities: int) -> None:
    """The speaker gallery of step 2 of the module doc, in ``var``'s legacy speaker folder."""
    from serving.gallery import Media
    from serving.loader import load_modality, stop_modality

    speaker = load_modality(_config(repo, var), "speaker")
    try:
        media = [Media(c, "encoded") for c in clips]
        vectors = speaker.embed_media(media)
        for i in range(identities):
            picked = clips_of(i, len(clips))
            speaker.gallery.enroll(
                identity_name(i),
                vectors[list(picked)],
                model=speaker.binding,
                media=[media[j] for j in picked],
                actor="bench",
            )
        speaker.gallery.wait_idle()
    finally:
        stop_modality(speaker)


def _start_server(repo: Path, var: Path) -> tuple[subprocess.Popen, str]:
    settings = [f"--set={k}={v}" for k, v in _settings(repo, var).items() if not k.startswith("paths.")]
    proc = subprocess.Popen(
        [sys.executable, "-m", "toitsu", "serve", "--port", "0", "--metrics-port", "0", "--models", str(repo)]
        + ["--var", str(var), "--log-level", "WARNING", *settings],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None  # stdout=PIPE
    target = proc.stdout.readline().decode().strip().rsplit(" ", 1)[-1]
    subprocess.run(
        [sys.executable, "-m", "toitsu", "health", "--wait", "120", "--target", target],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return proc, target


# --- load ----------------------------------------------------------------------------------------


@dataclass
class Samples:
    """Closed-loop results: (start time.time(), latency s) per request, and the wall time."""

    calls: list[tuple[float, float]]
    wall: float
    concurrency: int

    @property
    def rate(self) -> float:
        return len(self.calls) / self.wall if self.wall > 0 else 0.0

    def summary(self, since: float | None = None, until: float | None = None) -> dict[str, Any]:
        """Latency percentiles (ms) of the requests started in [since, until] (default: all)."""
        picked = [lat for t, lat in self.calls if (since is None or t >= since) and (until is None or t <= until)]
        return {"concurrency": self.concurrency, "seconds": self.wall, "throughput_per_s": self.rate} | latency(picked)


def latency(seconds: Sequence[float]) -> dict[str, Any]:
    if not seconds:
        return {"requests": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ms = np.asarray(seconds) * 1000
    p50, p99 = np.percentile(ms, [50, 99])
    return {"requests": len(ms), "p50_ms": float(p50), "p99_ms": float(p99), "max_ms": float(ms.max())}


def closed_loop(
    call: Callable[[Any], Any],
    requests: Sequence[Any],
    concurrency: int,
    seconds: float | None,
    stop: threading.Event | None = None,
) -> Samples:
    """``concurrency`` threads each sending ``requests`` in turn, one at a time, until ``seconds``
    have passed or ``stop`` is set."""
    calls: list[tuple[float, float]] = []
    lock = threading.Lock()
    stop = stop or threading.Event()
    deadline = time.perf_counter() + seconds if seconds is not None else float("inf")

    def worker(w: int) -> None:
        n = w
        while not stop.is_set() and time.perf_counter() < deadline:
            at, started = time.time(), time.perf_counter()
            call(requests[n % len(requests)])
            with lock:
                calls.append((at, time.perf_counter() - started))
            n += concurrency

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Samples(calls, time.perf_counter() - started, concurrency)


def _embed_requests(clips: list[bytes]) -> list[speaker_pb2.EmbedSpeakerRequest]:
    return [speaker_pb2.EmbedSpeakerRequest(audio=common_pb2.Audio(encoded=c)) for c in clips]


def _verify_requests(clips: list[bytes], identities: int) -> list[speaker_pb2.VerifySpeakerRequest]:
    """Genuine probes (the other voice's clip would be an impostor; the cost is the same): the first
    utterance of each voice against an identity that stores it, spread over the gallery."""
    voices = len(clips) // 2
    out = []
    for n in range(64):
        i = (n * 37) % identities
        out.append(
            speaker_pb2.VerifySpeakerRequest(
                speaker_id=identity_name(i), audio=common_pb2.Audio(encoded=clips[2 * (i % voices)])
            )
        )
    return out


# --- activations ------------------------------------------------------------------------------


def phase_of(message: str) -> str:
    """The phase of a job event message ("re-embedding (12/2000)", "loading: loading …")."""
    return message.split(":", 1)[0].split(" (", 1)[0].strip()


def reembed_rate(events: Sequence[tuple[float, str, int, int]]) -> dict[str, Any]:
    """Identities/s of the re-embedding phase from (at, message, step, total) events: between the
    first and the last "re-embedding" event (each one a chunk done; the first chunk's start is not
    observed, so it is left out of both the count and the time)."""
    chunks = [(at, step, total) for at, message, step, total in events if phase_of(message) == "re-embedding"]
    loading = [at for at, message, _, _ in events if phase_of(message) == "loading"]
    out: dict[str, Any] = {
        "chunks": len(chunks),
        "reembed_started_at": loading[-1] if loading else (chunks[0][0] if chunks else None),
        "reembed_ended_at": chunks[-1][0] if chunks else None,
        "identities_done": chunks[-1][1] if chunks else 0,
        "identities_total": chunks[-1][2] if chunks else 0,
    }
    if len(chunks) < 2 or chunks[-1][0] <= chunks[0][0]:
        out["reembed_identities_per_s"] = None
        return out
    (t0, d0, _), (t1, d1, _) = chunks[0], chunks[-1]
    out["reembed_seconds"] = t1 - t0
    out["reembed_identities_per_s"] = (d1 - d0) / (t1 - t0)
    return out


def activate(
    models: model_pb2_grpc.ModelServiceStub, version: int, var: Path, cancel_after: float | None
) -> dict[str, Any]:
    """Activate ``MODEL`` v``version`` and follow it; the phase timings, the job's report, rates."""
    asked = time.time()
    job = models.Activate(
        model_pb2.ActivateRequest(modality="speaker", model=MODEL, version=version, detach=True), timeout=60
    ).job
    events: list[tuple[float, str, int, int]] = []
    cancelled, state = False, "UNFINISHED"
    for event in models.WatchJob(model_pb2.WatchJobRequest(job_id=job.id)):
        events.append((event.at, event.message, event.job.step, event.job.total_steps))
        if event.job.state in FINISHED:
            state = model_pb2.JobState.Name(event.job.state)
            break
        if cancel_after is not None and not cancelled and time.time() - asked > cancel_after:
            models.CancelJob(model_pb2.CancelJobRequest(job_id=job.id), timeout=60)
            cancelled = True
    ended = time.time()
    out: dict[str, Any] = {
        "version": version,
        "state": state,
        "cancelled_by_bench": cancelled,
        "seconds": ended - asked,
    }
    out |= {"asked_at": asked, "finished_at": ended}
    out |= reembed_rate(events)
    per_s = out["reembed_identities_per_s"]
    out["reembed_utterances_per_s"] = per_s * PER_IDENTITY if per_s is not None else None
    out["phases"] = _phase_times(events, asked)
    report = var / "jobs" / job.id / "report.json"
    if report.is_file():
        data = json.loads(report.read_text())
        out["report"] = {
            k: data.get(k) for k in ("reembedded", "samples", "seconds", "writes_paused_seconds", "yielded_seconds")
        }
    if state != "SUCCEEDED" and not cancelled:
        raise SystemExit(f"activation of v{version} ended {state}: {events[-1][1] if events else ''}")
    return out


def _phase_times(events: Sequence[tuple[float, str, int, int]], since: float) -> dict[str, float]:
    """Seconds after ``since`` at which each phase was first reported."""
    first: dict[str, float] = {}
    for at, message, _, _ in events:
        first.setdefault(phase_of(message), at - since)
    return first


def verify_during_activation(
    models: model_pb2_grpc.ModelServiceStub,
    call: Callable[[Any], Any],
    requests: Sequence[Any],
    threads: int,
    version: int,
    var: Path,
    cancel_after: float,
) -> tuple[Samples, dict[str, Any]]:
    """Verify load from just before an activation of ``version`` until it ends."""
    stop = threading.Event()
    box: dict[str, Samples] = {}
    load = threading.Thread(target=lambda: box.setdefault("s", closed_loop(call, requests, threads, None, stop)))
    load.start()
    time.sleep(1.0)
    try:
        result = activate(models, version, var, cancel_after)
    finally:
        stop.set()
        load.join()
    return box["s"], result


def _load_average() -> float:
    return os.getloadavg()[0]


def _wait_for_load(bound: float | None, seconds: float) -> float:
    deadline = time.monotonic() + seconds
    while bound is not None and _load_average() >= bound and time.monotonic() < deadline:
        print(f"load average {_load_average():.2f} >= {bound}; waiting", flush=True)
        time.sleep(15)
    return _load_average()


def _print(r: dict[str, Any]) -> None:
    e1, e1b, e8 = (r["embed_rpc"][k] for k in ("concurrency_1", "concurrency_1_after_reembed", "concurrency_8"))
    idle, load = r["reembed_no_traffic"], r["activation_under_load"]
    vi, va, vr = r["verify_idle"], r["verify_during_activation"], r["verify_during_reembed_phase"]
    loaded = load.get("reembed_utterances_per_s")
    c1 = r["embed_rpc"]["concurrency_1_mean_per_s"]
    before, after = e1["throughput_per_s"], e1b["throughput_per_s"]
    print(f"Embed RPC             {c1:7.1f} utterances/s (concurrency 1: {before:.1f} before, {after:.1f} after)")
    print(f"                      {e8['throughput_per_s']:7.1f} utterances/s (concurrency 8)")
    print(f"re-embed, no traffic  {idle['reembed_utterances_per_s']:7.1f} utterances/s")
    print(f"ratio                 {r['throughput_ratio_c1']:.2f} at concurrency 1 (target >= 0.8)")
    print(f"                      {r['throughput_ratio_c8']:.2f} at concurrency 8")
    for label, v in (("verify idle", vi), ("during activation", va), ("  re-embed phase", vr)):
        print(f"{label:<22}p50 {v['p50_ms']:7.1f} ms   p99 {v['p99_ms']:7.1f} ms   ({v['requests']} requests)")
    ratios = f"{r['p99_ratio_activation']:.2f} (activation), {r['p99_ratio_reembed_phase']:.2f} (re-embed phase)"
    print(f"p99 ratio             {ratios}   (target <= 2)")
    print(f"re-embed under load   {loaded if loaded is None else round(loaded, 1)} utterances/s, {load['state']}")
    print(f"load average (1 min)  {r['machine']['load_average_1m']}")


if __name__ == "__main__":
    main()

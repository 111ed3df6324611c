"""Running jobs: a queue, one job per device slot, subprocesses watched from one thread.

Every job runs as a subprocess started from the supervisor's own thread, which lives as long as
the gateway: the child is started with ``PR_SET_PDEATHSIG`` = SIGKILL, which Linux delivers when
the *thread* that forked it ends, so a gateway that dies (even by SIGKILL) takes its jobs with it
instead of leaving orphans that a restarted gateway would run a second time. Each child is the
leader of its own process group, so a cancel reaches torchrun's workers too.

Restart (:meth:`JobSupervisor.recover`): a training job that was running is queued again and
``toitsu train`` resumes it from its run folder's last checkpoint; an export job that was running
is marked succeeded if the version it was publishing exists (its card names the run), and queued
again otherwise (export stages into a hidden folder and publishes with one rename, so a killed
export left nothing half-published). Queued jobs stay queued, in order.

Progress: a training run appends one line per log step to ``run/metrics.jsonl`` (step, loss, lr,
items/s); each new line becomes one job event, with the ETA from the run's steps/s.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from contracts.card import CardError, load_card
from contracts.card_sections import TrainingProvenance
from serving.config import JobsSection
from serving.errors import Overloaded
from serving.jobs import commands
from serving.jobs.store import JobRecord, JobStore, Prepare

log = logging.getLogger("toitsu.jobs")
SUBPROCESS_KINDS = frozenset({"train", "export"})  # the others (activate, rollback) run in the gateway
Settle = Callable[[JobRecord], tuple[str, str]]  # a job running at a crash → (state, message)
_PR_SET_PDEATHSIG = 1


def _die_with_parent_thread() -> None:  # runs in the child between fork and exec
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def device_slots(setting: str) -> list[str]:
    """``auto``: each GPU ``nvidia-smi -L`` lists (a CUDA_VISIBLE_DEVICES value each), else ``cpu``."""
    if setting != "auto":
        return [s.strip() for s in setting.split(",") if s.strip()] or ["cpu"]
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
            gpus = [str(i) for i, line in enumerate(listed.splitlines()) if line.startswith("GPU ")]
            if gpus:
                return gpus
        except (OSError, subprocess.TimeoutExpired):
            pass
    return ["cpu"]


@dataclass
class _Running:
    job_id: str
    slot: str
    process: subprocess.Popen[bytes]
    log_file: IO[bytes]
    metrics_lines: list[bytes] = field(default_factory=list)  # run/metrics.jsonl's complete lines, as read
    metrics_size: int = -1
    resuming: bool = False  # a later attempt: say where it resumed once its first new line comes
    cancel_at: float = 0.0  # when SIGTERM was sent (0: not cancelling)


class JobSupervisor:
    """Owns ``var/jobs``: accepts jobs, runs them on free slots, records their events."""

    def __init__(self, root: Path, config: JobsSection, models_dir: Path, settle: Settle | None = None) -> None:
        self.config, self.models_dir, self.settle = config, Path(models_dir).resolve(), settle
        self.store = JobStore(root)
        self.slots = device_slots(config.devices)
        self._running: dict[str, _Running] = {}
        self._cancel: set[str] = set()
        self.cancel_requested: set[str] = set()  # in-process jobs (activations) poll this
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the RPCs' side ----------------------------------------------------------------------------
    def submit(self, kind: str, prepare: Prepare | None = None, **fields: Any) -> JobRecord:
        """Queue a job (RESOURCE_EXHAUSTED past ``max_queued`` waiting jobs)."""
        with self.store.changed:
            waiting = sum(1 for job in self.store.jobs() if job.state == "queued")
            if waiting >= self.config.max_queued:
                raise Overloaded(
                    f"{waiting} jobs are already queued (jobs.max_queued = {self.config.max_queued}); "
                    "retry when one has started"
                )
            job = self.store.create(kind, prepare, **fields)
        self._wake.set()
        return job

    def cancel(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job is not None and job.kind not in SUBPROCESS_KINDS:
            self.cancel_requested.add(job_id)  # the gateway's own work stops at its next check
            return
        self._cancel.add(job_id)
        self._wake.set()

    def queue_position(self, job: JobRecord) -> int:
        queued = [j.id for j in self.store.jobs() if j.state == "queued"]
        return queued.index(job.id) + 1 if job.id in queued else 0

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="jobs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the children (their jobs stay ``running`` and resume at the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def recover(self) -> None:
        for job in self.store.jobs():
            if job.state != "running":
                continue
            if job.kind not in SUBPROCESS_KINDS:  # the gateway's own work (an activation) died with it
                state, message = self.settle(job) if self.settle else ("failed", "interrupted by a gateway restart")
                self.store.update(
                    job.id, message, state=state, error="" if state == "succeeded" else message, finished_at=time.time()
                )
                continue
            if job.kind == "export":
                published = self._published_by(job)
                if published is not None:
                    self.store.update(
                        job.id,
                        f"published {published[0]} v{published[1]} before the gateway restarted",
                        state="succeeded",
                        model_name=published[0],
                        model_version=published[1],
                        finished_at=time.time(),
                    )
                    continue
            self.store.update(
                job.id,
                "the gateway restarted while this job ran: queued again"
                + (", it resumes from its last checkpoint" if job.kind == "train" else ""),
                state="queued",
            )

    # -- the supervisor thread -------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # one bad job must not stop the others being watched
                log.exception("job supervisor")
            self._wake.wait(self.config.poll_seconds)
            self._wake.clear()
        for running in list(self._running.values()):
            self._signal(running, signal.SIGKILL)
            running.process.wait()
            running.log_file.close()
            self.store.update(running.job_id, "interrupted: the gateway is shutting down; it resumes at the next start")

    def _tick(self) -> None:
        for job_id in list(self._cancel):
            self._cancel.discard(job_id)
            job = self.store.get(job_id)
            if job is None or job.finished:
                continue
            if job_id in self._running:
                running = self._running[job_id]
                if not running.cancel_at:
                    running.cancel_at = time.time()
                    self._signal(running, signal.SIGTERM)
            else:
                self.store.update(job_id, "cancelled before it started", state="cancelled", finished_at=time.time())
        for running in list(self._running.values()):
            self._watch(running)
        busy = {r.slot for r in self._running.values()}
        for job in self.store.jobs():
            free = [s for s in self.slots if s not in busy]
            if not free:
                break
            if job.state == "queued" and job.kind in SUBPROCESS_KINDS:
                self._launch(job, free[0])
                busy.add(free[0])

    def _launch(self, job: JobRecord, slot: str) -> None:
        folder = self.store.folder(job.id)
        run_dir = Path(job.run_dir)
        if job.kind == "train":
            argv = commands.train_argv(folder / job.recipe, job.overrides, run_dir, job.processes)
        else:
            argv = commands.export_argv(
                run_dir, self.models_dir, Path(self.config.work).resolve(), folder / "result.json", job.export_name
            )
            (folder / "result.json").unlink(missing_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if slot != "cpu":
            env["CUDA_VISIBLE_DEVICES"] = slot
        log_file = open(folder / "log.txt", "ab")
        log_file.write(f"\n== attempt {job.attempts + 1}: {' '.join(argv)}\n".encode())
        log_file.flush()
        process = subprocess.Popen(
            argv,
            cwd=self.config.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent_thread,
        )
        old_lines = _complete_lines(run_dir / "metrics.jsonl")
        self._running[job.id] = _Running(job.id, slot, process, log_file, old_lines, resuming=bool(old_lines))
        extra: dict[str, Any] = {}
        if job.kind == "export":
            extra["published_before"] = [list(p) for p in self._versions_of_run(run_dir)]
        self.store.update(
            job.id,
            f"started on {slot} (pid {process.pid})",
            state="running",
            started_at=time.time(),
            attempts=job.attempts + 1,
            **extra,
        )

    def _watch(self, running: _Running) -> None:
        job = self.store.get(running.job_id)
        assert job is not None
        if job.kind == "train":
            self._read_progress(running, job)
        code = running.process.poll()
        if code is None:
            if running.cancel_at and time.time() - running.cancel_at > self.config.cancel_grace_seconds:
                self._signal(running, signal.SIGKILL)
            return
        running.log_file.close()
        del self._running[running.job_id]
        now = time.time()
        if running.cancel_at:
            self.store.update(job.id, "cancelled", state="cancelled", finished_at=now)
        elif code != 0:
            reason = self._failure(job, code)
            self.store.update(job.id, f"failed: {reason}", state="failed", error=reason, finished_at=now)
        elif job.kind == "train":
            metrics = commands.run_metrics(Path(job.run_dir))
            self.store.update(job.id, "succeeded", state="succeeded", metrics=metrics, eta_seconds=0.0, finished_at=now)
        else:
            result = json.loads((self.store.folder(job.id) / "result.json").read_text())
            self.store.update(
                job.id,
                f"published {result['name']} v{result['version']}",
                state="succeeded",
                model_name=result["name"],
                model_version=int(result["version"]),
                finished_at=now,
            )

    def _read_progress(self, running: _Running, job: JobRecord) -> None:
        """New lines of ``run/metrics.jsonl`` → one event each.

        A resumed run first cuts the file back to its checkpoint's step (in place; nothing to cut
        when it was killed right after a checkpoint), then appends. Lines the file still shares
        with what was read before are old; the first line that differs starts the new ones, so
        a cut back is seen however many lines followed it, and the line before the new ones is
        the checkpoint's."""
        path = Path(job.run_dir) / "metrics.jsonl"
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if size == running.metrics_size:
            return
        running.metrics_size = size
        lines, old = _complete_lines(path), running.metrics_lines
        common = 0
        while common < min(len(lines), len(old)) and lines[common] == old[common]:
            common += 1
        running.metrics_lines = lines
        if running.resuming and len(lines) > common:
            running.resuming = False
            back = int(json.loads(lines[common - 1]).get("step", 0)) if common else 0
            job = self.store.update(job.id, f"resumed from the checkpoint at step {back}", step=back)
        for raw in lines[common:]:
            try:
                row = json.loads(raw)
            except ValueError:
                continue
            step, timing = int(row.get("step", 0)), row.get("time", {}) or {}
            rate = float(timing.get("steps_per_s", 0.0) or 0.0)
            eta = (job.total_steps - step) / rate if rate > 0 and job.total_steps else 0.0
            job = self.store.update(
                job.id,
                f"step {step}/{job.total_steps} loss {float(row.get('loss', 0.0)):.4f}",
                step=step,
                loss=float(row.get("loss", 0.0)),
                lr=float(row.get("lr", 0.0)),
                items_per_second=float(timing.get("items_per_s", 0.0) or 0.0),
                eta_seconds=max(0.0, eta),
            )

    def _failure(self, job: JobRecord, code: int) -> str:
        tail = (self.store.folder(job.id) / "log.txt").read_bytes()[-4000:].decode(errors="replace").splitlines()
        said = next((line for line in reversed(tail) if line.startswith("error:")), "")
        if job.kind == "export" and code == commands.PARITY_EXIT:
            return f"parity check failed, nothing was published: {said.removeprefix('error: ')}"
        return f"exit status {code}" + (f": {said.removeprefix('error: ')}" if said else f" (see {job.id}/log.txt)")

    @staticmethod
    def _signal(running: _Running, sig: int) -> None:
        try:
            os.killpg(running.process.pid, sig)
        except ProcessLookupError:
            pass

    # -- exports and the model repository -------------------------------------------------------------
    def _versions_of_run(self, run_dir: Path) -> set[tuple[str, int]]:
        """(name, version) of every published version whose card says it was trained in ``run_dir``."""
        found: set[tuple[str, int]] = set()
        target = str(Path(run_dir).resolve())
        for card_path in self.models_dir.glob("*/*/card.json"):
            try:
                card = load_card(card_path.parent)
            except (CardError, OSError, ValueError):
                continue
            prov = card.provenance
            if isinstance(prov, TrainingProvenance) and str(Path(prov.run).resolve()) == target:
                found.add((card.name, card.version))
        return found

    def _published_by(self, job: JobRecord) -> tuple[str, int] | None:
        before = {(str(n), int(v)) for n, v in job.published_before}
        new = sorted(self._versions_of_run(Path(job.run_dir)) - before)
        return new[-1] if new else None


def _complete_lines(path: Path) -> list[bytes]:
    """A JSON-lines file's complete lines (one still being written is left for the next read)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return data.split(b"\n")[:-1]

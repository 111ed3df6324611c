"""Persisted jobs: one folder per job under ``var/jobs/``, its history an append-only event log.

``var/jobs/<id>/events.jsonl`` holds one JSON line per event: ``{"sequence", "at", "message",
"job"}``, where ``job`` is the whole :class:`JobRecord` as it was after the event. The last line
is therefore the job's state, and the log is the only file that must survive a crash: each line
is written with one ``write`` and fsynced before the event is announced, so a SIGKILL leaves the
log ending at the last complete line (a torn last line, from a kill inside ``write``, is cut off
when the log is read again). The same folder keeps ``recipe.yaml``, ``log.txt`` (the job's
stdout and stderr) and, for training, the run folder ``run/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
Prepare = Callable[[Path], "dict[str, Any] | None"]  # writes a job's inputs into its new folder


@dataclass
class JobRecord:
    """One job as persisted (states: queued, running, succeeded, failed, cancelled)."""

    id: str
    kind: str  # "train" or "export"
    state: str = "queued"
    name: str = ""
    recipe_kind: str = ""
    recipe: str = ""  # TRAIN: the recipe file the job trains (inside the job folder)
    overrides: list[str] = field(default_factory=list)
    processes: int = 1
    run_dir: str = ""
    export_name: str = ""
    step: int = 0
    total_steps: int = 0
    loss: float = 0.0
    lr: float = 0.0
    items_per_second: float = 0.0
    eta_seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    attempts: int = 0
    model_name: str = ""  # EXPORT: what it published
    model_version: int = 0
    source_job: str = ""
    modality: str = ""  # ACTIVATE / ROLLBACK: the modality; model_name / model_version are then the target
    error_code: str = ""  # the gRPC status name of an in-process job's failure (FAILED_PRECONDITION, …)
    published_before: list[list[Any]] = field(
        default_factory=list
    )  # EXPORT: (name, version) of this run's earlier exports

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class JobEvent:
    sequence: int
    at: float
    message: str
    job: JobRecord


class JobLog:
    """The event log of one job; appends are serialised by the owning :class:`JobStore`."""

    def __init__(self, folder: Path, events: list[JobEvent]) -> None:
        self.folder, self.events = folder, events

    @property
    def job(self) -> JobRecord:
        return self.events[-1].job

    def append(self, message: str, job: JobRecord) -> JobEvent:
        event = JobEvent(len(self.events) + 1, time.time(), message, dataclasses.replace(job))
        line = json.dumps({"sequence": event.sequence, "at": event.at, "message": message, "job": job.to_json()})
        fd = os.open(self.folder / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.events.append(event)
        return event


def read_events(path: Path) -> list[JobEvent]:
    """Every complete event of a log; a torn last line (a kill inside ``write``) is cut off."""
    data = path.read_bytes() if path.exists() else b""
    events, good = [], 0
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break
        try:
            item = json.loads(raw)
            events.append(
                JobEvent(
                    int(item["sequence"]), float(item["at"]), str(item["message"]), JobRecord.from_json(item["job"])
                )
            )
        except (ValueError, KeyError, TypeError):
            break
        good += len(raw)
    if good < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(good)
    return events


class JobStore:
    """Every job under ``root``, in memory and on disk. Thread-safe; a condition announces events."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.changed = threading.Condition()
        self._logs: dict[str, JobLog] = {}
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if folder.name.startswith(".staging-"):  # a request checked when the gateway died
                shutil.rmtree(folder, ignore_errors=True)
                continue
            events = read_events(folder / EVENTS_FILE)
            if events:
                self._logs[folder.name] = JobLog(folder, events)
            else:  # being created when the gateway died: never acknowledged (the reply needs the first event)
                shutil.rmtree(folder, ignore_errors=True)

    def create(self, kind: str, prepare: Prepare | None = None, **fields: Any) -> JobRecord:
        """A new queued job, acknowledged once its first event is on disk. ``prepare(folder)``
        writes the job's inputs (its recipe) before that, and may return more fields (a dict)."""
        with self.changed:
            number = 1 + max((int(i.split("-", 1)[0]) for i in self._logs if i.split("-", 1)[0].isdigit()), default=0)
            job_id = f"{number:04d}-{kind}"
            folder = self.root / job_id
            folder.mkdir()
            if prepare is not None:
                fields.update(prepare(folder) or {})
            job = JobRecord(id=job_id, kind=kind, created_at=time.time(), **fields)
            log = JobLog(folder, [])
            log.append("queued", job)
            self._logs[job_id] = log
            self.changed.notify_all()
            return dataclasses.replace(job)

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def get(self, job_id: str) -> JobRecord | None:
        with self.changed:
            log = self._logs.get(job_id)
            return dataclasses.replace(log.job) if log else None

    def jobs(self) -> list[JobRecord]:
        with self.changed:
            return [dataclasses.replace(log.job) for _, log in sorted(self._logs.items())]

    def update(self, job_id: str, message: str, **changes: Any) -> JobRecord:
        """Apply ``changes`` to the job and record them as one event."""
        with self.changed:
            log = self._logs[job_id]
            job = dataclasses.replace(log.job, **changes)
            log.append(message, job)
            self.changed.notify_all()
            return dataclasses.replace(job)

    def events_after(self, job_id: str, sequence: int) -> list[JobEvent]:
        with self.changed:
            return list(self._logs[job_id].events[max(0, sequence) :])

    def follow(self, job_id: str, after: int, stop: threading.Event, poll: float = 0.5) -> Iterator[JobEvent]:
        """Events with sequence > ``after``, live until the job is finished or ``stop`` is set."""
        seen = after
        while True:
            with self.changed:
                log = self._logs[job_id]
                fresh = log.events[max(0, seen) :]
                if not fresh and not log.job.finished and not stop.is_set():
                    self.changed.wait(poll)
                    fresh = log.events[max(0, seen) :]
                finished = log.job.finished
            for event in fresh:
                seen = event.sequence
                yield event
            if (finished and seen >= len(self._logs[job_id].events)) or stop.is_set():
                return


def flatten_numbers(value: object, prefix: str = "") -> dict[str, float]:
    """The numbers of a nested JSON value under dotted keys (job metrics): ``{"a": {"b": 1}}`` →
    ``{"a.b": 1.0}``; booleans, strings and lists are left out."""
    flat: dict[str, float] = {}
    if isinstance(value, bool):
        return flat
    if isinstance(value, (int, float)):
        flat[prefix] = float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            flat.update(flatten_numbers(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat

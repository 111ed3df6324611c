"""Scheduled gallery backups, their retention, and the newest backup's age as a gauge (issue 19).

With ``backups.interval_seconds`` > 0 the gateway backs up every loaded modality whose newest
usable backup under ``paths.backups`` is that old (manual ``toitsu gallery backup`` ones into
``paths.backups`` count too), into ``paths.backups/scheduled-<UTC time>/<modality>/`` — the same
online backup as the Backup RPC (:func:`serving.gallery.backup.take`). Due times come from the
backups on disk, not from when the gateway started, so a gateway restarted more often than the
interval still backs up. Each new backup is verified (every checksum, SQLite's integrity check of
its stores) before anything is pruned (a failed one prunes nothing); then, for that modality
only, scheduled backups beyond the newest ``keep`` or older than ``max_age_seconds`` are deleted.
Only ``scheduled-*`` folders are ever pruned (a manual backup is the operator's to delete), and a
folder whose manifest does not read is left alone (it is no backup, and may be evidence of what
went wrong).

Why a thread of the gateway and not a ModelService job: a job is a subprocess, and the online
backup needs the gateway's own open store connection (the gallery folder is locked by the
gateway); a job would also queue for a device slot behind training. The thread only reads the
store (one read snapshot, writers go on), so serving is not blocked.

``toitsu_gallery_backup_age_seconds{modality}``: seconds since the newest usable backup under
``paths.backups`` was created; ``+Inf`` while there is none (no ``paths.backups``, nothing there
yet, or none passing its checks), so an alert on the age fires for a missing backup as for a
stale one. It appears once the start-up scan of ``paths.backups`` has run.
"""

from __future__ import annotations

import functools
import logging
import math
import shutil
import threading
import time
from pathlib import Path
from typing import Protocol

from serving.config import Config
from serving.errors import Unavailable
from serving.gallery import backup
from serving.loader import enabled_modalities, gallery_root
from serving.metrics import Metrics
from serving.modality import AudioModality, FaceModality

log = logging.getLogger("toitsu.backups")

PREFIX = "scheduled-"
_POLL_SECONDS = 1.0  # how often due times are looked at (a modality may finish loading any time)
_RETRY_SECONDS = 60.0  # after a failed scheduled backup, the next try (at most one interval later)


class Runtime(Protocol):
    config: Config

    def modality(self, name: str) -> AudioModality | FaceModality:
        """The loaded modality, or Unavailable saying why it is not (yet)."""
        ...


class BackupScheduler:
    """The gateway's backup thread; also the record of each modality's newest backup (the gauge)."""

    def __init__(self, runtime: Runtime, metrics: Metrics) -> None:
        self._runtime, self._metrics = runtime, metrics
        self._config = runtime.config
        self._newest: dict[str, float] = {}  # modality → created_at of its newest usable backup
        self._retry_at: dict[str, float] = {}  # modality → when to try again after a failure
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def folder(self) -> Path | None:
        return Path(self._config.paths.backups) if self._config.paths.backups else None

    def start(self) -> None:
        """Scan ``paths.backups`` (the gauge), then, if an interval is set, back up when due."""
        self._thread = threading.Thread(target=self._run, name="backups", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def record(self, summary: backup.Summary) -> None:
        """A backup was taken (scheduled, or by the Backup RPC): the gauge counts it if it is under
        ``paths.backups``, where Verify and the start-up check look for backups."""
        folder = self.folder
        if folder is None or not Path(summary.path).resolve().is_relative_to(folder.resolve()):
            return
        with self._lock:
            self._newest[summary.modality] = max(self._newest.get(summary.modality, 0.0), summary.created_at)

    def age(self, modality: str) -> float:
        with self._lock:
            created = self._newest.get(modality)
        return math.inf if created is None else max(0.0, time.time() - created)

    # --- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        folder, names = self.folder, enabled_modalities(self._config)
        for name in names:
            newest = backup.newest_usable(folder, name) if folder is not None else None
            if newest is not None:
                self.record(newest)
            self._metrics.backup_age.labels(name).set_function(functools.partial(self.age, name))
        interval = self._config.backups.interval_seconds
        if interval <= 0 or folder is None:  # load_config refuses an interval without paths.backups
            return
        log.info("scheduled backups every %g s into %s", interval, folder)
        while not self._stop.wait(min(_POLL_SECONDS, interval)):
            now = time.monotonic()
            due = [n for n in names if self.age(n) >= interval and self._retry_at.get(n, 0.0) <= now]
            if due:
                try:
                    self.run_once(due)
                except Exception:  # never the end of scheduled backups
                    log.exception("scheduled backups: unexpected failure; going on")

    def run_once(self, names: list[str]) -> list[backup.Summary]:
        """Back the loaded ones of ``names`` up into a new ``scheduled-*`` folder, verify, prune."""
        assert self.folder is not None
        dest = self.folder / (PREFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
        if dest.exists():  # two runs in one second (a short interval): never into an existing folder
            dest = dest.with_name(f"{dest.name}-{time.time_ns() % 1_000_000_000:09d}")
        done = []
        for name in names:
            try:
                modality = self._runtime.modality(name)
            except Unavailable:  # still loading, or failed to load: its age says so
                continue
            try:
                taken = self._take(name, modality, dest)
            except Exception as exc:  # anything: the thread must go on backing up (and say so)
                self._metrics.backup_failures.labels(name).inc()
                self._retry_at[name] = time.monotonic() + min(_RETRY_SECONDS, self._config.backups.interval_seconds)
                log.error("%s: the scheduled backup into %s failed: %s", name, dest, exc)
                continue
            self.record(taken)
            done.append(taken)
            log.info("%s: scheduled backup %s, %d identities, verified", name, taken.path, taken.identities)
            try:
                self._prune(name, Path(taken.path))
            except OSError as exc:
                log.error("%s: pruning old scheduled backups failed: %s", name, exc)
        if dest.is_dir() and not any(dest.iterdir()):  # every backup in it failed
            dest.rmdir()
        return done

    def _take(self, name: str, modality: AudioModality | FaceModality, dest: Path) -> backup.Summary:
        """One verified backup; one that fails its verification is set aside as ``.unverified-*``
        (no longer a backup, kept to look at) and raised."""
        taken = backup.take(modality.gallery, gallery_root(self._config, name), dest, name)
        try:
            backup.verify(Path(taken.path))
        except backup.BackupError:
            Path(taken.path).rename(Path(taken.path).with_name(f".unverified-{name}"))
            raise
        return taken

    def _prune(self, name: str, kept: Path) -> None:
        """Retention for ``name``'s scheduled backups, once ``kept`` (the newest) verified."""
        keep, max_age = self._config.backups.keep, self._config.backups.max_age_seconds
        assert self.folder is not None
        now = time.time()
        ranked = [
            (created, path) for created, path in backup.listed(self.folder, name) if path.parent.name.startswith(PREFIX)
        ]
        for rank, (created, path) in enumerate(ranked):
            retained = (keep == 0 or rank < keep) and (max_age == 0 or now - created <= max_age)
            if retained or path.resolve() == kept.resolve():
                continue
            trash = path.with_name(f".pruned-{name}")  # one rename: a half-deleted folder is never a backup
            shutil.rmtree(trash, ignore_errors=True)
            path.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
            log.info("%s: pruned the scheduled backup %s", name, path)
            try:
                path.parent.rmdir()  # the scheduled folder, once no modality is left in it
            except OSError:
                pass

"""Replicas: a gallery whose store other gateways write too (``backend = "postgres"``) keeps its
in-process index current by polling the store's change log.

How a replica learns of another's enrollment: every ``gallery.follow_interval_ms`` a worker
thread reads ``MAX(seq)`` of ``changes`` (one index lookup); when it moved past what the index
has applied, it reads the identities changed since and applies their templates (or their
removal). Polling rather than LISTEN/NOTIFY: the change log is already the ordered record the
index replays at start, a poll needs no connection held open for notifications (and loses
nothing across a reconnect, where a notification sent meanwhile would be lost), and it bounds the
delay simply: an acknowledged enrollment is in every replica's index within one interval plus the
time to apply it. Sequence numbers commit in order, because every writer of a gallery holds its
advisory lock from its first insert to its commit (:mod:`serving.gallery.postgres_store`), so
"every change after the last one applied" never skips one committed late.

Verify, Info and List read the store itself: they see an acknowledged change at once.
"""

from __future__ import annotations

import logging
import threading

from serving.gallery.keeper import IndexKeeper

log = logging.getLogger(__name__)


class Follower:
    """The polling worker of one gallery; :meth:`stop` ends it."""

    def __init__(self, keeper: IndexKeeper, interval_s: float, name: str) -> None:
        self._keeper, self._interval = keeper, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"gallery-follow-{name}", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._keeper.writing():
                    applied = self._keeper.catch_up()
                if applied:
                    self._keeper.after_write()
                if self._failing:
                    log.info("gallery index %s: following the change log again", self._thread.name)
                self._failing = False
            except Exception as exc:  # the database away for a while: keep trying, say so once
                if not self._failing:
                    log.warning("gallery index %s: cannot read the change log (%s); retrying", self._thread.name, exc)
                self._failing = True

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

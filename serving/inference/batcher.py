"""Per-model micro-batching: concurrent requests are grouped into one inference call.

A bounded queue (full → RESOURCE_EXHAUSTED), at most ``max_batch`` items per call, and at most
``max_wait`` seconds spent waiting for companions after the first item arrives — Triton's
dynamic batching, for the embedded backend too. Items are variable-length waveforms; a batch is
split where padding would more than ``max_padding`` the real work, and the model's ``lengths``
input makes padding harmless to the embeddings (see ``training/models/ge2e.py``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import numpy as np

from serving.errors import DeadlineExceeded, Overloaded, Unavailable

RunBatch = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class BatchingConfig:
    max_batch: int = 8
    max_wait_ms: float = 2.0
    queue_size: int = 256
    max_padding: float = 1.5  # split a batch when padded samples exceed 1.5 × real samples
    workers: int = 0  # batches in flight at once (each one inference call); 0 = one per core, at most 4


@dataclass
class _Item:
    samples: np.ndarray
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """``submit`` blocks the calling (gRPC worker) thread until its row of the batch is ready."""

    def __init__(
        self,
        name: str,
        run: RunBatch,
        config: BatchingConfig = BatchingConfig(),
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.name, self._run, self.config = name, run, config
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=config.queue_size)
        self._on_batch = on_batch or (lambda size, depth: None)
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> None:
        for n in range(self.config.workers or 1):
            thread = threading.Thread(target=self._loop, name=f"batcher-{self.name}-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Finish what is queued, then end the workers."""
        self._stopping.set()
        if self._threads:
            self._queue.put(None)  # each worker puts the sentinel back for the next one
            for thread in self._threads:
                thread.join(timeout=30)

    def depth(self) -> int:
        return self._queue.qsize()

    def submit_future(self, samples: np.ndarray) -> Future:
        """Queue one item; its future resolves to that item's output row."""
        if self._stopping.is_set():
            raise Unavailable(f"model {self.name!r} is shutting down")
        item = _Item(samples)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            raise Overloaded(f"model {self.name!r} has {self.config.queue_size} requests queued; retry later") from None
        return item.future

    def submit(self, samples: np.ndarray, timeout: float | None = None) -> np.ndarray:
        return wait(self.submit_future(samples), timeout, self.name)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.put(None)
                return
            items = self._collect(first)
            for group in split_by_padding(items, self.config.max_padding):
                self._execute(group)

    def _collect(self, first: _Item) -> list[_Item]:
        items, deadline = [first], time.monotonic() + self.config.max_wait_ms / 1000.0
        while len(items) < self.config.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # stop() sentinel: put it back for the outer loop
                self._queue.put(None)
                break
            items.append(item)
        return [i for i in items if i.future.set_running_or_notify_cancel()]

    def _execute(self, group: list[_Item]) -> None:
        if not group:
            return
        self._on_batch(len(group), self._queue.qsize())
        try:
            output = self._run([i.samples for i in group])
        except BaseException as exc:  # every waiter gets the error; the worker lives on
            for item in group:
                item.future.set_exception(exc)
            return
        for row, item in enumerate(group):
            item.future.set_result(output[row])


def wait(future: Future, timeout: float | None, model: str) -> np.ndarray:
    """A queued item's result, or DeadlineExceeded (and the item cancelled) after ``timeout``."""
    try:
        return future.result(timeout=timeout)
    except FutureTimeout:
        future.cancel()  # the worker skips it if it has not started
        raise DeadlineExceeded(f"deadline passed while waiting for model {model!r}") from None


def split_by_padding(items: list[_Item], max_padding: float) -> list[list[_Item]]:
    """Sort by length and cut where the padded size would exceed ``max_padding`` × the real size."""
    ordered = sorted(items, key=lambda i: len(i.samples))
    groups: list[list[_Item]] = []
    for item in ordered:
        group = groups[-1] if groups else None
        if group is not None:
            real = sum(len(i.samples) for i in group) + len(item.samples)
            padded = len(item.samples) * (len(group) + 1)
            if padded <= max_padding * real:
                group.append(item)
                continue
        groups.append([item])
    return groups

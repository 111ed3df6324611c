"""Micro-batching: concurrent requests share inference calls; limits give the right errors."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serving.errors import DeadlineExceeded, Overloaded
from serving.inference.batcher import BatchingConfig, MicroBatcher, _Item, split_by_padding


class Recorder:
    """A fake model: row i of the output is [len(clip i), sum(clip i)]; records batch sizes."""

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None) -> None:
        self.sizes: list[int] = []
        self.delay, self.gate = delay, gate

    def __call__(self, clips):
        if self.gate is not None:
            self.gate.wait(5)
        time.sleep(self.delay)
        self.sizes.append(len(clips))
        return np.array([[len(c), float(np.sum(c))] for c in clips])


def test_concurrent_requests_are_batched_and_each_gets_its_own_row():
    model = Recorder(delay=0.01)
    batcher = MicroBatcher("toy", model, BatchingConfig(max_batch=8, max_wait_ms=20, max_padding=10))
    batcher.start()
    clips = [np.full(100 + i, i, dtype=np.float32) for i in range(32)]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda c: batcher.submit(c, timeout=5), clips))
    batcher.stop()
    for clip, row in zip(clips, results):
        assert row[0] == len(clip) and row[1] == clip.sum()
    assert sum(model.sizes) == 32 and max(model.sizes) > 1 and max(model.sizes) <= 8


def test_full_queue_is_resource_exhausted_and_deadline_is_deadline_exceeded():
    gate = threading.Event()
    batcher = MicroBatcher("toy", Recorder(gate=gate), BatchingConfig(max_batch=1, max_wait_ms=0, queue_size=2))
    batcher.start()
    first = batcher.submit_future(np.zeros(10))  # taken by the worker, which blocks on the gate
    time.sleep(0.1)
    batcher.submit_future(np.zeros(10))
    batcher.submit_future(np.zeros(10))
    with pytest.raises(Overloaded, match="2 requests queued"):
        batcher.submit(np.zeros(10))
    gate.set()
    assert first.result(timeout=5)[0] == 10
    batcher.stop()


def test_a_request_past_its_deadline_is_cancelled():
    slow = MicroBatcher("slow", Recorder(delay=0.3), BatchingConfig(max_batch=1, max_wait_ms=0))
    slow.start()
    blocker = slow.submit_future(np.zeros(10))
    with pytest.raises(DeadlineExceeded, match="deadline passed"):
        slow.submit(np.zeros(10), timeout=0.05)
    blocker.result(timeout=5)
    slow.stop()


def test_model_errors_reach_every_waiter_and_the_worker_survives():
    calls = []

    def flaky(clips):
        calls.append(len(clips))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return np.zeros((len(clips), 2))

    batcher = MicroBatcher("flaky", flaky, BatchingConfig(max_wait_ms=0))
    batcher.start()
    with pytest.raises(RuntimeError, match="boom"):
        batcher.submit(np.zeros(5), timeout=5)
    assert batcher.submit(np.zeros(5), timeout=5).shape == (2,)
    batcher.stop()


def test_split_by_padding_bounds_wasted_work():
    items = [_Item(np.zeros(n)) for n in (100, 5000, 110, 4000, 120)]
    groups = split_by_padding(items, max_padding=1.5)
    assert [[len(i.samples) for i in g] for g in groups] == [[100, 110, 120], [4000, 5000]]

"""One torch thread for these tiny models: on a shared 2-core machine a second intra-op thread
makes a 64-wide MLP step tens of times slower, and buys nothing at this size."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Parity between a torch module and its ONNX export (and against third-party references).

Export fails when parity fails: a model whose ONNX graph computes something else than the
trained module must never reach the model repository.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from contracts.card_sections import ParityCheck


class ParityError(RuntimeError):
    """The exported graph disagrees with its reference beyond tolerance."""


@dataclass(frozen=True)
class Parity:
    """Worst case over ``cases`` inputs: max |a - b| and min cosine between rows of a and b."""

    check: str
    cases: int
    max_abs_diff: float
    min_cosine: float

    def to_dict(self) -> dict:
        return asdict(self)

    def card_check(self) -> ParityCheck:
        """The check as the card's ``parity.checks`` entry."""
        return ParityCheck(**self.to_dict())


def compare(check: str, pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> Parity:
    """Aggregate ``(reference, candidate)`` pairs of [N, D] (or [D]) arrays into one Parity."""
    worst_abs, worst_cos, cases = 0.0, 1.0, 0
    for ref, got in pairs:
        ref2, got2 = np.atleast_2d(ref).astype(np.float64), np.atleast_2d(got).astype(np.float64)
        if ref2.shape != got2.shape:
            raise ParityError(f"{check}: shapes differ, {ref2.shape} vs {got2.shape}")
        worst_abs = max(worst_abs, float(np.abs(ref2 - got2).max()))
        cos = (ref2 * got2).sum(1) / (np.linalg.norm(ref2, axis=1) * np.linalg.norm(got2, axis=1) + 1e-30)
        worst_cos = min(worst_cos, float(cos.min()))
        cases += 1
    if cases == 0:
        raise ParityError(f"{check}: no cases")
    return Parity(check, cases, worst_abs, worst_cos)


def require(parity: Parity, *, max_abs_diff: float | None = None, min_cosine: float | None = None) -> Parity:
    """Raise ParityError unless ``parity`` is within the given tolerances."""
    if max_abs_diff is not None and not parity.max_abs_diff <= max_abs_diff:
        raise ParityError(f"{parity.check}: max abs diff {parity.max_abs_diff:.3g} > {max_abs_diff:g}")
    if min_cosine is not None and not parity.min_cosine >= min_cosine:
        raise ParityError(f"{parity.check}: min cosine {parity.min_cosine:.6f} < {min_cosine:g}")
    return parity


def onnx_session(path: Path, threads: int = 0):
    """A CPU ONNX Runtime session (``threads=0`` lets ORT decide)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def torch_vs_onnx(
    check: str,
    module: Callable[..., torch.Tensor],
    onnx_path: Path,
    feeds: Iterable[Mapping[str, np.ndarray]],
) -> Parity:
    """Run the same named inputs through ``module`` (keyword order = graph input order) and ORT."""
    session = onnx_session(onnx_path)
    names = [i.name for i in session.get_inputs()]

    def pairs():
        for feed in feeds:
            with torch.no_grad():
                ref = module(*(torch.from_numpy(np.asarray(feed[n])) for n in names)).numpy()
            yield ref, session.run(None, {n: feed[n] for n in names})[0]

    return compare(check, pairs())

"""The merged procedural data of METHODS §7: several image groups, each with its own factors.

``GROUPS`` names each group's renderer, sampler and factor names; ``merged_groups`` draws
``per_group`` images of each (all RGB float32 [3, S, S] in [0, 1] at one size) and keeps the
group id hidden beside them (the model never reads it; the metrics do). ``factors`` is
[N, K_max] with −1 past a group's own factor count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.disentangle.mpi3d import Mpi3DFactors, render_mpi3d, sample_mpi3d
from training.disentangle.shapes3d import Shapes3DFactors, render_shapes3d, sample_shapes3d
from training.disentangle.sprites import SpriteFactors, render, sample_factors


@dataclass(frozen=True)
class Group:
    """One procedural group at image size ``size``: ``sample(count, seed)`` → factor rows,
    ``render(rows)`` → images."""

    name: str
    factor_names: tuple[str, ...]
    sample: Callable[[int, int], np.ndarray]
    render: Callable[[np.ndarray], np.ndarray]


def group(name: str, size: int = 32) -> Group:
    """The group ``name`` (``sprites``, ``shapes3d`` or ``mpi3d``) rendered at ``size``."""
    if name == "sprites":
        s = SpriteFactors(size=size)
        return Group(name, s.NAMES, lambda n, seed: sample_factors(n, s, seed), lambda f: render(f, s))
    if name == "shapes3d":
        t = Shapes3DFactors(size=size)
        return Group(name, t.NAMES, lambda n, seed: sample_shapes3d(n, t, seed), lambda f: render_shapes3d(f, t))
    if name == "mpi3d":
        m = Mpi3DFactors(size=size)
        return Group(name, m.NAMES, lambda n, seed: sample_mpi3d(n, m, seed), lambda f: render_mpi3d(f, m))
    raise ValueError(f"unknown group {name!r}; expected one of {', '.join(GROUPS)}")


GROUPS = ("sprites", "shapes3d", "mpi3d")


@dataclass(frozen=True)
class MergedImages:
    """``images`` float32 [N, 3, S, S]; ``groups`` int64 [N] (hidden ids, index into ``names``);
    ``factors`` int64 [N, K_max] (−1 past the row's group's own factors)."""

    images: np.ndarray
    groups: np.ndarray
    factors: np.ndarray
    names: tuple[str, ...]
    factor_names: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.groups)

    def take(self, index: np.ndarray | slice) -> MergedImages:
        return MergedImages(self.images[index], self.groups[index], self.factors[index], self.names, self.factor_names)

    def of_group(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        """(images, factors [n, K_g]) of group ``g``'s rows."""
        rows = self.groups == g
        return self.images[rows], self.factors[rows][:, : len(self.factor_names[g])]


def merge(parts: Sequence[tuple[str, tuple[str, ...], np.ndarray, np.ndarray]], seed: int = 0) -> MergedImages:
    """Shuffle (name, factor names, images, factor rows) parts into one ``MergedImages``."""
    widest = max(len(p[1]) for p in parts)
    images, groups, factors = [], [], []
    for g, (_, _, imgs, rows) in enumerate(parts):
        padded = np.full((len(rows), widest), -1, dtype=np.int64)
        padded[:, : rows.shape[1]] = rows
        images.append(imgs.astype(np.float32))
        groups.append(np.full(len(rows), g, dtype=np.int64))
        factors.append(padded)
    order = np.random.default_rng(seed).permutation(sum(len(g) for g in groups))
    return MergedImages(
        np.concatenate(images)[order],
        np.concatenate(groups)[order],
        np.concatenate(factors)[order],
        tuple(p[0] for p in parts),
        tuple(p[1] for p in parts),
    )


def merged_groups(
    names: Sequence[str] = GROUPS,
    per_group: int = 2000,
    size: int = 32,
    seed: int = 0,
    files: Mapping[str, str] | None = None,
) -> MergedImages:
    """``per_group`` images of each named group, factors drawn with ``seed``, shuffled together.

    ``files`` maps a group to its published file instead (``sprites``: the dSprites npz, coloured
    as Color-dSprites; ``mpi3d``: an MPI3D npz; ``training.disentangle.published``).
    """
    from training.disentangle import published

    files = files or {}
    parts = []
    for g, name in enumerate(names):
        if name in files:
            load = {"sprites": published.load_color_dsprites, "mpi3d": published.load_mpi3d}.get(name)
            if load is None:
                raise ValueError(f"no loader for a {name} file (3dshapes.h5 needs h5py, which is not installed)")
            parts.append(load(Path(files[name]), per_group, size, seed * 1000 + g))
            continue
        spec = group(name, size)
        rows = spec.sample(per_group, seed * 1000 + g)
        parts.append((name, spec.factor_names, spec.render(rows), rows))
    return merge(parts, seed)

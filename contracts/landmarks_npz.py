"""The landmark model's ``.npz`` (format 1): what ``export/importers/dlib_landmarks.py`` writes
and ``serving/vision/landmarks.py`` reads — dlib's ensemble of regression trees as plain arrays.

Arrays: ``initial_shape`` [P, 2] float32 (mean shape in the box's unit square), ``anchor_idx`` [C, F]
int32 and ``deltas`` [C, F, 2] float32 (feature pixels), ``split_idx`` [C, T, S, 2] int32,
``split_thresh`` [C, T, S] float32, ``leaf_values`` [C, T, S + 1, P, 2] float32; C cascades of T trees
with S splits each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NPZ_FORMAT = 1
ARRAYS: dict[str, type] = {
    "initial_shape": np.float32,
    "anchor_idx": np.int32,
    "deltas": np.float32,
    "split_idx": np.int32,
    "split_thresh": np.float32,
    "leaf_values": np.float32,
}


def write_landmarks_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    missing = set(ARRAYS) - set(arrays)
    if missing:
        raise ValueError(f"landmark model lacks {sorted(missing)}")
    np.savez(
        path,
        allow_pickle=False,  # plain numeric arrays only (the reader refuses pickles too)
        format=np.int32(NPZ_FORMAT),
        **{name: np.asarray(arrays[name], dtype=dtype) for name, dtype in ARRAYS.items()},
    )
    return Path(path)


def read_landmarks_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays, typed as above; a ValueError for another format or a missing array."""
    with np.load(path, allow_pickle=False) as z:
        version = int(z["format"]) if "format" in z.files else None
        if version != NPZ_FORMAT:
            raise ValueError(f"{path}: landmark model format {version}, this reader knows {NPZ_FORMAT}")
        missing = set(ARRAYS) - set(z.files)
        if missing:
            raise ValueError(f"{path}: landmark model lacks {sorted(missing)}")
        return {name: z[name].astype(dtype) for name, dtype in ARRAYS.items()}

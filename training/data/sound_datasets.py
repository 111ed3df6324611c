"""ESC-50 / ESC-10 and UrbanSound8K manifests with their predefined folds, from a local tree.

Nothing is downloaded (DESIGN §4): point the builders at an extracted copy. Layouts:

- ESC-50 (``ESC-50-master``): ``meta/esc50.csv`` with columns filename, fold, target,
  category, esc10, src_file, take, and ``audio/<filename>`` (5 s, 44.1 kHz mono, 5 folds).
  ESC-10 is the rows whose esc10 column is True (10 classes, same folds).
- UrbanSound8K: ``metadata/UrbanSound8K.csv`` with columns slice_file_name, fsID, start, end,
  salience, fold, classID, class, and ``audio/fold<k>/<slice_file_name>`` (≤ 4 s, mixed rates
  and channel counts, 10 folds).

Each record: identity = class name, duration from the file header, split ``fold<k>``, extras
``fold`` (int), ``label`` (int class index), ``dataset`` and the dataset's own clip fields.
Records are sorted by (fold, file name). The predefined folds keep clips cut from one source
recording in one fold, so cross-validation must use them (METHODS §4's protocol); a random
split would leak. training.data.few_shot draws k-shot training sets from them.
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from training.data.manifest import ManifestRecord, write_manifest

# Number of predefined folds per dataset; "synthetic" is sound_corpus's default n_folds.
FOLDS: dict[str, int] = {"esc50": 5, "esc10": 5, "urbansound8k": 10, "synthetic": 5}

ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
US8K_COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")


def _dataset_root(root: Path, folder: str, marker: str) -> Path:
    """``root`` itself if it holds ``marker``, else ``root/folder`` if that does."""
    for candidate in (root, root / folder):
        if (candidate / marker).is_file():
            return candidate
    raise FileNotFoundError(f"no {marker} under {root} or {root / folder}: expected the {folder} layout there")


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a metadata CSV as dicts; a ValueError names missing columns."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = sorted(set(columns) - set(reader.fieldnames or ()))
        if missing:
            raise ValueError(f"{path} lacks the columns {missing}; has {reader.fieldnames}")
        return list(reader)


def _int(row: dict[str, str], key: str, path: Path) -> int:
    try:
        return int(row[key])
    except ValueError:
        raise ValueError(f"{path}: column {key!r} is not an integer in row {row}") from None


def _durations(paths: list[Path], workers: int) -> list[float]:
    """Seconds from each file's header (FileNotFoundError listing missing files first)."""
    import soundfile as sf

    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} audio files named by the "
            f"metadata are missing; first: {', '.join(map(str, missing[:3]))}"
        )
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda p: float(sf.info(str(p)).duration), paths))


def _records(rows: list[tuple[Path, str, int, int, dict]], workers: int) -> list[ManifestRecord]:
    """Records from (path, class, fold, label, extra) tuples, sorted by (fold, file name)."""
    rows = sorted(rows, key=lambda r: (r[2], r[0].name))
    durations = _durations([r[0] for r in rows], workers)
    return [
        ManifestRecord(
            path=path,
            identity=name,
            duration=duration,
            split=f"fold{fold}",
            extra={"fold": fold, "label": label, **extra},
        )
        for (path, name, fold, label, extra), duration in zip(rows, durations)
    ]


def esc50_manifest(
    root: str | os.PathLike[str], out: str | os.PathLike[str], *, esc10: bool = False, workers: int = 8
) -> Path:
    """Write the ESC-50 (or, with ``esc10``, ESC-10) manifest to ``out``; return ``out``.

    root: the ``ESC-50-master`` folder or its parent. Labels: ESC-50's ``target`` (0..49); for
    ESC-10, targets renumbered 0..9 in ascending target order. Extras: ``dataset`` ("esc50" or
    "esc10"), ``target`` (the original), ``src_file`` and ``take``.
    """
    root = _dataset_root(Path(root).resolve(), "ESC-50-master", "meta/esc50.csv")
    csv_path = root / "meta" / "esc50.csv"
    rows = _read_csv(csv_path, ESC50_COLUMNS)
    if esc10:
        rows = [r for r in rows if r["esc10"].strip().lower() == "true"]
    targets = sorted({_int(r, "target", csv_path) for r in rows})
    label_of = {t: (i if esc10 else t) for i, t in enumerate(targets)}
    name = "esc10" if esc10 else "esc50"
    found = [
        (
            root / "audio" / r["filename"],
            r["category"],
            _int(r, "fold", csv_path),
            label_of[_int(r, "target", csv_path)],
            {"dataset": name, "target": _int(r, "target", csv_path), "src_file": r["src_file"], "take": r["take"]},
        )
        for r in rows
    ]
    _check_folds(found, FOLDS[name], csv_path)
    return write_manifest(out, _records(found, workers))


def urbansound8k_manifest(root: str | os.PathLike[str], out: str | os.PathLike[str], *, workers: int = 8) -> Path:
    """Write the UrbanSound8K manifest to ``out``; return ``out``.

    root: the ``UrbanSound8K`` folder or its parent. Labels: ``classID`` (0..9). Extras:
    ``dataset`` ("urbansound8k"), ``fsID`` (the Freesound recording the slice was cut from),
    ``start`` / ``end`` (seconds within it) and ``salience`` (1 foreground, 2 background).
    """
    root = _dataset_root(Path(root).resolve(), "UrbanSound8K", "metadata/UrbanSound8K.csv")
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    found = []
    for r in _read_csv(csv_path, US8K_COLUMNS):
        fold = _int(r, "fold", csv_path)
        found.append(
            (
                root / "audio" / f"fold{fold}" / r["slice_file_name"],
                r["class"],
                fold,
                _int(r, "classID", csv_path),
                {
                    "dataset": "urbansound8k",
                    "fsID": r["fsID"],
                    "start": float(r["start"]),
                    "end": float(r["end"]),
                    "salience": _int(r, "salience", csv_path),
                },
            )
        )
    _check_folds(found, FOLDS["urbansound8k"], csv_path)
    return write_manifest(out, _records(found, workers))


def _check_folds(rows: list[tuple[Path, str, int, int, dict]], n_folds: int, csv_path: Path) -> None:
    """Every fold within 1..n_folds and one label per class name (a consistent CSV)."""
    if not rows:
        raise ValueError(f"{csv_path} lists no clips")
    bad = sorted({fold for _, _, fold, _, _ in rows} - set(range(1, n_folds + 1)))
    if bad:
        raise ValueError(f"{csv_path}: folds {bad} outside 1..{n_folds}")
    labels: dict[str, set[int]] = {}
    for _, name, _, label, _ in rows:
        labels.setdefault(name, set()).add(label)
    clash = {name: sorted(v) for name, v in labels.items() if len(v) > 1}
    if clash:
        raise ValueError(f"{csv_path}: classes with more than one label: {clash}")

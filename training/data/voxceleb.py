"""VoxCeleb1/2 audio manifests and official verification trial lists, from a local tree.

Nothing is downloaded (DESIGN §4): point the builders at an extracted copy. Layouts:

- VoxCeleb1: ``<root>/wav/<speaker id>/<YouTube id>/<nnnnn>.wav``, e.g.
  ``wav/id10001/1zcIwhmdeo4/00001.wav`` (dev and test archives extract into the same ``wav/``).
- VoxCeleb2: ``<root>/dev/aac/<speaker id>/<YouTube id>/<nnnnn>.m4a``, or the same tree
  converted to wav (``dev/aac`` or ``dev/wav``).
- Trial lists (``veri_test.txt``, ``veri_test2.txt``, ``list_test_hard2.txt``,
  ``list_test_all2.txt``): one trial a line, ``<1|0> <enroll path> <test path>``, paths relative
  to VoxCeleb1's ``wav/`` folder.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from training.data.manifest import ManifestRecord, write_manifest

# Short names of the official VoxCeleb1 trial lists (the cleaned "2" versions).
TRIAL_LISTS = {"vox1-o": "veri_test2.txt", "vox1-e": "list_test_all2.txt", "vox1-h": "list_test_hard2.txt"}

# Where each dataset keeps its <speaker>/<video>/<utterance> tree, first existing wins.
AUDIO_DIRS = {"vox1": ("wav",), "vox2": ("dev/aac", "dev/wav")}

# libsndfile cannot read AAC: durations of these files are left unknown (None).
_HEADERLESS = (".m4a", ".aac", ".mp4")


def _audio_dir(root: Path, dataset: str, subdir: str | None) -> Path:
    if dataset not in AUDIO_DIRS:
        raise ValueError(f"dataset must be one of {sorted(AUDIO_DIRS)}, got {dataset!r}")
    candidates = (subdir,) if subdir is not None else AUDIO_DIRS[dataset]
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(
        f"no {' or '.join(candidates)} folder under {root}: expected the "
        f"{dataset} layout <speaker>/<video>/<utterance> there"
    )


def _subdirs(folder: Path) -> list[Path]:
    return sorted(
        (Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")), key=lambda p: p.name
    )


def _walk(
    audio_dir: Path, extensions: tuple[str, ...], exclude: Collection[str], progress: bool
) -> Iterator[tuple[str, str, Path]]:
    """(speaker, video, file) for every utterance, sorted; files elsewhere are ignored."""
    from tqdm import tqdm

    speakers = [d for d in _subdirs(audio_dir) if d.name not in exclude]
    for speaker in tqdm(speakers, desc=f"scan {audio_dir.name}", unit="spk", disable=not progress):
        for video in _subdirs(speaker):
            # scandir's entries know their type without a stat per file (1M files in vox2)
            files = sorted(
                Path(e.path) for e in os.scandir(video) if e.is_file() and Path(e.name).suffix.lower() in extensions
            )
            for path in files:
                yield speaker.name, video.name, path


def _duration(path: Path) -> float | None:
    """Seconds from the header, None where libsndfile cannot read the file (e.g. m4a)."""
    if path.suffix.lower() in _HEADERLESS:
        return None
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except RuntimeError:  # soundfile.LibsndfileError: corrupt or unsupported file
        return None


def build_voxceleb_manifest(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    dataset: str,
    split: str = "train",
    extensions: tuple[str, ...] = (".wav", ".m4a"),
    subdir: str | None = None,
    exclude_speakers: Collection[str] = (),
    workers: int = 8,
    progress: bool = True,
) -> Path:
    """Write a JSONL manifest of a VoxCeleb audio tree to ``out``; return ``out``.

    root: the dataset folder holding ``wav/`` (vox1) or ``dev/aac`` / ``dev/wav`` (vox2);
        ``subdir`` overrides which folder under it is scanned (e.g. ``"test/aac"``).
    dataset: "vox1" or "vox2". split: the ``split`` field of every record.
    exclude_speakers: speaker ids left out, e.g. ``trial_speakers(read_trial_list(...))`` to
        train on VoxCeleb1 dev without its 40 test speakers.
    Records are sorted by (speaker, video, file): identity = speaker id, extras ``video``
    (YouTube id), ``dataset`` and ``key`` (the path relative to the scanned folder, as the
    trial lists write it). Durations come from file headers, read by ``workers`` threads; m4a
    (AAC) files get None, since libsndfile cannot read them (convert them to wav for training:
    AudioStore reads through libsndfile too). Unreadable files get None and one warning.
    """
    root = Path(root).resolve()
    audio_dir = _audio_dir(root, dataset, subdir)
    wanted = tuple(e.lower() for e in extensions)
    found = list(_walk(audio_dir, wanted, frozenset(exclude_speakers), progress))
    if not found:
        raise FileNotFoundError(f"no {'/'.join(wanted)} files in {audio_dir}/<speaker>/<video>/")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        durations = list(pool.map(_duration, (p for _, _, p in found)))
    unreadable = [p for (_, _, p), d in zip(found, durations) if d is None and p.suffix.lower() not in _HEADERLESS]
    if unreadable:
        warnings.warn(
            f"{len(unreadable)} files under {audio_dir} have no readable header "
            f"(duration None), first: {unreadable[0]}",
            stacklevel=2,
        )
    records = [
        ManifestRecord(
            path=path,
            identity=speaker,
            duration=duration,
            split=split,
            extra={"video": video, "dataset": dataset, "key": path.relative_to(audio_dir).as_posix()},
        )
        for (speaker, video, path), duration in zip(found, durations)
    ]
    return write_manifest(out, records)


@dataclass(frozen=True)
class VerificationTrial:
    """One trial of an official list: is ``test`` spoken by the speaker of ``enroll``?"""

    enroll: Path
    test: Path
    target: bool


def read_trial_list(
    path: str | os.PathLike[str], root: str | os.PathLike[str], *, check_files: bool = True
) -> list[VerificationTrial]:
    """Read an official VoxCeleb trial list (``<1|0> <enroll> <test>`` lines).

    root: the folder the list's paths are relative to (VoxCeleb1's ``wav/``); the trials hold
    ``root / path``. With ``check_files``, a FileNotFoundError names how many referenced files
    are missing and the first few, so a partial extraction is caught before an evaluation
    runs. A malformed line raises ValueError with its line number.
    """
    path, root = Path(path), Path(root).resolve()
    trials = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[0] not in ("0", "1"):
                raise ValueError(f"{path}:{lineno}: expected '<1|0> <enroll> <test>', got {line.strip()!r}")
            trials.append(VerificationTrial(enroll=root / fields[1], test=root / fields[2], target=fields[0] == "1"))
    if check_files:
        _check_files(trials, path, root)
    return trials


def _check_files(trials: list[VerificationTrial], path: Path, root: Path) -> None:
    referenced = dict.fromkeys(p for t in trials for p in (t.enroll, t.test))  # ordered set
    missing = [p for p in referenced if not p.is_file()]
    if missing:
        first = ", ".join(p.relative_to(root).as_posix() for p in missing[:5])
        raise FileNotFoundError(
            f"{len(missing)} of {len(referenced)} files named by {path} are missing under {root}; first: {first}"
        )


def trial_speakers(trials: Collection[VerificationTrial]) -> set[str]:
    """Speaker ids (the ``<speaker>`` folder of each path) that ``trials`` mention."""
    return {p.parent.parent.name for t in trials for p in (t.enroll, t.test)}

"""Fixtures shared by the whole suite, and two rules:

- tests marked ``gpu`` are skipped where no CUDA device exists;
- under CI (``CI=true``) any other skip is turned into a failure, because a skipped test is not
  a passing one (a missing espeak-ng or model pack must break the build, not hide tests).
"""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# The default speaker model (CAM++, 192-d) and the pack's second one (GE2E, 256-d).
SPEAKER_MODEL, SPEAKER_DIM, GE2E_MODEL, VAD_MODEL = "campplus-zh-en", 192, "resemblyzer-ge2e", "silero-vad"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [i for i in items if i.get_closest_marker("gpu")]
    if gpu_items and not _cuda_available():
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    if in_ci and report.skipped and not item.get_closest_marker("gpu") and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, which counts as a failure: {report.longrepr}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """End every process this run started and left behind (a test that failed before its
    ``finally`` leaves its ``toitsu serve`` running): TERM, then KILL after 10 s."""
    leftovers = _children(os.getpid())
    for pid in leftovers:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.1)
        leftovers = [pid for pid in leftovers if _alive(pid)]
    for pid in leftovers:
        _signal(pid, signal.SIGKILL)


def _children(parent: int) -> list[int]:
    """Live child processes of ``parent`` (Linux /proc; elsewhere, none)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and fields[0] != "Z":  # fields: state, ppid, ...
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The model repository built by `make models` (TOITSU_MODELS overrides the location)."""
    root = Path(os.environ.get("TOITSU_MODELS", REPO / "models"))
    for name in (SPEAKER_MODEL, GE2E_MODEL, VAD_MODEL):
        if not (root / name / "1" / "card.json").is_file():
            pytest.fail(f"{root / name} is missing: run `make models` (or `make test`, which builds it)")
    return root


def wav_bytes(x: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


class Voices:
    """Generated speakers for tests: ``clip(i, k)`` is utterance k of speaker i as WAV bytes.

    Speakers come from ``enumerate_speakers`` at indices from 3000, far from the calibration dev
    set (1000+) and training corpora (0+), and are cached on disk for the session. Some espeak
    voices are one voice to Resemblyzer (spk3000 "grandpa" and spk3003 "pedro" score 0.93, above
    any calibrated threshold), so the tests use six that it tells apart: every cross score below
    0.78 and every genuine one above 0.90 (measured with ``serving.offline``
    on the default pack). Speaker 5 is never enrolled by the tests: the stranger for open-set checks.
    """

    PICK = (0, 1, 2, 7, 8, 9)

    def __init__(self, folder: Path) -> None:
        from training.data.synthetic_speech import enumerate_speakers

        every = enumerate_speakers(max(self.PICK) + 1, seed=7, start=3000)
        self.folder, self.specs = folder, [every[i] for i in self.PICK]

    def clip(self, speaker: int, k: int) -> bytes:
        path = self.folder / f"{speaker}-{k}.wav"
        if not path.exists():
            from training.data.synthetic_speech import synthesize_utterance

            rng = np.random.default_rng([speaker, k, 11])
            x, _ = synthesize_utterance(self.specs[speaker], rng)
            path.write_bytes(wav_bytes(x.astype(np.float32)))
        return path.read_bytes()

    def path(self, speaker: int, k: int) -> Path:
        self.clip(speaker, k)
        return self.folder / f"{speaker}-{k}.wav"


@pytest.fixture(scope="session")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Voices:
    return Voices(tmp_path_factory.mktemp("voices"))


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for the session (tests/postgres.py). Missing binaries skip, except under
    CI (which installs them): there they fail."""
    from tests import postgres

    why = postgres.missing_binaries()
    if why:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{why}; CI installs it (scripts/debian-packages.sh)")
        pytest.skip(why)
    with postgres.running_server() as server:
        yield server


_databases = iter(range(1, 1 << 30))


@pytest.fixture
def postgres_dsn(postgres_server):
    """The DSN of a fresh, empty database on the session's server, dropped after the test."""
    from tests import postgres

    name = f"t{os.getpid()}_{next(_databases)}"
    dsn = postgres.create_database(postgres_server, name)
    yield dsn
    postgres.drop_database(postgres_server, name)

"""scripts/debian-packages.sh, the one place `make serve`, `make test` and .ci/run install Debian
packages: run against a fake PATH (tools present or absent, root or not, sudo or not, apt-get
recorded instead of run), so every branch is exercised on any machine without touching it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration
SCRIPT = REPO / "scripts" / "debian-packages.sh"
INSTALL = "apt-get install -y -qq --no-install-recommends"

FAKES = {
    # A tool that is merely present.
    "present": "#!/bin/sh\nexit 0\n",
    # Reports every package installed except those named in $FAKE_DPKG_MISSING.
    "dpkg-query": '#!/bin/sh\nfor p; do :; done\ncase " $FAKE_DPKG_MISSING " in *" $p "*) echo not-installed;; '
    "*) echo installed;; esac\n",
    "id": '#!/bin/sh\necho "$FAKE_UID"\n',
    "apt-get": '#!/bin/sh\necho "apt-get $*" >> "$FAKE_LOG"\n',
    # `sudo -n true` answers $FAKE_SUDO_RC (0: passwordless); anything else runs, logged.
    "sudo": '#!/bin/sh\nif [ "$1" = -n ]; then exit "$FAKE_SUDO_RC"; fi\necho sudo >> "$FAKE_LOG"\nexec "$@"\n',
    # The three questions the script asks a python; $FAKE_PY_MISSING holds "venv" and/or "dev".
    "python": '#!/bin/sh\ncase "$2" in\n  *version_info*) echo python3.11 ;;\n'
    '  *ensurepip*) case "$FAKE_PY_MISSING" in *venv*) exit 1;; esac ;;\n'
    '  *Python.h*) case "$FAKE_PY_MISSING" in *dev*) exit 1;; esac ;;\nesac\n',
}
TOOLS = ("espeak-ng", "sox", "openssl", "node", "npm", "cc", "c++", "make")


def run(
    tmp_path: Path,
    *,
    absent: tuple[str, ...] = (),
    uid: int = 1000,
    apt: bool = True,
    sudo: int | None = None,
    dpkg_missing: str = "",
    py_missing: str = "",
    python: str | None = None,
    **env: str,
):
    """The script on a PATH of fakes; returns (exit status, stdout, stderr, apt-get/sudo calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    wanted = {
        **{t: FAKES["present"] for t in TOOLS if t not in absent},
        "dpkg-query": FAKES["dpkg-query"],
        "id": FAKES["id"],
        "python": FAKES["python"],
    }
    if apt:
        wanted["apt-get"] = FAKES["apt-get"]
    if sudo is not None:
        wanted["sudo"] = FAKES["sudo"]
    for name, text in wanted.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "env").symlink_to("/usr/bin/env")
    log = tmp_path / "calls.log"
    result = subprocess.run(
        ["/bin/bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        env={
            "PATH": str(bin_dir),
            "FAKE_UID": str(uid),
            "FAKE_LOG": str(log),
            "FAKE_SUDO_RC": str(sudo or 0),
            "FAKE_DPKG_MISSING": dpkg_missing,
            "FAKE_PY_MISSING": py_missing,
            "PYTHON": python or str(bin_dir / "python"),
            **env,
        },
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, result.stdout, result.stderr, calls


def test_nothing_happens_when_everything_is_present(tmp_path):
    assert run(tmp_path, uid=1000, apt=False) == (0, "", "", [])


def test_root_installs_exactly_what_is_missing(tmp_path):
    rc, out, err, calls = run(tmp_path, uid=0, absent=("espeak-ng", "sox"), dpkg_missing="libsndfile1")
    assert (rc, err) == (0, "")
    assert calls == ["apt-get update -qq", f"{INSTALL} espeak-ng sox libsndfile1"]
    assert out.strip() == "toitsu: installing Debian packages: espeak-ng sox libsndfile1"


def test_a_missing_openssl_is_installed_for_the_tls_tests(tmp_path):
    rc, _, _, calls = run(tmp_path, uid=0, absent=("openssl",))
    assert rc == 0 and calls == ["apt-get update -qq", f"{INSTALL} openssl"]


def test_a_missing_compiler_or_python_part_maps_to_its_package(tmp_path):
    rc, _, _, calls = run(tmp_path, uid=0, absent=("c++",), py_missing="venv dev")
    assert rc == 0 and calls[-1] == f"{INSTALL} build-essential python3.11-venv python3.11-dev"


def test_no_python_at_all_asks_for_debians(tmp_path):
    rc, _, _, calls = run(tmp_path, uid=0, python="no-such-python")
    assert rc == 0 and calls[-1] == f"{INSTALL} python3 python3-venv python3-dev"


def test_passwordless_sudo_is_used_when_not_root(tmp_path):
    rc, _, _, calls = run(tmp_path, uid=1000, sudo=0, absent=("espeak-ng",))
    assert rc == 0 and calls == ["sudo", "apt-get update -qq", "sudo", f"{INSTALL} espeak-ng"]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"uid": 1000}, "not root and no sudo"),
        ({"uid": 1000, "sudo": 1}, "not root and no sudo"),  # sudo wants a password and there is no terminal
        ({"uid": 0, "apt": False}, "no apt-get on this machine"),
    ],
)
def test_one_clear_line_and_a_stop_when_it_cannot_install(tmp_path, kwargs, reason):
    rc, out, err, calls = run(tmp_path, absent=("espeak-ng", "sox"), **kwargs)
    assert rc == 1 and out == "" and calls == []
    lines = err.splitlines()
    assert len(lines) == 1
    assert reason in lines[0] and "sudo apt-get install espeak-ng sox" in lines[0] and "TOITSU_APT=0" in lines[0]


def test_toitsu_apt_0_skips_the_check(tmp_path):
    assert run(tmp_path, uid=1000, absent=("espeak-ng",), TOITSU_APT="0") == (0, "", "", [])


def test_the_makefile_and_ci_use_this_script():
    makefile, ci = (REPO / "Makefile").read_text(), (REPO / ".ci" / "run").read_text()
    assert "scripts/debian-packages.sh" in makefile and "scripts/debian-packages.sh" in ci
    assert "make test" in ci and "apt-get" not in ci
    assert os.access(SCRIPT, os.X_OK)


def test_a_missing_postgresql_is_installed_for_the_gallery_backend_tests(tmp_path):
    rc, _, _, calls = run(tmp_path, uid=0, dpkg_missing="postgresql")
    assert rc == 0 and calls == ["apt-get update -qq", f"{INSTALL} postgresql"]


def test_a_missing_node_or_npm_is_installed_for_the_node_client(tmp_path):
    rc, _, _, calls = run(tmp_path, uid=0, absent=("node", "npm"))
    assert rc == 0 and calls == ["apt-get update -qq", f"{INSTALL} nodejs npm"]

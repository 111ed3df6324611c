"""A throwaway PostgreSQL server for the tests: initdb in a temporary folder, a free TCP port on
the loopback, its unix socket in that folder, stopped and removed afterwards.

PostgreSQL refuses to run as root (CI runs the tests as root): then ``initdb`` and ``postgres``
run as ``nobody``, and the folder belongs to that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _bin() -> Path:
    """TOITSU_PG_BIN, else the newest Debian server under /usr/lib/postgresql/<version>/bin."""
    if os.environ.get("TOITSU_PG_BIN"):
        return Path(os.environ["TOITSU_PG_BIN"])
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


BIN = _bin()
_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PgServer:
    folder: Path
    port: int
    process: subprocess.Popen

    @property
    def socket_dir(self) -> Path:
        return self.folder / "socket"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} user=postgres dbname={dbname}"

    def tcp_dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"


def missing_binaries() -> str:
    """Why a server cannot start here ("" when it can)."""
    absent = [name for name in ("initdb", "postgres") if not (BIN / name).is_file()]
    return (
        f"PostgreSQL server binaries {', '.join(absent)} are not in {BIN} (Debian package postgresql)" if absent else ""
    )


def _as_user() -> dict[str, Any]:
    """subprocess arguments that drop root to ``nobody`` (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server() -> Iterator[PgServer]:
    """Start a server; yields it, then stops it (fast shutdown) and removes its folder."""
    folder = Path(tempfile.mkdtemp(prefix="toitsu-pg-"))
    as_user = _as_user()
    data, sockets = folder / "data", folder / "socket"
    sockets.mkdir()
    if as_user:
        for path in (folder, sockets):
            os.chown(path, as_user["user"], as_user["group"])
    process = None
    try:
        subprocess.run(
            [BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"],
            check=True,
            capture_output=True,
            **as_user,
        )
        port = free_port()
        settings = ["-c", "listen_addresses=127.0.0.1", "-k", str(sockets), "-c", "max_connections=200"]
        argv = [BIN / "postgres", "-D", data, "-p", str(port), *settings]
        with open(folder / "server.log", "wb") as log:  # the server keeps its own copy of the descriptor
            process = subprocess.Popen(argv, stdout=log, stderr=log, **as_user)
        server = PgServer(folder, port, process)
        _wait_ready(server)
        yield server
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"initdb failed: {exc.stderr.decode(errors='replace')}") from exc
    finally:
        if process is not None:
            process.send_signal(signal.SIGINT)  # fast shutdown: ends open sessions
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_ready(server: PgServer) -> None:
    import psycopg

    deadline = time.monotonic() + _START_TIMEOUT_S
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"postgres exited: {(server.folder / 'server.log').read_text(errors='replace')[-2000:]}")
        try:
            psycopg.connect(server.dsn(), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def create_database(server: PgServer, name: str) -> str:
    """A new, empty database; its DSN."""
    import psycopg

    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.dsn(name)


def drop_database(server: PgServer, name: str) -> None:
    import psycopg

    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

"""A local ``tritonserver`` for tests, benchmarks and development, from the ``nvidia-pytriton`` wheel.

``nvidia-pytriton==0.7.0`` bundles a real Triton 2.51 server binary with the python backend only
(no ONNX Runtime backend), so it serves the ``python`` variant of the Triton repository
(``export/triton_python_backend.py``). Its dependencies (numpy < 2) conflict with the main
environment, so it lives in its own virtual environment, ``.venv-triton``, made by
``make triton-env``; this module only runs files from it and imports nothing from it.

What a launch needs, which pytriton's own launcher also arranges:

- a backend folder holding the python backend's library and utilities plus the stub built for the
  environment's Python version (the wheel ships one stub per version);
- ``LD_LIBRARY_PATH`` with the environment interpreter's libdir (the stub links ``libpython3.x``)
  and the wheel's bundled libraries;
- the environment's ``bin`` first on ``PATH``: the stub's embedded interpreter finds its prefix,
  and so the environment's site-packages (numpy, onnxruntime), from the ``python3`` found there;
- a unique shared-memory prefix, so that several servers on one host never share regions.

    .venv/bin/python -m export.triton_server --repository build/triton-repo --port 8001
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VENV = Path(os.environ.get("TOITSU_TRITON_VENV", REPO / ".venv-triton"))


class TritonNotInstalled(FileNotFoundError):
    """The Triton environment is missing or incomplete."""


@dataclass(frozen=True)
class TritonInstall:
    """The pieces of a ``.venv-triton`` that a launch needs."""

    venv: Path
    server: Path
    python_backend: Path
    stub: Path
    libs: Path
    python_libdir: Path

    @classmethod
    def find(cls, venv: Path = DEFAULT_VENV) -> TritonInstall:
        venv = Path(venv).absolute()
        python = venv / "bin" / "python"
        if not python.exists():
            raise TritonNotInstalled(
                f"no Triton environment at {venv}: run `make triton-env` (nvidia-pytriton "
                "bundles the tritonserver binary the Triton tests and benchmarks run)"
            )
        probe = (
            "import json, sys, sysconfig; print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
            "'libdir': sysconfig.get_config_var('LIBDIR'), 'purelib': sysconfig.get_paths()['purelib']}))"
        )
        info = json.loads(subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True).stdout)
        site = Path(info["purelib"])
        dist = site / "pytriton" / "tritonserver"
        install = cls(
            venv,
            dist / "bin" / "tritonserver",
            dist / "backends" / "python",
            dist / "python_backend_stubs" / info["version"] / "triton_python_backend_stub",
            site / "nvidia_pytriton.libs",
            Path(info["libdir"]),
        )
        for path in (install.server, install.python_backend / "libtriton_python.so", install.stub, install.libs):
            if not path.exists():
                raise TritonNotInstalled(
                    f"{path} is missing: `make triton-env` installs nvidia-pytriton==0.7.0 into {venv}"
                )
        if not (install.python_libdir / f"libpython{info['version']}.so.1.0").exists():
            raise TritonNotInstalled(
                f"the python-backend stub links libpython{info['version']}.so.1.0, which is not in "
                f"{install.python_libdir}: make {venv} with a Python built with --enable-shared "
                "(`make triton-env PYTHON=...`)"
            )
        return install

    def backend_dir(self, work: Path) -> Path:
        """``work/backends/python`` with the library, its utilities and this Python's stub."""
        python = work / "backends" / "python"
        python.mkdir(parents=True, exist_ok=True)
        for item in self.python_backend.iterdir():
            if item.is_file() and not (python / item.name).exists():
                (python / item.name).symlink_to(item)
        stub = python / "triton_python_backend_stub"
        if not stub.exists():
            shutil.copy2(self.stub, stub)  # a copy: the backend looks for the stub beside its library
        return work / "backends"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(self.python_libdir), str(self.libs), env.get("LD_LIBRARY_PATH", "")) if p
        )
        env["PATH"] = os.pathsep.join((str(self.venv / "bin"), env.get("PATH", "")))
        for name in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV"):  # the stub must see the Triton environment only
            env.pop(name, None)
        return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalTriton:
    """One ``tritonserver`` process serving ``repository`` on ``127.0.0.1:port`` (gRPC only).

    ``--disable-auto-complete-config``: Triton loads the generated ``config.pbtxt`` exactly as
    written, so a server that loads the repository has validated it.
    """

    def __init__(
        self,
        repository: Path,
        *,
        venv: Path = DEFAULT_VENV,
        port: int = 0,
        work: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.install = TritonInstall.find(venv)
        self.repository = Path(repository).absolute()
        self.port = port or free_port()
        self.work = Path(work) if work else self.repository.parent / f".triton-{self.port}"
        self.log_path = log_path or self.work / "tritonserver.log"
        self.proc: subprocess.Popen | None = None
        self._shm_prefix = f"toitsu{os.getpid()}p{self.port}x"

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.install.server),
            f"--model-repository={self.repository}",
            f"--backend-directory={self.install.backend_dir(self.work)}",
            "--disable-auto-complete-config",
            "--model-control-mode=none",
            "--strict-readiness=true",
            "--allow-http=false",
            "--allow-metrics=false",
            "--allow-gpu-metrics=false",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.port}",
            "--exit-timeout-secs=5",
            f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}",
            "--backend-config=python,shm-growth-byte-size=16777216",
        ]

    def start(self, wait: float | None = 120.0) -> LocalTriton:
        """Start the server; with ``wait``, block until it and every model are ready."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"tritonserver is already running on {self.url}")
        self.work.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.install.environment(),
                start_new_session=True,
            )
        finally:
            log.close()
        if wait:
            self.wait_ready(wait)
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the server reports ready (all models loaded), or raise with the log's tail."""
        import tritonclient.grpc as grpcclient

        deadline = time.monotonic() + timeout
        with grpcclient.InferenceServerClient(self.url) as client:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"tritonserver exited ({self._exit()}); log:\n{self.log_tail()}")
                try:
                    if client.is_server_ready(client_timeout=1.0):
                        return
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
                time.sleep(0.2)
        raise TimeoutError(f"tritonserver on {self.url} not ready after {timeout:.0f} s; log:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server and its python-backend stubs (its own process group)."""
        self._signal(signal.SIGKILL)
        self._cleanup_shm()

    def terminate(self) -> None:
        """Ask the server to exit (SIGTERM) without waiting; safe in a signal handler."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (Triton unloads its models and exits), SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            self._cleanup_shm()
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> LocalTriton:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _signal(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)  # the group this launch created (start_new_session)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            pass

    def _exit(self) -> str:
        return f"exit code {self.proc.returncode}" if self.proc is not None else "never started"

    def _cleanup_shm(self) -> None:
        for region in Path("/dev/shm").glob(f"{self._shm_prefix}*"):
            region.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=REPO / "build" / "triton-repo")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    server = LocalTriton(args.repository, venv=args.venv, port=args.port).start(wait=None)
    print(
        f"tritonserver on {server.url} serving {server.repository} (log: {server.log_path}); Ctrl-C stops it",
        flush=True,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: server.terminate())
    assert server.proc is not None  # start() launched it
    server.proc.wait()
    server.stop()  # the stubs and shared memory of a server that died on its own


if __name__ == "__main__":
    main()

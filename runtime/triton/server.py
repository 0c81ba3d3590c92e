"""``edgedet serve start``: Triton Inference Server on this machine, from the ``nvidia-pytriton`` wheel.

That wheel ships a real ``tritonserver`` with its Python backend and a backend stub per Python version; this
assembles a backend folder with the stub for the running Python, puts the wheel's bundled libraries on
``LD_LIBRARY_PATH``, binds to 127.0.0.1 unless told otherwise, and waits (bounded) for readiness.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from edgedet.errors import BackendError

INSTALL_HINT = "pip install --no-deps nvidia-pytriton==0.5.14 (its tritonserver; the wheel has a backend stub for Python 3.8-3.13)"


def pytriton_root() -> Path:
    """The wheel's ``pytriton/tritonserver`` folder, found without importing pytriton (whose Python API needs
    numpy < 2; edgedet uses only the server binary)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"tritonserver is not installed: {INSTALL_HINT}")
    root = Path(list(spec.submodule_search_locations)[0]) / "tritonserver"
    if not (root / "bin" / "tritonserver").is_file():
        raise BackendError(f"{root} has no bin/tritonserver: {INSTALL_HINT}")
    return root


def backend_folder(root: Path, dest: Path) -> Path:
    """``dest/python`` with Triton's Python backend and the stub built for this Python."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise BackendError(f"the nvidia-pytriton wheel has no Python backend stub for Python {version}: {INSTALL_HINT}")
    python = dest / "python"
    python.mkdir(parents=True, exist_ok=True)
    for f in (root / "backends" / "python").iterdir():
        if f.is_file():
            shutil.copy2(f, python / f.name)
    shutil.copy2(stub, python / stub.name)
    (python / stub.name).chmod(0o755)
    return dest


def servable_models(repo: Path) -> list[str]:
    """The models of ``repo`` on the Python backend (the only backend the wheel's server has)."""
    from edgedet.runtime.triton.config import parse

    found = []
    for cfg in sorted(repo.glob("*/config.pbtxt")):
        if parse(cfg.read_text()).backend == "python":
            found.append(cfg.parent.name)
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class TritonServer:
    """A running ``tritonserver`` on ``repo``; a context manager that stops it."""

    def __init__(self, repo: str | Path, *, host: str = "127.0.0.1", http_port: int = 8000, grpc_port: int = 8001,
                 ready_timeout_s: float = 120.0, log: str | Path | None = None, models: list[str] | None = None,
                 binary: Path | None = None, backends: Path | None = None) -> None:
        """``models``: load only these (explicit model control); None loads those the wheel's server has a backend
        for. ``binary`` and ``backends``: another Triton install (NVIDIA's container: /opt/tritonserver)."""
        self.repo, self.host, self.http_port, self.grpc_port = Path(repo), host, http_port, grpc_port
        if not self.repo.is_dir():
            raise BackendError(f"model repository not found: {self.repo}")
        self._tmp = tempfile.TemporaryDirectory(prefix="edgedet-triton-")
        env = {**os.environ, "EDGEDET_SITE_PACKAGES": os.environ.get("EDGEDET_SITE_PACKAGES", sysconfig.get_paths()["purelib"])}
        if binary is None:
            root = pytriton_root()
            binary = root / "bin" / "tritonserver"
            backends = backend_folder(root, Path(self._tmp.name) / "backends")
            libs = root.parents[1] / "nvidia_pytriton.libs"
            env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), os.environ.get("LD_LIBRARY_PATH")) if p)
        self.models = servable_models(self.repo) if models is None else models
        if not self.models:
            raise BackendError(f"{self.repo} holds no model this server can run (its Python backend serves the _cpu and "
                               "_e2e models of `edgedet serve export`)")
        cmd = [str(binary), "--model-repository", str(self.repo), *(["--backend-directory", str(backends)] if backends else []),
               "--model-control-mode", "explicit", *[f"--load-model={m}" for m in self.models],
               "--http-address", host, "--http-port", str(http_port), "--grpc-address", host, "--grpc-port", str(grpc_port),
               "--allow-metrics", "false", "--exit-timeout-secs", "10"]
        self.log_path = Path(log) if log else Path(self._tmp.name) / "tritonserver.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            self.wait_ready(ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://{self.host}:{self.grpc_port}"

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BackendError(f"tritonserver exited with {self.process.returncode}: {self.last_error()}")
            try:
                with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise BackendError(f"tritonserver was not ready within {timeout_s:.0f} s: {self.last_error()}")

    def last_error(self) -> str:
        """The first error line of the server's log."""
        if not self._log.closed:
            self._log.flush()
        lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines()
                 if (ln.startswith("E") or ln.startswith("error")) and "CudaDriverHelper" not in ln]
        return lines[0].strip() if lines else f"see {self.log_path}"

    def pids(self) -> list[int]:
        """The server and its backend processes (the Python stubs)."""
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                todo += [int(c) for c in task.read_text().split()]
        return found

    def rss_bytes(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the server and every process of its group (the backend stubs too, even when the server died)."""
        import signal

        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout_s)
                if sig == signal.SIGTERM:
                    time.sleep(0.2)  # the stubs leave after the server; then SIGKILL finds nothing or the stragglers
            except subprocess.TimeoutExpired:
                continue
        if not self._log.closed:
            self._log.close()
        self._tmp.cleanup()  # the backend folder (and the log, unless it was given a path of its own)

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

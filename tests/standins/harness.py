# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""Runs the stand-in server on the host for tests: a free port, private cache dirs, polling helpers.

    from harness import StandinServer        (tests put tests/standins on sys.path)
    with StandinServer(tmp_path, ["--enable-metrics"]) as server:
        server.wait_ready()
        status, body = server.post("/generate", {...})

Waits poll a condition with a short interval until a deadline; nothing sleeps a fixed time.
Not part of the image (see .dockerignore).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

STANDINS = Path(__file__).resolve().parent
STANDIN_PYTHON = STANDINS / "python"
TINY_MODEL = STANDINS / "models" / "tiny-moe"
# Inherited variables that would point the stand-in somewhere else than the test wants.
_FOREIGN = ("SGLANG_", "TRITON_", "TORCHINDUCTOR_", "FLASHINFER_", "DG_JIT_", "CUDA_CACHE_PATH", "TILELANG_",
            "CUTE_DSL_", "PYTHONPATH", "TMPDIR")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def standin_env(home: Path, **extra) -> dict:
    """A clean environment for stand-in programs: PYTHONPATH on the stand-ins, HOME in the test dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    # TMPDIR in the test dir: CuTe DSL's default cache is $TMPDIR/<user>/cutlass_python_cache
    env.update(PYTHONPATH=str(STANDIN_PYTHON), HOME=str(home), TMPDIR=str(home), PYTHONDONTWRITEBYTECODE="1")
    # the stand-in nvcc first on PATH: DeepGEMM's JIT finds a CUDA home through `which nvcc` on any machine
    env["PATH"] = str(STANDINS / "bin") + os.pathsep + os.environ.get("PATH", "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_for(condition, timeout=10.0, interval=0.02, what="condition"):
    """Poll condition() until it returns something truthy; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def holds_for(condition, duration, interval=0.02) -> bool:
    """True if condition() stays truthy for the whole duration (polled)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(interval)
    return True


def copy_tiny_model(dest: Path, name: str = "tiny-moe") -> Path:
    """A test model of tests/standins/models (tiny-moe, tiny-moe-fp8-block, tiny-hybrid, tiny-gdn) copied to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(STANDINS / "models" / name / "config.json", dest / "config.json")
    return dest


class StandinServer:
    """`python3 -m sglang.launch_server` in its own process group, logging to a file."""

    def __init__(self, tmp_path: Path, args=(), env=None, model=None, port=None, canonical=True):
        self.tmp = Path(tmp_path)
        self.port = port or free_port()
        self.model = Path(model) if model else copy_tiny_model(self.tmp / "models" / "tiny-moe")
        self.cache = self.tmp / "cache"
        self.log_path = self.tmp / ("server-%d.log" % self.port)
        base = ["--model-path", str(self.model), "--host", "127.0.0.1", "--port", str(self.port)]
        if canonical:
            base += ["--kv-cache-dtype", "fp8_e4m3", "--mem-fraction-static", "0.94"]
        self.argv = [sys.executable, "-m", "sglang.launch_server", *base, *args]
        settings = {"SGLANG_CACHE_DIR": self.cache, "SGLANG_STANDIN_START_DELAY_S": "0.05",
                    "SGLANG_STANDIN_WARMUP_S": "0.1", "SGLANG_STANDIN_COMPILE_S": "0"}
        settings.update(env or {})
        self.env = standin_env(self.tmp / "home", **settings)
        self.proc = None

    # ------------------------------------------------------------------ process
    def start(self):
        (self.tmp / "home").mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                                     cwd=str(self.tmp), start_new_session=True)
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()

    def signal_group(self, signum):
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def wait_exit(self, timeout=10.0) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal_group(signal.SIGKILL)
            self.proc.wait(timeout=10)
        else:
            self.signal_group(signal.SIGKILL)  # a leftover child, if any
        self._log.close()

    def children(self):
        """PIDs whose parent is the server process (from /proc)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    found.append(int(entry.name))
        return found

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    # ------------------------------------------------------------------ HTTP
    def request(self, method, path, body=None, timeout=5.0, headers=None):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data, method=method,
                                     headers=dict({"Content-Type": "application/json"}, **(headers or {})))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            return None, ""

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body):
        return self.request("POST", path, body)

    def status(self, path) -> int | None:
        return self.get(path)[0]

    def _alive_or_fail(self):
        if self.proc.poll() is not None:
            raise AssertionError("server exited with %s:\n%s" % (self.proc.returncode, self.log()[-3000:]))

    def wait_http(self, timeout=10.0):
        """Until /v1/models answers 200 (HTTP up, warmup maybe not done)."""
        def up():
            self._alive_or_fail()
            return self.status("/v1/models") == 200
        return wait_for(up, timeout, what="HTTP on port %d" % self.port)

    def wait_ready(self, timeout=10.0):
        def ready():
            self._alive_or_fail()
            return self.status("/health") == 200
        return wait_for(ready, timeout, what="/health 200 on port %d" % self.port)

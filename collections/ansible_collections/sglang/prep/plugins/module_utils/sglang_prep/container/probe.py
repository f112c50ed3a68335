# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What hardware and toolchain this container has, probed from the real tools.

nvidia-smi for the GPU and driver, the python3 that runs the stage servers for torch, triton,
sglang, flashinfer and deep_gemm, nvcc and CUDA_HOME for the CUDA toolkit. All probes start at
once and run once per invocation. A value that cannot be probed is None, with a warning that
says why: nothing is ever guessed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time

PROBE_TIMEOUT_S = 60.0

# Runs in the python3 that launches the servers. Versions come from package metadata (no heavy
# imports) except triton, whose __version__ names SGLang's MoE config directory (triton_X_Y_Z).
PYTHON_PROBE = r"""
import importlib.util, json, os, sys
try:
    from importlib import metadata
except ImportError:
    metadata = None
def dist_version(names):
    for name in names:
        try:
            return metadata.version(name)
        except Exception:
            pass
    return None
def found(mod):
    try:
        return importlib.util.find_spec(mod) is not None
    except Exception:
        return False
out = {"python": "%d.%d.%d" % sys.version_info[:3]}
for key, mod, dists in (("torch", "torch", ["torch"]),
                        ("sglang", "sglang", ["sglang"]),
                        ("flashinfer", "flashinfer", ["flashinfer-python", "flashinfer_python", "flashinfer"]),
                        ("deep_gemm", "deep_gemm", ["sgl-deep-gemm", "deep-gemm", "deep_gemm"])):
    out[key] = {"found": found(mod), "version": dist_version(dists) if metadata else None}
out["triton"] = {"found": found("triton"), "version": None}
if out["triton"]["found"]:
    try:
        import triton
        out["triton"]["version"] = str(triton.__version__)
    except Exception as exc:
        out["triton"]["error"] = "%s: %s" % (type(exc).__name__, exc)
for key, mod in (("torch", "torch"),):
    if out[key]["found"] and not out[key]["version"]:
        try:
            out[key]["version"] = str(__import__(mod).__version__)
        except Exception as exc:
            out[key]["error"] = "%s: %s" % (type(exc).__name__, exc)
if out["sglang"]["found"]:
    import re
    spec = importlib.util.find_spec("sglang")
    pkg = list(spec.submodule_search_locations or [])[:1]
    out["sglang"]["dir"] = pkg[0] if pkg else None
    for name in ("_version.py", "version.py"):
        vfile = os.path.join(pkg[0], name) if pkg else None
        try:
            with open(vfile) as handle:
                text = handle.read()
        except (OSError, TypeError):
            continue
        # setuptools-scm/vcs-versioning write "__version__ = version = '0.5.23'" and
        # "__commit_id__ = commit_id = None" (or = 'g<sha>'); hand-written files have one name
        version = re.search(r"^(?:__version__|version)\s*=\s*(?:\w+\s*=\s*)*['\"]([^'\"]+)['\"]", text, re.M)
        commit = re.search(r"^(?:__commit_id__|commit_id)\s*=\s*(?:\w+\s*=\s*)*['\"]([^'\"]+)['\"]", text, re.M)
        if version and not out["sglang"]["version"]:
            out["sglang"]["version"] = version.group(1)
        if commit and not out["sglang"].get("commit"):
            out["sglang"]["commit"] = commit.group(1)
print(json.dumps(out))
"""

GPU_QUERY = ["--query-gpu=name,compute_cap,driver_version,memory.total", "--format=csv,noheader,nounits"]
CUDA_HEADER_RE = re.compile(r"CUDA Version:\s*([0-9][0-9.]*)")
NVCC_RE = re.compile(r"release\s+[0-9.]+,\s*V([0-9][0-9.]*)|release\s+([0-9][0-9.]*)")

# Field -> what it is, for messages.
FIELDS = (
    "device_name", "compute_capability", "gpu_count", "gpu_memory_mib", "cuda", "driver_version",
    "torch_version", "triton_version", "sglang_version", "sglang_commit", "sglang_dir",
    "flashinfer_version", "deep_gemm_version", "nvcc_version", "cuda_home", "python_version",
)


def compute_capability_tag(raw):
    """'9.0' -> 'sm_90', '10.0' -> 'sm_100'; None for anything else."""
    match = re.match(r"^\s*(\d+)\.(\d+)\s*$", raw or "")
    return "sm_%d%d" % (int(match.group(1)), int(match.group(2))) if match else None


def compute_capability_major(tag):
    match = re.match(r"^sm_(\d+?)(\d)$", tag or "")
    return int(match.group(1)) if match else None


class Probe(object):
    """Lazily probes everything once; ``facts`` maps FIELDS to values, ``why_missing`` to reasons."""

    def __init__(self, python="python3", env=None):
        self.python = python
        self.env = dict(os.environ if env is None else env)
        self._facts = None
        self.why_missing = {}
        self.duration_s = None

    @property
    def facts(self):
        if self._facts is None:
            self._run()
        return self._facts

    def get(self, field):
        return self.facts.get(field)

    def warning_for(self, field):
        """Human warning for a field that is None, or None when it has a value."""
        if self.get(field) is not None:
            return None
        return "%s could not be probed (%s); recorded as null" % (
            field, self.why_missing.get(field, "no value"))

    # ------------------------------------------------------------ internals
    def _spawn(self, argv):
        try:
            return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                                    stdin=subprocess.DEVNULL, env=self.env, close_fds=True)
        except OSError as exc:
            return exc

    def _collect(self, proc, deadline):
        """(returncode, stdout, stderr-or-error) of a spawned probe."""
        if isinstance(proc, OSError):
            return None, "", "%s" % (proc.strerror or proc)
        try:
            out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return None, "", "timed out after %.0f s" % PROBE_TIMEOUT_S
        return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def _nvcc_path(self, cuda_home):
        if cuda_home and os.path.exists(os.path.join(cuda_home, "bin", "nvcc")):
            return os.path.join(cuda_home, "bin", "nvcc")
        return shutil.which("nvcc", path=self.env.get("PATH"))

    def _cuda_home(self):
        for var in ("CUDA_HOME", "CUDA_PATH"):
            if self.env.get(var):
                return self.env[var], None
        if os.path.isdir("/usr/local/cuda"):
            return "/usr/local/cuda", None
        return None, "CUDA_HOME and CUDA_PATH are unset and /usr/local/cuda does not exist"

    def _run(self):
        start = time.monotonic()
        facts = dict.fromkeys(FIELDS)
        why = {}
        smi = shutil.which("nvidia-smi", path=self.env.get("PATH"))
        cuda_home, why_home = self._cuda_home()
        nvcc = self._nvcc_path(cuda_home)
        procs = {"python": self._spawn([self.python, "-c", PYTHON_PROBE])}
        if smi:
            procs["smi_query"] = self._spawn([smi] + GPU_QUERY)
            procs["smi_header"] = self._spawn([smi])
        if nvcc:
            procs["nvcc"] = self._spawn([nvcc, "--version"])
        deadline = start + PROBE_TIMEOUT_S
        results = dict((name, self._collect(proc, deadline)) for name, proc in procs.items())

        facts["cuda_home"] = cuda_home
        if why_home:
            why["cuda_home"] = why_home
        self._gpu(facts, why, smi, results)
        self._python(facts, why, results["python"])
        if nvcc:
            code, out, err = results["nvcc"]
            match = NVCC_RE.search(out)
            if code == 0 and match:
                facts["nvcc_version"] = match.group(1) or match.group(2)
            else:
                why["nvcc_version"] = "%s --version failed: %s" % (nvcc, (err or out).strip()[:200] or code)
        else:
            why["nvcc_version"] = "nvcc is not on PATH and not under CUDA_HOME"
        for field in FIELDS:
            if facts[field] is None and field not in why:
                why[field] = "not reported by the probe"
        self._facts = facts
        self.why_missing = why
        self.duration_s = round(time.monotonic() - start, 3)

    def _gpu(self, facts, why, smi, results):
        gpu_fields = ("device_name", "compute_capability", "gpu_count", "gpu_memory_mib", "driver_version", "cuda")
        if not smi:
            for field in gpu_fields:
                why[field] = "nvidia-smi is not on PATH (is the NVIDIA container runtime enabled?)"
            return
        self._gpu_query(facts, why, results["smi_query"], gpu_fields[:5])
        code, out, err = results["smi_header"]
        match = CUDA_HEADER_RE.search(out or "")
        if code == 0 and match:
            facts["cuda"] = match.group(1)
        else:
            why["cuda"] = "nvidia-smi did not print a 'CUDA Version' header (%s)" % (
                (err or "").strip()[:200] or "exit %s" % code)

    @staticmethod
    def _gpu_query(facts, why, result, fields):
        """The first GPU's name, compute capability, driver and memory, and the GPU count, from nvidia-smi's query."""
        code, out, err = result
        rows = [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]
        if code != 0 or not rows or len(rows[0]) < 4:
            reason = "nvidia-smi failed: %s" % ((err or out).strip()[:200] or "exit %s" % code)
            for field in fields:
                why[field] = reason
            return
        name, cap, driver, mem = rows[0][:4]
        facts["device_name"] = name or None
        facts["compute_capability"] = compute_capability_tag(cap)
        if facts["compute_capability"] is None:
            why["compute_capability"] = "nvidia-smi reported compute_cap %r" % cap
        facts["driver_version"] = driver or None
        facts["gpu_count"] = len(rows)
        try:
            facts["gpu_memory_mib"] = int(float(mem))
        except ValueError:
            why["gpu_memory_mib"] = "nvidia-smi reported memory.total %r" % mem

    def _python(self, facts, why, result):
        code, out, err = result
        try:
            data = json.loads(out.strip().splitlines()[-1]) if code == 0 and out.strip() else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            reason = "%s could not run the version probe: %s" % (self.python, (err or out).strip()[-300:] or code)
            for field in ("torch_version", "triton_version", "sglang_version", "sglang_commit", "sglang_dir",
                          "flashinfer_version", "deep_gemm_version", "python_version"):
                why[field] = reason
            return
        facts["python_version"] = data.get("python")
        for key in ("torch", "triton", "sglang", "flashinfer", "deep_gemm"):
            info = data.get(key) or {}
            field = key + "_version"
            facts[field] = info.get("version")
            if facts[field] is None:
                if not info.get("found"):
                    why[field] = "%s is not importable by %s" % (key, self.python)
                elif info.get("error"):
                    why[field] = "importing %s failed: %s" % (key, info["error"])
                else:
                    why[field] = "%s is installed but its version is not recorded in package metadata" % key
        sg = data.get("sglang") or {}
        facts["sglang_dir"] = sg.get("dir")
        facts["sglang_commit"] = sg.get("commit")
        if facts["sglang_commit"] is None:
            why["sglang_commit"] = ("sglang is not importable" if not sg.get("found")
                                    else "sglang/_version.py records no commit_id (a release wheel)")

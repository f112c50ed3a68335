# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a stage server's own log says: KV cache dtype, memory and CUDA failures, MoE config use.

The patterns are SGLang 0.5.23's real log lines (sglang-facts.md section 3). A LogScan is fed
every line one server run prints, keeps the last 20 lines, and classifies the failure.
"""

from __future__ import annotations

import collections
import re
import time

from .. import contract

TAIL_LINES = 20

KV_DTYPE_RES = (
    re.compile(r"KV Cache is allocated\. dtype: ([\w.]+)"),
    re.compile(r"KV Cache VA upper bound\. dtype: ([\w.]+)"),
    re.compile(r"Post-capture KV sizing: KV cache allocated\. dtype: ([\w.]+)"),
)
# error_type -> (patterns, what to do). First match in this order wins.
FAILURE_PATTERNS = (
    # a file system the server writes filled up while it ran (ENOSPC, EDQUOT): Python's OSError text, which names the
    # file when the call that failed had one (open, mkdir, rename), not when a write to an open file failed
    ("insufficient_disk", (
        re.compile(r"[^\n]*\[Errno (?:28|122)\][^\n]*"),
        re.compile(r"[^\n]*(?:No space left on device|Disk quota exceeded)[^\n]*"),
    ), "a file system the server writes (its caches under %s, or /tmp) is full: free disk space on the host file "
       "system behind it and run again" % contract.PROFILES_ROOT),
    ("not_enough_memory", (
        re.compile(r"Not enough memory\. Please try to increase --mem-fraction-static[^\n]*"),
        re.compile(r"Loaded weights leave no GPU memory for the KV cache[^\n]*"),
        re.compile(r"Not enough GPU memory for hybrid \(mamba/linear-attention\) state cache[^\n]*"),
        re.compile(r"CUDA out of memory[^\n]*"),
        re.compile(r"torch\.OutOfMemoryError[^\n]*"),
    ), "the GPU has too little free memory at mem_fraction_static=%s: stop other processes on the GPU "
       "(nvidia-smi shows them), use a larger --tp, or a GPU with more memory. The priming policy does "
       "not lower mem_fraction_static." % contract.CANONICAL_SETTINGS["mem_fraction_static"]),
    # kv_cache_configurator.py resolve_max_num_reqs (sglang-facts.md 10): max_mamba_cache_size // slots per request is 0
    ("mamba_cache_too_small", (
        re.compile(r"Hybrid \(mamba/linear-attention\) state cache is too small to serve any requests[^\n]*"),
    ), "the hybrid (mamba/linear-attention) state cache holds no request: remove --max-mamba-cache-size from the "
       "extra server arguments (SGLang then sizes it from GPU memory) or raise it to at least the state slots per "
       "request (mamba_ratio in the message) times the requests to serve; --mamba-full-memory-ratio gives the "
       "state cache more of the memory. Lowering mem_fraction_static does not help."),
    # sgl-deep-gemm 0.2.3.post2 deep_jit/backend/cuda/backend.hpp: its JIT is NVCC-only (sglang-facts.md 10)
    ("nvcc_not_found", (
        re.compile(r"NVCC compiler is not executable[^\n]*"),
    ), "DeepGEMM compiles its kernels with NVCC only (DG_JIT_USE_NVRTC and SGLANG_DG_USE_NVRTC have no effect in "
       "sgl-deep-gemm 0.2.3.post2) and found no executable nvcc: install the CUDA toolkit in the image, or point "
       "CUDA_HOME at one (it looks in $CUDA_HOME, $CUDA_PATH, `which nvcc`, /usr/local/cuda), then re-run."),
    ("nvrtc_not_found", (
        re.compile(r"libnvrtc[\w.\-]*\.so[\w.]*: cannot open shared object file[^\n]*"),
        re.compile(r"[^\n]*(?:nvrtc|NVRTC)[^\n]*(?:not found|No such file|cannot open|could not be loaded)[^\n]*"),
    ), "the CUDA runtime compiler (libnvrtc) is missing from the image: install the CUDA toolkit's nvrtc "
       "package matching the CUDA version of torch (or use an SGLang image that ships it), then re-run."),
    ("libcuda_missing", (
        re.compile(r"libcuda\.so[\w.]*: cannot open shared object file[^\n]*"),
        re.compile(r"[^\n]*libcuda\.so[\w.]*[^\n]*(?:not found|No such file|cannot open)[^\n]*"),
        re.compile(r"Found no NVIDIA driver on your system[^\n]*"),
    ), "the NVIDIA driver library (libcuda) is not visible in the container: start it with the NVIDIA "
       "container runtime and GPU device requests (driver nvidia, capabilities gpu,utility,compute), then re-run."),
)
# The fused-MoE config lookups (fused_moe_triton_config.py::get_moe_configs). Each fused-MoE call looks up the
# up-projection file and <name>_down.json; a line belongs to the down lookup when its path is a _down.json.
MOE_USED_RE = re.compile(r"Using MoE kernel config from (.+)\.\s*$")
MOE_DOWN_SUFFIX = "_down.json"
MOE_FALLBACK_RE = re.compile(r"Config file not found at (.+?)\. Fallback to triton version (\S+) and use MoE kernel "
                             r"config from (.+?)\. Performance")
MOE_DEFAULT_RE = re.compile(r"Using default MoE kernel config\. Performance might be sub-optimal! Config file not found "
                            r"at (.+?), you can create them")
MOE_DOWN_REUSE_RE = re.compile(r"Down MoE config file not found at (.+?_down\.json); reusing the tuned up-projection "
                               r"config without TMA")
MOE_PROJECTIONS = ("up", "down")
READY_LINE = "The server is fired up and ready to roll!"
# Lines that say a kernel is (or may be) compiled, or that a kernel config the priming should have
# written is missing (sglang-facts.md 3 and 10). kind -> regex; the serve check reads them (servecheck.py).
# The up-projection and the down-projection MoE lookups are kept apart: they are different files.
JIT_LINE_RES = (
    ("deep_gemm_session", re.compile(r"Entering DeepGEMM JIT Pre-Compile session")),
    ("deep_gemm_compile", re.compile(
        r"Try DeepGEMM JIT Compiling for <?(\w+)>? N=(\d+), K=(\d+), num_groups=(\d+)")),
    ("flashinfer_build", re.compile(r"flashinfer\.jit: Building JIT ops: (\S+)")),
    ("moe_default", re.compile(r"Using default MoE kernel config\. Performance might be sub-optimal! "
                               r"Config file not found at (.+?), you can create them")),
    ("moe_down_fallback", re.compile(r"Down MoE config file not found at (.+?_down\.json)")),
    # triton/runtime/autotuner.py Autotuner.run with TRITON_PRINT_AUTOTUNING=1: printed after every benchmark it ran
    # (a result read from the disk cache prints nothing)
    ("triton_autotune", re.compile(r"Triton autotuning for function (\w+)")),
    # sglang/kernels/jit/utils/compile/loader.py load_jit with SGLANG_CRASH_ON_JIT_COMPILE=1 on a cache miss
    ("sglang_jit_crash", re.compile(r"JIT module '([^']+)' has no usable cached build under (\S+), and "
                                    r"SGLANG_CRASH_ON_JIT_COMPILE forbids compiling")),
)
JIT_LINES_KEPT = 200
# The decode CUDA-graph batch sizes a server captured, from its capture log line (when it prints them).
DECODE_CAPTURE_RE = re.compile(r"Capture \w+ decode CUDA graph end\. bs=\[([\d, ]*)\]")


# The file a disk-full OSError names: "... No space left on device: '/profiles/triton/x/y.cubin'".
DISK_PATH_RE = re.compile(r"(?:No space left on device|Disk quota exceeded): '([^']+)'")


class LogScan(object):
    """Collects the facts of one server run from its output lines."""

    def __init__(self):
        self.tail = collections.deque(maxlen=TAIL_LINES)
        self.kv_dtypes = []
        self.failure = None  # (error_type, matched text)
        # per projection: the file used, the file looked up, a fallback to another triton version, the default
        # config, and (down only) the tuned up-projection config reused
        self.moe = dict((p, {"path": None, "looked_up": None, "fallback": None, "default": False, "reused_up": False})
                        for p in MOE_PROJECTIONS)
        self.ready_line = False
        self.lines = 0
        self.jit_lines = []  # [{"kind", "text", "t"}]: t is the wall time the line was read
        self.jit_counts = collections.Counter()
        self.decode_capture_bs = None

    def feed(self, line):
        line = line.rstrip()
        if not line:
            return
        self.lines += 1
        self.tail.append(line)
        for regex in KV_DTYPE_RES:
            match = regex.search(line)
            if match:
                self.kv_dtypes.append(match.group(1))
        for rank, (error_type, patterns, _fix) in enumerate(FAILURE_PATTERNS):
            if self.failure is not None and rank >= self._rank(self.failure[0]):
                break
            match = next((m for m in (regex.search(line) for regex in patterns) if m), None)
            if match:
                self.failure = (error_type, match.group(0).strip()[:400])
                break
        self._feed_moe(line)
        for kind, regex in JIT_LINE_RES:
            found = regex.search(line)
            if found:
                self.jit_counts[kind] += 1
                if len(self.jit_lines) < JIT_LINES_KEPT:
                    self.jit_lines.append({"kind": kind, "text": line[:400], "match": found.group(0)[:300],
                                           "name": found.group(1) if found.groups() else None, "t": time.time()})
                break
        match = DECODE_CAPTURE_RE.search(line)
        if match:
            self.decode_capture_bs = [int(b) for b in match.group(1).replace(" ", "").split(",") if b]
        if READY_LINE in line:
            self.ready_line = True

    @staticmethod
    def _projection(path):
        return "down" if path.endswith(MOE_DOWN_SUFFIX) else "up"

    def _feed_moe(self, line):
        match = MOE_USED_RE.search(line)
        if match and "Fallback to triton version" not in line:
            lookup = self.moe[self._projection(match.group(1))]
            lookup.update(path=match.group(1), looked_up=match.group(1))
            return
        match = MOE_FALLBACK_RE.search(line)
        if match:
            lookup = self.moe[self._projection(match.group(1))]
            lookup.update(path=match.group(3), looked_up=match.group(1),
                          fallback={"triton_version": match.group(2), "path": match.group(3)})
            return
        match = MOE_DEFAULT_RE.search(line)
        if match:
            lookup = self.moe[self._projection(match.group(1))]
            lookup.update(default=True, looked_up=match.group(1))
            return
        match = MOE_DOWN_REUSE_RE.search(line)
        if match:
            self.moe["down"].update(reused_up=True, looked_up=match.group(1))

    @staticmethod
    def _rank(error_type):
        for rank, entry in enumerate(FAILURE_PATTERNS):
            if entry[0] == error_type:
                return rank
        return len(FAILURE_PATTERNS)

    def log_failure(self):
        """(error_type, message) when the log shows a classified failure, else None."""
        if self.failure is None:
            return None
        error_type, text = self.failure
        fix = dict((e, f) for e, _p, f in FAILURE_PATTERNS)[error_type]
        return error_type, "server log: %r. Fix: %s" % (text, fix)

    def kv_drift(self):
        """(error_type, message) when the KV cache dtype is not the canonical fp8_e4m3, else None."""
        wanted = contract.CANONICAL_SETTINGS["kv_cache_dtype"]
        if not self.kv_dtypes:
            return ("config_drift", "the server log has no 'KV Cache is allocated. dtype: ...' line, so the KV cache "
                    "dtype (%s requested) cannot be verified; keep the server log level at info or lower" % wanted)
        wrong = [d for d in self.kv_dtypes if d not in contract.EXPECTED_KV_TORCH_DTYPES]
        if wrong:
            return ("config_drift", "the server allocated its KV cache as %s although --kv-cache-dtype %s was "
                    "passed (expected %s): something overrode the flag (model override, attention backend or "
                    "an extra server argument); the primed kernels would not match serving"
                    % (wrong[0], wanted, " or ".join(contract.EXPECTED_KV_TORCH_DTYPES)))
        return None

    def moe_validation(self, moe_config_dir, to_contract=None, origin=None):
        """What the warm-up's server read for the MoE kernels, the up and the down lookup apart (contract paths).

        moe_config_used / verified_in_log / moe_config_fallback / moe_default_config are the up-projection lookup
        (a _down.json is never "the config used"); moe_lookups holds both: the file used, the file looked up,
        and its source: tuned or shipped (``origin`` tells them apart; "ours" without it) under
        ``moe_config_dir``, package (SGLang's own directory), default, up_config_reused (down only), or None
        when the log shows no lookup.
        """
        ours = moe_config_dir.rstrip("/") + "/configs/"
        lookups = {}
        for projection in MOE_PROJECTIONS:
            facts = self.moe[projection]
            used, looked = facts["path"], facts["looked_up"]
            if to_contract:
                used = to_contract(used) if used else used
                looked = to_contract(looked) if looked else looked
            if used:
                source = (origin(used) if origin else "ours") if used.startswith(ours) else "package"
            elif facts["reused_up"]:
                source = "up_config_reused"
            elif facts["default"]:
                source = "default"
            else:
                source = None
            fallback = dict(facts["fallback"], path=used) if facts["fallback"] else None
            lookups[projection] = {"config_used": used, "looked_up": looked, "source": source, "fallback": fallback}
        up = lookups["up"]
        return {
            "moe_config_used": up["config_used"],
            "verified_in_log": bool(up["config_used"] and up["config_used"].startswith(ours) and not up["fallback"]),
            "moe_config_fallback": up["fallback"],
            "moe_default_config": self.moe["up"]["default"],
            "moe_lookups": lookups,
        }


def split_lines(buffer):
    """(complete lines, remainder) of a text buffer; carriage returns (progress bars) end lines too."""
    parts = re.split(r"\r\n|\r|\n", buffer)
    return parts[:-1], parts[-1]

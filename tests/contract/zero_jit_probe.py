"""Runs in the contract venv (real sglang 0.5.23, triton, CPU torch): what the zero-JIT switches really are.

    python zero_jit_probe.py <scratch dir>

Prints one line, ZERO-JIT-PROBE-RESULT <json>: the real load_jit's refusal on a cache miss with
SGLANG_CRASH_ON_JIT_COMPILE=1 (no compiler is run), SGLang's declaration of that switch, Triton's autotune knobs and
the line Autotuner.run prints, libtriton's boolean parsing, the linear-attention backend choices, and sglang's own
version and pins. Read by test_real_zero_jit.py.
"""

import importlib.metadata
import inspect
import json
import os
import re
import sys

scratch = sys.argv[1]
os.environ["SGLANG_CRASH_ON_JIT_COMPILE"] = "1"
os.environ["SGLANG_JIT_CACHE_DIR"] = os.path.join(scratch, "jit")
out = {}

from sglang.kernels.jit.utils.compile import loader  # noqa: E402
from sglang.srt import environ  # noqa: E402

try:
    loader.load_jit("fused_add_rmsnorm", "128", cuda_files=[], header_only=True)
    out["crash"] = None
except RuntimeError as exc:
    out["crash"] = "%s: %s" % (type(exc).__name__, exc)
out["jit_cache_dir_written"] = sorted(os.listdir(os.environ["SGLANG_JIT_CACHE_DIR"])) if os.path.isdir(
    os.environ["SGLANG_JIT_CACHE_DIR"]) else []
switch = getattr(environ.envs, "SGLANG_CRASH_ON_JIT_COMPILE", None)
out["switch"] = {"declared": switch is not None, "type": type(switch).__name__ if switch is not None else None,
                 "default": getattr(switch, "default", None)}

from triton import knobs  # noqa: E402
from triton._C.libtriton import getenv_bool  # noqa: E402
from triton.runtime.autotuner import Autotuner  # noqa: E402

out["triton_version"] = importlib.metadata.version("triton")
out["autotune_envs"] = {"cache": knobs.autotuning_knobs.__dict__["cache"].key,
                        "print": knobs.autotuning_knobs.__dict__["print"].key}
source = inspect.getsource(Autotuner.run)
printed = re.search(r'print\(f"(Triton autotuning for function \{self\.base_fn\.__name__\},)', source)
out["autotune_print"] = printed.group(1) if printed else None
out["autotune_disk_file"] = "autotune.json" if '.autotune.json"' in inspect.getsource(Autotuner.check_disk_cache) else None
out["getenv_bool"] = {}
for value in ("1", "true", "TRUE", "on", "yes", "y", "0", "false", "off", "2", ""):
    os.environ["SGLANG_PREP_PROBE_BOOL"] = value
    out["getenv_bool"][value] = bool(getenv_bool("SGLANG_PREP_PROBE_BOOL", False))

from sglang.srt.arg_groups import choices  # noqa: E402

out["linear_attn_choices"] = list(choices.LINEAR_ATTN_KERNEL_BACKEND_CHOICES)
out["sglang_version"] = importlib.metadata.version("sglang")
out["requires"] = importlib.metadata.requires("sglang") or []
print("ZERO-JIT-PROBE-RESULT " + json.dumps(out))

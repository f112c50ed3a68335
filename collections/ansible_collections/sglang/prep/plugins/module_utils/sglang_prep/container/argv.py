# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that builds the SGLang server command line of a stage.

Canonical settings become explicit flags. Boolean options are store_true in
SGLang: they are passed bare to enable and omitted to disable (a following
``false``/``true`` is a parse error in SGLang 0.5.23).
"""

from __future__ import annotations

import json
import os

from .. import contract, registry
from ..server_flags import extra_args_problems
from . import mamba

# server stage -> store_true flags it enables (everything else stays off by omission), from the
# registry: deep_gemm compiles only (metrics and trace off, so nothing is scraped); the warm-ups
# turn metrics on.
STAGE_SWITCHES = dict((stage.name, stage.switches) for stage in registry.STAGES if stage.server)
SERVER_STAGES = registry.server_stages()
# compile_deep_gemm's default --timeout, which it also makes the watchdog timeout (sglang-facts.md 7).
PRECOMPILE_TIMEOUT_S = 3600.0
# What compile_deep_gemm.py sets so that every DeepGEMM kernel group compiles (sglang-facts.md 10): with the
# default threshold (8192) DeepSeek's kv_b_proj group is not reached by the warm-up.
PRECOMPILE_ENV = {"SGLANG_CHUNKED_PREFIX_CACHE_THRESHOLD": "0"}


class ArgvError(ValueError):
    """Raised for server arguments that would break the canonical policy."""


def check_extra_args(extra_args):
    """Reject extra arguments that restate or abbreviate a reserved flag, --config or --cuda-graph-config, and any
    that SGLang's parser would refuse (unknown, ambiguous abbreviation, missing value), before any work starts."""
    problems = extra_args_problems(extra_args)
    if problems:
        raise ArgvError("; ".join(problems))


def read_config(model_path):
    """The checkpoint's config.json, or None when it cannot be read (the server then refuses the model itself)."""
    try:
        with open(os.path.join(model_path, "config.json"), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def mamba_policy(model_path, extra_args=()):
    """The --max-mamba-cache-size the stage servers get for this model (mamba.policy)."""
    return mamba.policy(read_config(model_path), list(extra_args))


def server_argv(stage, model_path, tp=1, port=contract.SERVER_PORT, host="127.0.0.1",
                python="python3", extra_args=(), timeout=PRECOMPILE_TIMEOUT_S):
    """Full argv (list of strings) that launches the stage's SGLang server.

    A precompile stage (registry column) gets ``--watchdog-timeout <timeout>`` like compile_deep_gemm: the
    server's watchdog (300 s by default) would otherwise kill a forward pass that compiles for longer.
    """
    if stage not in STAGE_SWITCHES:
        raise ArgvError("stage %r does not launch a server; server stages are %s"
                        % (stage, ", ".join(SERVER_STAGES)))
    settings = contract.CANONICAL_SETTINGS
    argv = [
        python, "-m", "sglang.launch_server",
        "--model-path", model_path,
        "--host", host,
        "--port", str(int(port)),
        "--tp-size", str(int(tp)),
        "--kv-cache-dtype", settings["kv_cache_dtype"],
        "--mem-fraction-static", repr(settings["mem_fraction_static"]),
        "--chunked-prefill-size", str(settings["chunked_prefill_size"]),
        "--max-prefill-tokens", str(settings["max_prefill_tokens"]),
        "--context-length", str(settings["context_length"]),
    ]
    if settings["disable_cuda_graph"]:
        argv.append("--disable-cuda-graph")
    extra = list(extra_args)
    check_extra_args(extra)
    cache = mamba_policy(model_path, extra)["value"]
    if cache is not None:  # the canonical 1, or for a hybrid model the smallest size that serves (mamba.py)
        argv.extend(["--max-mamba-cache-size", str(cache)])
    argv.extend(STAGE_SWITCHES[stage])
    if registry.get(stage).precompile:
        argv.extend(["--watchdog-timeout", repr(float(timeout))])
    argv.extend(extra)
    return argv


def server_env(base_env, stage=None, static_launcher_off=False):
    """Environment of a stage server: the caller's, plus every cache under /profiles.

    The canonical context length exceeds most models' derived maximum, which SGLang
    refuses unless SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1. DG_JIT_CACHE_DIR, the directory
    sgl-deep-gemm itself reads, gets the value of SGLANG_DG_CACHE_DIR: SGLang copies it over only
    after deep_gemm is imported, and any earlier import would otherwise use $HOME/.dj. A precompile
    stage gets compile_deep_gemm's environment as well.

    Every server persists Triton's autotune results (contract.SERVER_ENV: TRITON_CACHE_AUTOTUNING=1), so what a
    priming server benchmarked is read back by the next one. The serve check's server also gets
    contract.SERVE_CHECK_ENV: SGLang's SGLANG_CRASH_ON_JIT_COMPILE=1 (a miss of its JIT-kernel cache raises instead
    of compiling) and TRITON_PRINT_AUTOTUNING=1 (every autotune benchmark prints a line the check reads).
    ``static_launcher_off``: TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER=0 (the inductor probe decides it, inductor.py).
    """
    env = dict(base_env)
    env.update(contract.cache_env())
    env["DG_JIT_CACHE_DIR"] = env[contract.CACHES["deep_gemm"][1]]
    env[contract.ENV_LONGER_CONTEXT] = "1"
    env.update(contract.SERVER_ENV)
    if stage is not None and registry.get(stage).precompile:
        env.update(PRECOMPILE_ENV)
    if stage is not None and stage not in registry.priming_stages():
        env.update(contract.SERVE_CHECK_ENV)
    if static_launcher_off:
        env[contract.ENV_STATIC_CUDA_LAUNCHER] = "0"
    return env

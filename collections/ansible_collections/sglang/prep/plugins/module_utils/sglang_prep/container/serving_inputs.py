# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inputs besides the model and the toolchain that change which kernels SGLang compiles, as signature fields.

Each is read from the extra server arguments (the value SGLang will parse; None when it is left to SGLang), the
checkpoint, or the environment the servers get, so that a change of any of them re-primes the stages whose output
depends on it, and the re-prime names the field (registry.SERVER_KERNEL_INPUTS, registry.MOE_SHAPE_INPUTS).
"""

from __future__ import annotations

import hashlib
import os
import re

from .. import server_flags

# The signature fields read from the extra server arguments: each is the dest of an SGLang 0.5.23 option, read as
# SGLang's parser reads it (server_flags.read_args: aliases and abbreviations included, sglang_options.py).
ARG_FIELDS = (
    "max_running_requests", "cuda_graph_max_bs_decode", "cuda_graph_bs_decode", "torch_compile_max_bs", "dtype",
    "quantization", "ep_size", "moe_runner_backend", "attention_backend", "sampling_backend", "page_size",
    "disable_shared_experts_fusion", "moe_a2a_backend", "json_model_override_args", "speculative_algorithm",
    "speculative_draft_model_path", "speculative_moe_runner_backend",
)
SWITCHES = ("disable_shared_experts_fusion",)  # store_true
# Checkpoint files beside config.json that carry the quantization (config.json itself is model_config_sha256).
QUANTIZATION_FILES = ("hf_quant_config.json", "quantize_config.json", "quant_config.json")
# Environment the servers get that can change kernels: every SGLANG_*/SGL_* name SGLang's environ.py declares, and
# the variables of the libraries that compile them. The caches the runtime points, and what it sets itself, are
# the runtime's own and stay out (argv.server_env).
LIBRARY_ENV_PREFIXES = ("FLASHINFER_", "DG_", "DJ_", "TORCHINDUCTOR_", "TORCH_", "PYTORCH_", "TRITON_", "CUDA_", "NCCL_")
SGLANG_ENV_RE = re.compile(r"\b((?:SGLANG|SGL)_[A-Z0-9_]+)\b")


def extra_arg_values(extra_args):
    """{field: the value the extra server args give it (a list for nargs="+", True for a switch)}, only those given."""
    values = server_flags.read_args(extra_args)
    return dict((field, values[field]) for field in ARG_FIELDS if field in values)


def default_attention_backend(compute_capability_major):
    """SGLang 0.5.23's default for MHA models (arg_groups/model_override_base.py, sglang-facts.md 10), or None."""
    if compute_capability_major is None:
        return None
    if compute_capability_major == 9:
        return "fa3"
    return "trtllm_mha" if compute_capability_major >= 10 else "flashinfer"


def kernel_args(extra_args, compute_capability_major):
    """The SERVER_KERNEL_INPUTS fields that come from the serving args, the backends as SGLang resolves them by
    default (FlashInfer samples on CUDA)."""
    given = extra_arg_values(extra_args)
    out = dict((field, given.get(field)) for field in ARG_FIELDS if field not in SWITCHES)
    if out["attention_backend"] is None:
        out["attention_backend"] = default_attention_backend(compute_capability_major)
    if out["sampling_backend"] is None:
        out["sampling_backend"] = "flashinfer"
    return out


def moe_shape_args(extra_args):
    """The MOE_SHAPE_INPUTS fields the serving args give the tuner (expert parallelism, quantization, fusion)."""
    given = extra_arg_values(extra_args)
    out = dict((field, given.get(field)) for field in ("ep_size", "quantization", "json_model_override_args",
                                                       "moe_runner_backend", "moe_a2a_backend", "dtype"))
    out["disable_shared_experts_fusion"] = bool(given.get("disable_shared_experts_fusion"))
    return out


def quantization_files_digest(model_path):
    """sha256 over the checkpoint's quantization files (name and bytes), or None when it has none."""
    digest = hashlib.sha256()
    found = False
    for name in QUANTIZATION_FILES:
        try:
            with open(os.path.join(model_path, name), "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        found = True
        digest.update(name.encode("utf-8") + b"\0" + data + b"\0")
    return digest.hexdigest() if found else None


def sglang_env_names(sglang_dir):
    """The SGLANG_*/SGL_* names SGLang's srt/environ.py mentions (empty when it cannot be read)."""
    try:
        with open(os.path.join(sglang_dir or "", "srt", "environ.py"), encoding="utf-8") as handle:
            return set(SGLANG_ENV_RE.findall(handle.read()))
    except OSError:
        return set()


def server_env(env, sglang_dir, own):
    """{name: value} of the kernel-relevant variables in the servers' environment, without the runtime's ``own``."""
    names = sglang_env_names(sglang_dir)
    return dict((key, value) for key, value in sorted(env.items()) if key not in own
                and (key in names or key.startswith(LIBRARY_ENV_PREFIXES)))

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When SGLang 0.5.23 uses DeepGEMM, what it needs, and why it compiled nothing (sglang-facts.md 7 and 10).

- SGLang uses DeepGEMM for FP8 block-quantized weights (``quantization_config.quant_method`` fp8 with a
  ``weight_block_size``) and for the grouped GEMMs of ``--moe-runner-backend deep_gemm``; only on CUDA SM >= 90,
  only when ``SGLANG_ENABLE_JIT_DEEPGEMM`` is on, and only when ``import deep_gemm`` works: a failed import
  (``libnvrtc.so.13`` is a NEEDED library of ``deep_gemm/_C.so``) disables it without a log line.
- sgl-deep-gemm 0.2.3.post2 compiles with NVCC only: it takes ``$CUDA_HOME``, ``$CUDA_PATH``, the directory above
  ``which nvcc``, then ``/usr/local/cuda``, and asserts ``NVCC compiler is not executable: <home>/bin/nvcc``.
- SGLang's own precompile (``python -m sglang.compile_deep_gemm``) sets ``SGLANG_CHUNKED_PREFIX_CACHE_THRESHOLD=0``
  (so DeepSeek's kv_b_proj group compiles too) and a watchdog timeout as long as its own timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from .. import server_flags

IMPORT_TIMEOUT_S = 120.0
FALSE_WORDS = ("false", "0", "no", "n")
# configs/model_config.py::is_deepseek_dsa: these architectures with an index_topk run the DSA indexer, which calls
# DeepGEMM directly (layers/attention/dsa/*)
DSA_ARCHS = ("DeepseekV3ForCausalLM", "DeepseekV32ForCausalLM", "DeepseekV3ForCausalLMNextN", "MistralLarge3ForCausalLM",
             "PixtralForConditionalGeneration", "GlmMoeDsaForCausalLM", "GlmMoeDsaForCausalLMNextN",
             "Glm5NextForConditionalGenerationNextN", "Glm5NextForConditionalGeneration", "LongcatFlashForCausalLM",
             "LongcatFlashForCausalLMNextN", "Dots3NoteForCausalLM", "Dots3NoteForCausalLMNextN", "HYV4ForCausalLM",
             "HYV4ForCausalLMNextN")
# configs/model_config.py::is_deepseek_v4 (DSV4 indexer and fp8_einsum), and models/kimi_k3.py
DIRECT_ARCHS = ("DeepseekV4ForCausalLM", "DeepseekV4ForCausalLMNextN", "DeepseekV4ForCausalLMDSpark",
                "KimiK3ForCausalLM")
# --moe-a2a-backend values with which SGLang moves FP8 MoE onto DeepGEMM (fp8.py is_deepgemm_moe_runner_backend_enabled)
DEEPGEMM_A2A = ("deepep", "mooncake", "nixl")


def _quant_config(model_path, config):
    quant = (config or {}).get("quantization_config")
    if isinstance(quant, dict):
        return quant
    try:  # ModelOpt checkpoints keep it beside config.json
        with open(os.path.join(model_path, "hf_quant_config.json"), encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data.get("quantization") if isinstance(data, dict) and isinstance(data.get("quantization"), dict) else {}


def block_fp8(quant):
    """The FP8 weight block of the checkpoint's linears, or None: quant_method fp8 with weight_block_size
    (fp8.py Fp8LinearMethod), or a compressed-tensors float8 group with strategy block (CompressedTensorsW8A8Fp8).
    Both dispatch through fp8_utils.dispatch_w8a8_block_fp8_linear, which picks DeepGEMM whenever it is on."""
    method = str(quant.get("quant_method") or quant.get("quant_algo") or "").lower()
    if method == "fp8" and quant.get("weight_block_size"):
        return list(quant["weight_block_size"])
    if method == "compressed-tensors":
        for group in (quant.get("config_groups") or {}).values():
            weights = (group or {}).get("weights") if isinstance(group, dict) else None
            if isinstance(weights, dict) and weights.get("type") == "float" and weights.get("num_bits") == 8 \
                    and weights.get("strategy") == "block":
                return list(weights.get("block_structure") or [])
    return None


def moe_runner_backend(extra_args):
    """The --moe-runner-backend the extra server arguments give (as SGLang's parser reads them), or None."""
    return server_flags.read_args(extra_args).get("moe_runner_backend")


def _overridden(config, values):
    """config.json with --json-model-override-args applied (as SGLang's model config reads it)."""
    try:
        override = json.loads(values.get("json_model_override_args") or "{}")
    except ValueError:
        override = {}
    return dict(config, **override) if isinstance(override, dict) else config


def _direct_use(config):
    """Why the architecture calls DeepGEMM directly (the DSA indexer, its own kernels), or None."""
    arch = (config.get("architectures") or [None])[0]
    if arch in DSA_ARCHS and config.get("index_topk") is not None:
        return "%s with index_topk runs the DSA indexer, which calls DeepGEMM directly" % arch
    if arch in DIRECT_ARCHS:
        return "%s calls DeepGEMM directly (indexer, fp8_einsum or its own kernels)" % arch
    return None


def usage(model_path, config, extra_args):
    """(True, why) when SGLang would run DeepGEMM kernels for this model and these args, else (False, why)."""
    values = server_flags.read_args(extra_args)
    runner = values.get("moe_runner_backend") or "auto"
    a2a = values.get("moe_a2a_backend") or "none"
    if runner == "deep_gemm":
        return True, "--moe-runner-backend deep_gemm runs the MoE grouped GEMMs on DeepGEMM"
    if runner == "megamoe" or a2a == "megamoe":
        return True, "MegaMoE (layers/moe/mega_moe*.py) runs its expert GEMMs on DeepGEMM"
    if config is None:
        return True, "%s/config.json is unreadable, so DeepGEMM use cannot be ruled out" % model_path
    config = _overridden(config, values)
    direct = _direct_use(config)
    if direct:
        return True, direct
    quant = _quant_config(model_path, config)
    block = block_fp8(quant)
    if block and not values.get("quantization"):
        return True, ("the checkpoint's linears are FP8 block-quantized (%s, block %s): every block-FP8 linear "
                      "dispatches to DeepGEMM (fp8_utils.dispatch_w8a8_block_fp8_linear)"
                      % (quant.get("quant_method"), block))
    if a2a in DEEPGEMM_A2A and (block or values.get("quantization") == "fp8"):
        return True, "--moe-a2a-backend %s with FP8 experts runs the MoE on DeepGEMM" % a2a
    method = str(quant.get("quant_method") or quant.get("quant_algo") or "").lower()
    return False, ("SGLang uses DeepGEMM for block-FP8 linears, the DSA/DSV4 indexers, MegaMoE and the deep_gemm MoE "
                   "runner; %s has %s and the MoE runner backend is %s" % (
                       model_path, ("quant_method %s without FP8 weight blocks" % method) if method
                       else "no quantization_config", runner))


def cuda_home(env):
    """The CUDA home DeepGEMM's JIT picks, or None (its lookup order)."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if env.get(var):
            return env[var]
    nvcc = shutil.which("nvcc", path=env.get("PATH"))
    if nvcc:
        return os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
    return "/usr/local/cuda" if os.path.isdir("/usr/local/cuda") else None


def nvcc_problem(env):
    """Why DeepGEMM's JIT cannot compile here (no CUDA toolkit), or None."""
    home = cuda_home(env)
    if home is None:
        return ("no CUDA toolkit: CUDA_HOME and CUDA_PATH are unset, nvcc is not on PATH and /usr/local/cuda does not "
                "exist, and DeepGEMM (sgl-deep-gemm 0.2.3.post2) compiles with NVCC only")
    nvcc = os.path.join(home, "bin", "nvcc")
    if not (os.path.isfile(nvcc) and os.access(nvcc, os.X_OK)):
        return ("NVCC compiler is not executable: %s (the CUDA home DeepGEMM picks is %s); DeepGEMM "
                "(sgl-deep-gemm 0.2.3.post2) compiles with NVCC only" % (nvcc, home))
    return None


def enabled_problem(env):
    """SGLANG_ENABLE_JIT_DEEPGEMM set false, in words, or None."""
    value = (env.get("SGLANG_ENABLE_JIT_DEEPGEMM") or "").strip().lower()
    if value in FALSE_WORDS:
        return "SGLANG_ENABLE_JIT_DEEPGEMM=%s disables DeepGEMM" % env.get("SGLANG_ENABLE_JIT_DEEPGEMM")
    return None


def import_problem(python, env):
    """What ``import deep_gemm`` raises in the servers' python (SGLang then disables DeepGEMM silently), or None."""
    try:
        proc = subprocess.run([python, "-c", "import deep_gemm"], env=env, stdout=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=IMPORT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "import deep_gemm could not be tried: %s" % exc
    if proc.returncode == 0:
        return None
    lines = [line for line in proc.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return "import deep_gemm failed: %s" % (lines[-1].strip() if lines else "exit code %d" % proc.returncode)


def inactive_reasons(python, env, compute_capability_major):
    """Every reason SGLang would have run without DeepGEMM that can be seen from here (may be empty)."""
    reasons = []
    if compute_capability_major is not None and compute_capability_major < 9:
        reasons.append("compute capability %d.x is below 9.0" % compute_capability_major)
    for problem in (enabled_problem(env), import_problem(python, env)):
        if problem:
            reasons.append(problem)
    return reasons

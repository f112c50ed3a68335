# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What SGLang's fused-MoE config lookup and its tuners agree on, for one checkpoint and one set of serving args.

The server names the file it looks up from the MoE layer's quantization method
(sglang-facts.md 10: fused_moe.py -> get_config_dtype_str / get_config_file_name):
``E=..,N=..,device_name=..[,dtype=..][,block_shape=[bn, bk]][,per_channel_quant=True][_down].json``.
The tuner (benchmark/kernels/fused_moe_triton/tuning_fused_moe_triton.py) adds ``dtype=`` only from its
own ``--dtype`` and ``per_channel_quant=True`` only from ``--per-channel-quant``; E and N follow its
``--tp-size``, ``--ep-size`` and ``--disable-shared-experts-fusion``. So the tuner argv is derived here
from the checkpoint's quantization_config (and hf_quant_config.json) and the serving args, never from
the tuner's defaults. The down projection (``<name>_down.json``) is tuned by the sibling
tune_down_moe.py, which can name only unquantized and fp8_w8a8 files.
"""

from __future__ import annotations

import json
import os
import subprocess

from .. import server_flags

# HF config keys that hold the routed-expert count (DBRX nests it: ffn_config.moe_num_experts).
MOE_EXPERT_KEYS = ("num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts")
NESTED_EXPERT_SECTIONS = ("text_config", "language_config", "ffn_config")
TUNER_DTYPES = ("auto", "fp8_w8a8", "int8_w8a16", "int8_w8a8", "int4_w4a16")
DOWN_TUNER_NAME = "tune_down_moe.py"
DOWN_SUFFIX = "_down.json"
# The plan fields recorded in moe_tune's signature: what the tuner is asked for, so a change re-tunes. (E, N and the
# file names follow from the signature's other fields: tp, the config and quantization digests, the serving args and
# the GPU; recording them too would only repeat those reasons.)
PLAN_SIGNATURE_KEYS = ("dtype", "per_channel_quant", "block_shape", "ep_size", "disable_shared_experts_fusion",
                       "tune_down")
# quant_method -> (dtype selector, per_channel_quant, block shape from weight_block_size), read from each
# method's TritonMoeQuantInfo in sglang 0.5.23 (layers/quantization/*.py).
QUANT_METHODS = {
    "fp8": ("fp8_w8a8", False, True),             # fp8.py Fp8MoEMethod (block_shape=weight_block_size)
    "w8a8_fp8": ("fp8_w8a8", True, False),        # w8a8_fp8.py (per_channel_quant=True)
    "w8a8_int8": ("int8_w8a8", True, False),      # w8a8_int8.py (per_channel_quant=True)
    "blockwise_int8": ("int8_w8a8", False, True),  # blockwise_int8.py (block_shape=weight_block_size)
    "modelopt": ("fp8_w8a8", False, False),       # modelopt_quant.py ModelOptFp8MoEMethod.apply
    "modelopt_fp8": ("fp8_w8a8", False, False),
}
# moe_wna16 (GPTQ/AWQ checkpoints served with --quantization moe_wna16): int4_w4a16 or int8_w8a16 by bits;
# its block_shape [0, group_size] has a zero, so the name carries no block_shape. Its w2_qweight packs the
# intermediate dimension (moe_wna16.py MoeWNA16Method.create_weights: // pack_factor), and fused_moe.py looks
# up w2.shape[2].
WNA16_DTYPES = {4: "int4_w4a16", 8: "int8_w8a16"}
# AWQ/GPTQ checkpoints SGLang converts to Marlin on CUDA (awq.py AWQMarlinConfig / gptq.py GPTQMarlinConfig
# override_quantization_method): their MoE layers run Marlin and read no Triton config.
MARLIN_METHODS = ("awq", "gptq", "awq_marlin", "gptq_marlin")
# hf_quant_config.json (ModelOpt) quant_algo -> the method SGLang picks for it
MODELOPT_ALGOS = {"FP8": "modelopt_fp8"}
FUSION_FLAG = "--disable-shared-experts-fusion"
# MoE runner backends (--moe-runner-backend) under which SGLang's fused-MoE layer calls the Triton kernel, and so
# reads a fused-MoE config file (layers/moe/fused_moe_triton/layer.py: runner_backend.is_triton()).
TRITON_RUNNERS = ("auto", "triton")
# Runners for which SGLang turns shared-expert fusion off itself (arg_groups/overrides.py::_moe_runner_fusion_disable).
FUSION_OFF_RUNNERS = ("lora_triton", "lora_cutedsl", "lora_marlin", "flashinfer_cutedsl", "flashinfer_trtllm",
                      "experimental_sgl_trtllm", "flashinfer_trtllm_routed")
# A2A backends that move the MoE to deep_gemm / keep shared experts apart (moe_hook.py, deepseek_v2.py)
DEEPEP_A2A = ("deepep", "deepep_v2", "mooncake", "nixl", "mori")
# Shared-expert fusion, by the model's MoE block (sglang 0.5.23):
#   deepseek: models/deepseek_v2.py::shared_experts_fusion_disable_reason (DeepseekV3ForCausalLM)
#   glm: models/glm4_moe.py::Glm4MoeForCausalLM.shared_experts_fusion_disable_reason
#   qwen2_moe: models/qwen2_moe.py (Qwen2MoeSparseMoeBlock with support/enable_cuda_shared_expert_fusion, which
#              qwen3_next.py passes) -> can_fuse_shared_expert
FUSION_FAMILY = {
    "DeepseekV3ForCausalLM": "deepseek", "Glm4MoeForCausalLM": "glm",
    "Qwen3NextForCausalLM": "qwen2_moe",
}
# Architectures whose expert count the tuner (benchmark/kernels/fused_moe_triton/common_utils.py::get_model_config)
# raises by one unless --disable-shared-experts-fusion: it can name a fused layer only for these.
TUNER_FUSES = ("DeepseekV3ForCausalLM", "DeepseekV32ForCausalLM", "Glm4MoeForCausalLM", "Glm4MoeLiteForCausalLM",
               "GlmMoeDsaForCausalLM", "MistralLarge3ForCausalLM", "Llama4ForConditionalGeneration",
               "MiniMaxM3SparseForConditionalGeneration")
# HF config key of the per-expert intermediate size, per architecture (what the model's MoE block passes as
# intermediate_size; the tuner's get_model_config reads the same keys).
INTERMEDIATE_KEYS = {"MixtralForCausalLM": "intermediate_size", "GptOssForCausalLM": "intermediate_size",
                     "Llama4ForConditionalGeneration": "intermediate_size"}


def read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def model_config(model_path):
    """The checkpoint's config.json as a dict, None when it is missing or unreadable."""
    return read_json(os.path.join(model_path, "config.json"))


def num_experts(config):
    """The routed-expert count the HF config declares (top level or a nested section), 0 for none."""
    if not isinstance(config, dict):
        return 0
    for section in (config,) + tuple(config.get(name) for name in NESTED_EXPERT_SECTIONS):
        if not isinstance(section, dict):
            continue
        for key in MOE_EXPERT_KEYS:
            try:
                count = int(section.get(key) or 0)
            except (TypeError, ValueError):
                continue
            if count > 1:
                return count
    return 0


def is_moe_model(config):
    """True/False from the HF config, None when there is no config to read."""
    if config is None:
        return None
    return num_experts(config) > 1


def _int_arg(values, dest, default):
    value = values.get(dest, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError("extra server argument --%s has no integer value (%r)" % (dest.replace("_", "-"), value))


def serving_moe_args(extra_args):
    """The MoE-relevant serving settings as SGLang's parser reads the extra server args (prefixes included)."""
    values = server_flags.read_args(extra_args or ())
    override = values.get("json_model_override_args")
    try:
        override = json.loads(override) if override else {}
    except ValueError:
        raise ValueError("extra server argument --json-model-override-args is not JSON: %r" % override)
    if not isinstance(override, dict):
        raise ValueError("extra server argument --json-model-override-args must be a JSON object")
    return {"ep_size": _int_arg(values, "ep_size", 1),
            "disable_shared_experts_fusion": bool(values.get("disable_shared_experts_fusion")),
            "quantization": values.get("quantization"),
            "moe_runner_backend": values.get("moe_runner_backend") or "auto",
            "moe_a2a_backend": values.get("moe_a2a_backend") or "none",
            "dtype": values.get("dtype") or "auto",
            "json_model_override_args": override,
            "speculative_algorithm": values.get("speculative_algorithm")}


def effective_config(config, serving):
    """config.json with --json-model-override-args applied (ModelConfig updates the HF config with it)."""
    merged = dict(config or {})
    for key, value in serving["json_model_override_args"].items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            inner = dict(merged[key])
            inner.update(value)
            merged[key] = inner
        else:
            merged[key] = value
    return merged


def _ct_weights(qconf):
    """The weights' QuantizationArgs dicts of a compressed-tensors config (one per config group)."""
    groups = qconf.get("config_groups") if isinstance(qconf.get("config_groups"), dict) else {}
    return [g.get("weights") for g in groups.values() if isinstance(g, dict) and isinstance(g.get("weights"), dict)]


def checkpoint_quant(model_path, config, quantization=None):
    """How SGLang quantizes the checkpoint's experts: {method, source, dtype, per_channel_quant, block_shape, marlin}.

    ``dtype`` is the lookup's dtype selector (None: no ``dtype=`` in the name). Raises ValueError for a
    method whose fused-MoE config name is not known here.
    """
    qconf = (config or {}).get("quantization_config")
    qconf = qconf if isinstance(qconf, dict) else {}
    method, source = _quant_method(model_path, qconf, quantization)
    info = {"method": method, "source": source or "no quantization_config: unquantized weights",
            "dtype": None, "per_channel_quant": False, "block_shape": None, "pack": 1, "no_triton": None}
    if method is None:
        dtype = (config or {}).get("torch_dtype") or (config or {}).get("dtype")
        info["dtype"] = "float32" if dtype == "float32" else None  # get_config_dtype_str: torch.float -> float32
        return info
    if method in MARLIN_METHODS:
        info["no_triton"] = ("%s MoE layers run Marlin on CUDA (awq.py/gptq.py override_quantization_method picks the "
                             "Marlin method), which reads no fused-MoE Triton config" % method)
        return info
    if method == "mxfp4":
        info["pack"] = 2  # two e2m1 values per byte: w2's last dimension is intermediate // 2 (mxfp4.py)
        return info
    handler = {"moe_wna16": _wna16_quant, "compressed-tensors": _compressed_tensors_quant}.get(method, _table_quant)
    handler(info, qconf)
    return info


def _quant_method(model_path, qconf, quantization):
    """(method, source): the serving arg --quantization, else config.json's quant_method, else hf_quant_config.json."""
    if quantization:
        return str(quantization).lower(), "serving arg --quantization %s" % quantization
    if qconf.get("quant_method"):
        method = str(qconf["quant_method"]).lower()
        return method, "config.json quantization_config.quant_method %s" % method
    hf_quant = read_json(os.path.join(model_path, "hf_quant_config.json"))
    algo = ((hf_quant or {}).get("quantization") or {}).get("quant_algo")
    if algo:
        return (MODELOPT_ALGOS.get(str(algo).upper(), "modelopt:%s" % algo),
                "hf_quant_config.json quantization.quant_algo %s" % algo)
    return None, None


def _wna16_quant(info, qconf):
    bits = qconf.get("bits") or qconf.get("w_bit")
    ckpt = str(qconf.get("quant_method") or "").lower()
    # moe_wna16.py MoeWNA16Config.is_moe_wna16_compatible: GPTQ without act-order (4 or 8 bit) or AWQ 4 bit;
    # ModelConfig._verify_quantization refuses --quantization moe_wna16 for any other checkpoint
    if not ((ckpt == "gptq" and not qconf.get("desc_act") and bits in (4, 8)) or (ckpt == "awq" and bits == 4)):
        raise ValueError("SGLang refuses --quantization moe_wna16 for this checkpoint (quant_method %s, %s bits%s): "
                         "it takes GPTQ without act-order (4 or 8 bit) or AWQ 4 bit" % (
                             ckpt or "none", bits, ", desc_act" if qconf.get("desc_act") else ""))
    try:
        info["dtype"] = WNA16_DTYPES[int(bits)]
    except (KeyError, TypeError, ValueError):
        raise ValueError("moe_wna16 with %r bits has no fused-MoE config name (4 or 8 bits only)" % bits)
    info["pack"] = 8 // int(bits)  # moe_wna16.py: w2_qweight holds 8 // bits values per byte of N
    info["block_shape"] = [0, int(qconf.get("group_size") or qconf.get("q_group_size") or 0)]


def _compressed_tensors_quant(info, qconf):
    weights = _ct_weights(qconf)
    kinds = set((str(w.get("type")), int(w.get("num_bits") or 0), str(w.get("strategy"))) for w in weights)
    if len(kinds) != 1:
        raise ValueError("compressed-tensors config groups %s: moe_tune knows only one FP8 weight scheme" % sorted(kinds))
    kind, bits, strategy = kinds.pop()
    if kind == "int" and bits in (4, 8):
        info["no_triton"] = ("compressed-tensors W%dA16 MoE layers run Marlin (compressed_tensors_wNa16_moe.py), "
                             "which reads no fused-MoE Triton config" % bits)
        return
    if kind != "float" or bits != 8:
        raise ValueError("compressed-tensors %s%d weights: their fused-MoE config name is not known to moe_tune"
                         % (kind, bits))
    info["dtype"] = "fp8_w8a8"  # compressed_tensors_w8a8_fp8_moe.py apply_weights
    info["per_channel_quant"] = strategy == "channel"
    if strategy == "block":
        block = weights[0].get("block_structure")
        info["block_shape"] = [int(b) for b in block] if block else None


def _table_quant(info, qconf):
    """A method of QUANT_METHODS (dtype, per-channel, block-wise), else ValueError."""
    method = info["method"]
    if method not in QUANT_METHODS:
        raise ValueError(
            "the checkpoint's experts are quantized with %r (%s), whose fused-MoE Triton config name is not "
            "known to moe_tune; pass the tuner dtype SGLang looks up for it with --moe-dtype (prime_moe_dtype), "
            "or skip moe_tune if that method does not run the Triton fused-MoE kernel" % (method, info["source"]))
    info["dtype"], info["per_channel_quant"], blocked = QUANT_METHODS[method]
    block = qconf.get("weight_block_size") if blocked else None
    if isinstance(block, list) and len(block) == 2 and all(block):
        info["block_shape"] = [int(b) for b in block]


def _text(config):
    text = config.get("text_config")
    return text if isinstance(text, dict) else config


def fused_shared_experts(arch, text, quant, serving):
    """(count, why none): the shared experts SGLang's MoE layer fuses as extra experts (see FUSION_FAMILY)."""
    family = FUSION_FAMILY.get(arch)
    if family is None:
        return 0, "%s has no shared-expert fusion" % arch
    if serving["disable_shared_experts_fusion"]:
        return 0, "--disable-shared-experts-fusion"
    if serving["moe_runner_backend"] in FUSION_OFF_RUNNERS:
        return 0, "SGLang turns fusion off for --moe-runner-backend %s" % serving["moe_runner_backend"]
    a2a = serving["moe_a2a_backend"]
    if family == "qwen2_moe":
        shared = int(text.get("shared_expert_intermediate_size") or 0)
        if shared <= 0 or shared != text.get("moe_intermediate_size"):
            return 0, "the shared expert's size differs from the routed experts'"
        if a2a in ("deepep", "deepep_v2", "mori"):
            return 0, "--moe-a2a-backend %s" % a2a
        return 1, None
    if serving["ep_size"] > 1:
        return 0, "expert parallelism (--ep-size %d) on NVIDIA" % serving["ep_size"]
    if a2a in DEEPEP_A2A:
        return 0, "--moe-a2a-backend %s" % a2a
    if family == "glm":
        if quant["method"] == "w4afp8":
            return 0, "W4AFP8 quantizes shared and routed experts differently"
        return int(text.get("n_shared_experts") or 0), None
    routed, shared = text.get("n_routed_experts"), text.get("n_shared_experts")
    if routed not in (256, 384) or shared != 1 or (routed == 384 and quant["method"] != "quark"):
        return 0, "Config does not support fused shared expert(s) (n_routed_experts %s, n_shared_experts %s)" % (
            routed, shared)
    return 1, None


def serving_lookup(model_path, config, extra_args, tp, device_name=None, triton_kernels=False):
    """What SGLang 0.5.23's fused-MoE layer reads for this checkpoint, these serving args and tp (see the module doc).

    {E, N, dtype, block_shape, per_channel_quant, fused_shared_experts, fusion_off_reason, runner, triton,
    no_triton_reason, refused, up_name, down_name, quant}. ``triton_kernels``: whether the serving python can
    import triton_kernels (GPT-OSS's default MoE runner on Hopper needs it). Raises ValueError for bad input.
    """
    serving = serving_moe_args(extra_args)
    config = effective_config(config, serving)
    text = _text(config)
    arch = ((config.get("architectures") or [None])[0])
    quant = _serving_quant(model_path, config, serving)
    ep = serving["ep_size"]
    fused, why_not = fused_shared_experts(arch, text, quant, serving)
    routed, inter, moe_tp = _experts(arch, config, text, tp, ep)
    E = routed // ep + fused
    N = inter // moe_tp
    runner = _runner(serving, quant, triton_kernels)
    out = {"arch": arch, "E": E, "N": N // max(quant["pack"], 1), "dtype": quant["dtype"],
           "block_shape": quant["block_shape"], "per_channel_quant": quant["per_channel_quant"],
           "fused_shared_experts": fused, "fusion_off_reason": why_not, "ep_size": ep, "runner": runner,
           "quant": quant, "triton": True, "no_triton_reason": None, "refused": None, "up_name": None,
           "down_name": None, "speculative": serving["speculative_algorithm"]}
    block = quant["block_shape"]
    if block and all(block) and N % block[0]:
        out["refused"] = ("The output_size of gate's and up's weight = %d is not divisible by weight quantization "
                          "block_n = %d" % (N, block[0]))
    _triton_or_not(out, runner, serving, quant)
    if device_name and out["triton"]:
        base = "E=%d,N=%d,device_name=%s" % (E, out["N"], device_name.replace(" ", "_"))
        out["up_name"] = base + name_selectors(out) + ".json"
        out["down_name"] = base + name_selectors(out) + DOWN_SUFFIX
    return out


def _serving_quant(model_path, config, serving):
    """checkpoint_quant, with the dtype selector the serving --dtype makes of it (float32 or none)."""
    quant = checkpoint_quant(model_path, config, serving["quantization"])
    if serving["dtype"] in ("float32", "float") and quant["dtype"] is None:
        return dict(quant, dtype="float32")
    if serving["dtype"] not in ("auto", "float32", "float") and quant["dtype"] == "float32":
        return dict(quant, dtype=None)
    return quant


def _experts(arch, config, text, tp, ep):
    """(routed experts, expert intermediate size, MoE tensor-parallel size); ValueError for args SGLang refuses."""
    if tp % ep:
        raise ValueError("--ep-size %d does not divide the tensor-parallel size %d" % (ep, tp))
    moe_tp = tp // ep
    if arch == "DbrxForCausalLM":
        ffn = config.get("ffn_config") or {}
        routed, inter = int(ffn.get("moe_num_experts") or 0), int(ffn.get("ffn_hidden_size") or 0)
        moe_tp = tp  # dbrx.py DbrxExperts shards every expert over the tensor-parallel ranks
    else:
        routed = num_experts(config)
        inter = int(text.get(INTERMEDIATE_KEYS.get(arch, "moe_intermediate_size"))
                    or text.get("moe_intermediate_size") or text.get("intermediate_size") or 0)
    if not routed or not inter:
        raise ValueError("config.json declares no routed experts or no expert intermediate size")
    if routed % ep:
        raise ValueError("--ep-size %d does not divide the %d routed experts" % (ep, routed))
    if inter % moe_tp:
        raise ValueError("the expert intermediate size %d is not divisible by the MoE tensor-parallel size %d"
                         % (inter, moe_tp))
    return routed, inter, moe_tp


def _runner(serving, quant, triton_kernels):
    """The MoE runner SGLang picks: --moe-runner-backend, or what it resolves ``auto`` to for these args."""
    runner = serving["moe_runner_backend"]
    if runner == "auto" and quant["method"] == "mxfp4" and serving["ep_size"] == 1 and not serving["quantization"] \
            and triton_kernels:
        runner = "triton_kernel"  # arg_groups/model_overrides/gpt_oss.py on Hopper with triton_kernels
    if runner == "auto" and serving["moe_a2a_backend"] in DEEPEP_A2A[:4] and quant["dtype"] == "fp8_w8a8":
        runner = "deep_gemm"  # moe_hook.py: DeepEP-class a2a with FP8 runs the MoE on DeepGEMM
    return runner


def _triton_or_not(out, runner, serving, quant):
    """Whether the experts run the Triton fused-MoE kernel (out["triton"], the runner), and why not."""
    if quant["no_triton"]:
        out["triton"], out["no_triton_reason"] = False, quant["no_triton"]
        out["runner"] = "marlin"
    elif runner not in TRITON_RUNNERS:
        out["triton"] = False
        out["no_triton_reason"] = ("--moe-runner-backend %s runs the experts without the Triton fused-MoE kernel, so "
                                   "SGLang reads no fused-MoE config" % runner if runner == serving["moe_runner_backend"]
                                   else "SGLang picks the %s MoE runner for these args, which reads no fused-MoE "
                                   "config" % runner)
    else:
        out["runner"] = "triton"


def tuner_plan(model_path, config, extra_args, moe_dtype="auto", tp=1, device_name=None, triton_kernels=False):
    """The tuner inputs that make its file the one the server reads (``skip_reason`` when there is none to tune), or
    raise ValueError (bad input: SGLang itself would refuse these args, or --moe-dtype contradicts the checkpoint).

    ``moe_dtype`` "auto" follows the checkpoint; an explicit value must agree with it (it may only name the
    dtype of a quantization method not known here).
    """
    try:
        serving = serving_lookup(model_path, config, extra_args, tp, device_name, triton_kernels)
    except ValueError:
        if moe_dtype in (None, "auto"):
            raise
        serving = serving_lookup(model_path, dict(config or {}, quantization_config={}), extra_args, tp, device_name,
                                 triton_kernels)
        serving["quant"] = {"method": "unknown", "source": "--moe-dtype %s" % moe_dtype, "dtype": moe_dtype,
                            "per_channel_quant": False, "block_shape": None, "pack": 1, "no_triton": None}
        serving["dtype"] = moe_dtype
    quant = serving["quant"]
    if serving["refused"]:
        raise ValueError("SGLang refuses to build this checkpoint's experts at --tp-size %d%s: %s; serve with "
                         "expert parallelism (--ep-size) or a tensor-parallel size that keeps the per-rank expert "
                         "width a multiple of the block" % (tp, " --ep-size %d" % serving["ep_size"]
                                                            if serving["ep_size"] > 1 else "", serving["refused"]))
    wanted = serving["dtype"] if serving["dtype"] != "float32" else None
    if moe_dtype not in (None, "auto") and moe_dtype != wanted:
        raise ValueError(
            "--moe-dtype %s would make the tuner write a file SGLang never reads: for this checkpoint (%s) the "
            "server looks up %s; leave the MoE dtype at auto" % (
                moe_dtype, quant["source"], "dtype=%s" % wanted if wanted else "a name without dtype="))
    skip = _tuner_skip_reason(serving, quant)
    down = quant["dtype"] in (None, "float32", "fp8_w8a8") and not quant["per_channel_quant"]
    return {
        "dtype": serving["dtype"],
        "tuner_dtype": wanted or "auto",
        "per_channel_quant": serving["per_channel_quant"],
        "block_shape": serving["block_shape"],
        "quant_method": quant["method"],
        "quant_source": quant["source"],
        "ep_size": serving["ep_size"],
        # the tuner adds a fused expert to E unless told not to: tell it whenever SGLang fuses none
        "disable_shared_experts_fusion": serving["fused_shared_experts"] == 0,
        "fused_shared_experts": serving["fused_shared_experts"],
        "fusion_off_reason": serving["fusion_off_reason"],
        "E": serving["E"], "N": serving["N"], "runner": serving["runner"],
        "up_name": serving["up_name"], "down_name": serving["down_name"],
        "skip_reason": skip,
        "tune_down": down and skip is None,
        "down_reason": None if down else (
            "tune_down_moe.py names its file only for unquantized or fp8_w8a8 weights without per-channel "
            "quantization (use_fp8_w8a8 = args.dtype == 'fp8_w8a8'); for %s%s SGLang reuses the tuned "
            "up-projection config for the down projection (without TMA)" % (
                serving["dtype"], ", per_channel_quant" if serving["per_channel_quant"] else "")),
    }


def _tuner_skip_reason(serving, quant):
    """Why the tuner cannot write the file SGLang reads for these args (None: it can)."""
    if not serving["triton"]:
        return serving["no_triton_reason"]
    if quant["method"] == "moe_wna16":
        return ("SGLang looks up %s (N packed to %d), which the tuner cannot write: its int4/int8 weight-only branch "
                "needs a block shape (TypeError for AWQ/GPTQ checkpoints) and it names the unpacked N; SGLang uses its "
                "default config" % (serving["up_name"] or "dtype=%s" % quant["dtype"], serving["N"]))
    if quant["method"] == "compressed-tensors":
        return ("SGLang looks up %s, which the tuner cannot write: for a compressed-tensors checkpoint it sets "
                "block_shape=[0, group_size] and fails in its search-space filter; SGLang uses its default config"
                % (serving["up_name"] or "dtype=fp8_w8a8%s" % name_selectors(serving)))
    if quant["method"] == "mxfp4":
        looked_up = serving["up_name"] or "a name without dtype="
        return ("SGLang looks up %s with the MXFP4-packed N=%d, which the tuner (unquantized, N=%d) cannot write; "
                "SGLang uses its default config" % (looked_up, serving["N"], serving["N"] * 2))
    if serving["fused_shared_experts"] and serving["arch"] not in TUNER_FUSES:
        return ("SGLang fuses %d shared expert(s) into the routed experts (E=%d), and the tuner counts no fused "
                "expert for %s (it writes E=%d); serve with --disable-shared-experts-fusion to have SGLang read the "
                "tuner's E" % (serving["fused_shared_experts"], serving["E"], serving["arch"],
                               serving["E"] - serving["fused_shared_experts"]))
    return None


def name_selectors(plan):
    """The parts of the config file name the plan fixes: ',dtype=..', ',block_shape=[..]', ',per_channel_quant=True'."""
    out = ""
    if plan["dtype"]:
        out += ",dtype=%s" % plan["dtype"]
    if plan["block_shape"] and all(plan["block_shape"]):  # get_config_file_name drops a block with a zero
        out += ",block_shape=[%d, %d]" % tuple(plan["block_shape"])
    if plan["per_channel_quant"]:
        out += ",per_channel_quant=True"
    return out


def expected_name(plan, down=False, device_name=None):
    """The whole file name SGLang's lookup builds for this plan (get_config_file_name's format)."""
    if device_name is None:
        name = plan["down_name"] if down else plan["up_name"]
        if name:
            return name
        raise ValueError("the plan has no device name to build the config file name with")
    suffix = DOWN_SUFFIX if down else ".json"
    return "E=%d,N=%d,device_name=%s%s%s" % (plan["E"], plan["N"], device_name.replace(" ", "_"), name_selectors(plan), suffix)


def file_matches_plan(name, plan, down=False, device_name=None):
    """True when a tuner output's file name is, in full, the one SGLang's lookup builds for this plan."""
    return name == expected_name(plan, down, device_name)


CONFIG_KEYS = ("BLOCK_SIZE_M", "BLOCK_SIZE_N", "BLOCK_SIZE_K", "GROUP_SIZE_M", "num_warps", "num_stages")


def down_config_problem(up, down, batch_size):
    """Why tune_down_moe.py's config for ``batch_size`` would not run as tuned (one line), or None.

    fused_moe_triton_config.py::try_get_optimal_moe_config serves the up and the down projection from one
    moe_align_block_size sort: a down entry whose BLOCK_SIZE_M differs from the up entry's is overridden at serving
    time (warning 'down_moe config BLOCK_SIZE_M=.. does not match up config ..'), so it is not what was tuned.
    """
    key = str(batch_size)
    entry, up_entry = (down or {}).get(key), (up or {}).get(key)
    if not isinstance(entry, dict):
        return "it has no entry for batch size %s" % key
    missing = [name for name in CONFIG_KEYS if not isinstance(entry.get(name), int)]
    if missing:
        return "its entry for batch size %s lacks integer %s" % (key, ", ".join(missing))
    if isinstance(up_entry, dict) and entry["BLOCK_SIZE_M"] != up_entry.get("BLOCK_SIZE_M"):
        return ("its BLOCK_SIZE_M for batch size %s is %s but the up projection's is %s: SGLang overrides it to the "
                "up value at serving time (both share one moe_align_block_size sort), so the tuned down config "
                "would never run" % (key, entry["BLOCK_SIZE_M"], up_entry.get("BLOCK_SIZE_M")))
    return None


def tuner_argv(python, tuner, model, tp, plan, batch_size="B"):
    """The main tuner's argv for one batch size."""
    argv = [python, tuner, "--model", model, "--tp-size", str(tp), "--dtype", plan["tuner_dtype"]]
    if plan["per_channel_quant"]:
        argv.append("--per-channel-quant")
    if plan["ep_size"] != 1:
        argv += ["--ep-size", str(plan["ep_size"])]
    if plan["disable_shared_experts_fusion"]:
        argv.append(FUSION_FLAG)
    return argv + ["--batch-size", str(batch_size), "--tune"]


def down_tuner_argv(python, down_tuner, model, tp, plan, gate_up_config, out_dir, batch_size="B"):
    """tune_down_moe.py's argv for one batch size (its --dtype defaults to fp8_w8a8, so it is always given)."""
    argv = [python, down_tuner, "--model", model, "--tp-size", str(tp), "--ep-size", str(plan["ep_size"]),
            "--dtype", plan["tuner_dtype"], "--gate-up-config", gate_up_config, "--batch-sizes", str(batch_size),
            "--out-dir", out_dir]
    if plan["disable_shared_experts_fusion"]:
        argv.append(FUSION_FLAG)
    return argv


def down_tuner_path(tuner):
    """tune_down_moe.py beside the main tuner."""
    return os.path.join(os.path.dirname(tuner), DOWN_TUNER_NAME)


def triton_version_dir(triton_version):
    """The configs/triton_<X_Y_Z> directory to install tuned files in, and a note when it is not SGLang's exact name.

    SGLang reads configs/triton_<__version__ with dots as underscores> first, and on a miss sorts every
    configs/triton_* directory by ``tuple(int(x) for x in v.split("."))``: a directory named after a version
    with a local suffix (3.5.0+git...) makes that sort raise ValueError, i.e. every later miss crashes the
    server. The suffix is therefore dropped; SGLang reaches the files through its fallback to triton <X.Y.Z>.
    """
    public = triton_version.split("+", 1)[0]
    name = "triton_" + public.replace(".", "_")
    if public == triton_version:
        return name, None
    return name, ("triton %s has a local version suffix: SGLang's lookup cannot sort a configs/triton_%s "
                  "directory (it would crash on the next miss), so the tuned files go to %s, which SGLang "
                  "reads through its fallback (warning 'Fallback to triton version %s ...')"
                  % (triton_version, triton_version.replace(".", "_"), name, public))


def version_key(dir_name):
    """The sort key SGLang's fallback gives a configs/triton_<X_Y_Z> directory (ValueError for a local suffix)."""
    return tuple(int(x) for x in dir_name[len("triton_"):].split("_"))


def module_missing(python, module, env, timeout=60):
    """None when ``python`` finds ``module``; else why not (one line)."""
    code = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(%r) else 3)" % module
    try:
        proc = subprocess.Popen([python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                                stdin=subprocess.DEVNULL, env=env, close_fds=True)
    except OSError as exc:
        return "%s could not be run: %s" % (python, exc)
    try:
        _out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return "%s did not answer within %d s whether it can import %s" % (python, timeout, module)
    if proc.returncode == 0:
        return None
    if proc.returncode == 3:
        return "%s cannot import %s" % (python, module)
    return "%s failed looking for %s: %s" % (python, module, err.decode("utf-8", "replace").strip()[-300:])

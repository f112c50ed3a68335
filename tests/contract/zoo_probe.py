"""What REAL sglang 0.5.23 would do for a checkpoint and a set of server arguments: the oracle of the zoo tier.

Not a test module: tests/contract/test_zoo.py runs it once, with the contract venv's python, for every
(checkpoint, args) case of the zoo. stdin: JSON {"device_name": ..., "cases": [{"id", "model", "argv"}]}.
stdout: one line, RESULT_MARK + JSON list (one result per case, in order).

For each case, only SGLang's own code decides:
  - the argv goes through prepare_server_args (argparse with allow_abbrev, so `--ep-s 8` is `--ep-size 8`) and
    ServerArgs.resolve_once(); effective values are read through resolving_view;
  - ModelConfig.from_server_args (applies --json-model-override-args, --dtype, the quantization override chain
    such as awq -> awq_marlin), then the model class (get_model_architecture) and the quantization config the
    loader builds (model_loader.loader._get_quantization_config);
  - the runtime context is published from those server args (runtime_context.publish), so the parallel and exec
    state (moe_ep_size, moe_tp_size, fusion flags, runner backend) is SGLang's own;
  - the shared-expert fusion decision: layers/moe/utils.py::resolve_shared_experts_config with the model class
    (DeepSeek/Kimi/Moonlight/GLM), or qwen2_moe.py::get_num_shared_experts + can_fuse_shared_expert for the
    blocks that pass support_shared_expert_fusion (Qwen3-Next);
  - the experts layer itself is BUILT on the meta device (get_moe_impl_class(quant_config)(...), FusedMoE for
    Mixtral/Llama-4, DbrxExperts for DBRX) with the arguments the model's MoE block passes, so E (w2.shape[0]),
    N (w2.shape[2], packed for moe_wna16), the weight dtype, the quant method, its TritonMoeQuantInfo (dtype
    string via get_config_dtype_str, block shape, per-channel flag) and the runner backend come from the layer;
  - the up and down config names come from try_get_optimal_moe_config, the function fused_moe.py calls, with its
    get_moe_configs recorded (so a lookup that does not happen is not reported);
  - DeepGEMM: deep_gemm_wrapper's ENABLE_JIT_DEEPGEMM gate and fp8_utils.dispatch_w8a8_block_fp8_linear's
    choice for a block-FP8 linear, and the runner backend for the MoE;
  - the mamba state cache: mem_cache's mambaish_config(model_config) says whether the model is hybrid; for a
    hybrid model, KVCacheConfigurator.resolve_max_num_reqs (unbound, on the published schedule) says whether
    the planned --max-mamba-cache-size serves a request, and whether one less would.

No GPU here: where SGLang asks the platform (the fusion gates read `_is_cuda` and the device capability) the
probe answers as the serving GPU would (CUDA, SM 9.0: H100/H200), and says so in its output (`emulated`).
"""

import contextlib
import json
import logging
import os
import sys
import types
import warnings

RESULT_MARK = "ZOO-PROBE-RESULT "
BASE_ARGV = ["--device", "cpu", "--load-format", "dummy", "--skip-tokenizer-init"]
FLAGS = ("use_fp8_w8a8", "use_int8_w8a8", "use_int8_w8a16", "use_int4_w4a16")
SM = (9, 0)
# how each architecture's MoE block builds its experts layer (the keyword arguments it passes), read from
# sglang/srt/models/<file>.py of 0.5.23: (config keys of num_experts, intermediate_size, layer builder)
EXPERT_ARGS = {
    "DeepseekV3ForCausalLM": ("n_routed_experts", "moe_intermediate_size", "impl"),    # deepseek_v2.py DeepseekV2MoE
    "Glm4MoeForCausalLM": ("n_routed_experts", "moe_intermediate_size", "impl"),       # glm4_moe.py Glm4MoeSparseMoeBlock
    "Qwen3MoeForCausalLM": ("num_experts", "moe_intermediate_size", "impl"),           # qwen3_moe.py Qwen3MoeSparseMoeBlock
    "Qwen3NextForCausalLM": ("num_experts", "moe_intermediate_size", "impl"),          # qwen2_moe.py Qwen2MoeSparseMoeBlock
    "MixtralForCausalLM": ("num_local_experts", "intermediate_size", "fused"),         # mixtral.py MixtralMoE
    "QuantMixtralForCausalLM": ("num_local_experts", "intermediate_size", "fused"),
    "GptOssForCausalLM": ("num_local_experts", "intermediate_size", "impl"),           # gpt_oss.py GptOssSparseMoeBlock
    "Llama4ForConditionalGeneration": ("num_local_experts", "intermediate_size", "fused"),  # llama4.py Llama4MoE
    "DbrxForCausalLM": (None, None, "dbrx"),                                           # dbrx.py DbrxExperts
}
# What the probe answers as the serving GPU (CUDA, SM 9.0) would, because SGLang asks the platform there and this
# machine has no GPU: modules whose gates read a module-level _is_cuda (the fusion gates of the DeepSeek, GLM and
# Qwen2-MoE blocks; the awq/gptq -> Marlin override chain), the device capability, the mamba extra-buffer
# support of the platform, and the quantization methods quantization/__init__.py registers on CUDA only.
CUDA_GATED_MODULES = ("sglang.srt.models.deepseek_v2", "sglang.srt.models.glm4_moe", "sglang.srt.models.qwen2_moe",
                      "sglang.srt.layers.quantization.awq.awq", "sglang.srt.layers.quantization.gptq.gptq",
                      "sglang.srt.layers.quantization.marlin_utils")
CAPABILITY_MODULES = ("sglang.srt.utils.common", "sglang.srt.utils", "sglang.srt.layers.quantization.marlin_utils",
                      "sglang.srt.layers.quantization.awq.awq", "sglang.srt.layers.quantization.gptq.gptq",
                      "sglang.srt.layers.quantization.moe_wna16")


def _plain(value):
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


@contextlib.contextmanager
def serving_gpu():
    """Answer SGLang's platform questions as a CUDA SM 9.0 GPU would (the list above), restored afterwards."""
    import importlib

    import torch

    saved = [(torch.cuda, "get_device_capability", torch.cuda.get_device_capability)]
    torch.cuda.get_device_capability = lambda *a, **k: SM
    for name in CUDA_GATED_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "_is_cuda"):
            saved.append((module, "_is_cuda", module._is_cuda))
            module._is_cuda = True
    for name in CAPABILITY_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "get_device_capability"):
            saved.append((module, "get_device_capability", module.get_device_capability))
            module.get_device_capability = lambda *a, **k: SM
    hook = importlib.import_module("sglang.srt.arg_groups.mamba_hook")
    saved.append((hook, "_platform_supports_mamba_cache_extra_buffer", hook._platform_supports_mamba_cache_extra_buffer))
    hook._platform_supports_mamba_cache_extra_buffer = lambda: True
    quant = importlib.import_module("sglang.srt.layers.quantization")
    from sglang.srt.layers.quantization.mxfp4 import Mxfp4Config
    added = [table for table in (quant.QUANTIZATION_METHODS, quant.BASE_QUANTIZATION_METHODS) if "mxfp4" not in table]
    for table in added:
        table["mxfp4"] = Mxfp4Config
    try:
        yield
    finally:
        for owner, attr, value in reversed(saved):
            setattr(owner, attr, value)
        for table in added:
            table.pop("mxfp4", None)


class CudaToMeta(object):
    """A TorchFunctionMode that builds tensors asked for on "cuda" on the meta device (DbrxExperts names it)."""

    def __new__(cls):
        from torch.overrides import TorchFunctionMode

        class _Mode(TorchFunctionMode):
            def __torch_function__(self, func, types_, args=(), kwargs=None):
                kwargs = dict(kwargs or {})
                if str(kwargs.get("device") or "").startswith("cuda"):
                    kwargs["device"] = "meta"
                return func(*args, **kwargs)

        return _Mode()


def text_config(hf_config):
    return hf_config.get_text_config() if hasattr(hf_config, "get_text_config") else hf_config


def fusion(model_class, arch, hf, quant_config):
    """(number of fused shared experts, SGLang's reason when it fuses none) as the server decides it."""
    from sglang.srt.layers.moe.utils import resolve_shared_experts_config

    if getattr(model_class, "shared_experts_fusion_disable_reason", None) is not None and arch in (
            "DeepseekV3ForCausalLM", "Glm4MoeForCausalLM"):
        gate = model_class.shared_experts_fusion_disable_reason
        from sglang.srt.runtime_context import get_exec
        reason = None if get_exec().moe.disable_shared_experts_fusion else gate(hf, quant_config)
        shared = resolve_shared_experts_config(model_class, hf, quant_config)
        if shared.fusion_disabled and reason is None:
            reason = "--disable-shared-experts-fusion (given or set by SGLang's resolution)"
        return shared.num_fused_shared_experts, reason
    if arch == "Qwen3NextForCausalLM":  # qwen3_next.py passes support/enable_cuda_shared_expert_fusion=True
        from sglang.srt.layers.moe.utils import uses_per_rank_fused_shared_slots
        from sglang.srt.models.qwen2_moe import can_fuse_shared_expert, get_num_shared_experts
        from sglang.srt.runtime_context import get_parallel

        count = get_num_shared_experts(hf)
        if count > 0 and can_fuse_shared_expert(hf, quant_config) and not (
                uses_per_rank_fused_shared_slots() and get_parallel().moe_ep_size > 1):
            return count, None
        return 0, "qwen2_moe.py can_fuse_shared_expert: no"
    return 0, "the model's MoE block has no shared-expert fusion"


def build_experts(arch, hf, quant_config, fused, dtype):
    import torch

    from sglang.srt.layers.moe.ep_moe.layer import get_moe_impl_class
    from sglang.srt.layers.moe.fused_moe_triton.layer import FusedMoE
    from sglang.srt.runtime_context import get_exec

    experts_key, inter_key, builder = EXPERT_ARGS[arch]
    torch.set_default_dtype(dtype)
    with torch.device("meta"), CudaToMeta():
        if builder == "dbrx":
            from sglang.srt.models.dbrx import DbrxExperts
            return DbrxExperts(hf, layer_id=0, quant_config=quant_config, params_dtype=dtype, prefix="transformer.blocks.0.ffn.experts")
        redundant = get_exec().moe.ep_num_redundant_experts
        cls = get_moe_impl_class(quant_config) if builder == "impl" else FusedMoE
        kwargs = {}
        if arch == "GptOssForCausalLM":
            kwargs = {"with_bias": True, "activation": "swiglu"}
            if cls.__name__ == "FusedMoE":
                kwargs["use_weight_loader_fused"] = (quant_config.get_name() if quant_config else None) != "mxfp4"
        return cls(num_experts=getattr(hf, experts_key) + redundant + fused, num_fused_shared_experts=fused,
                   top_k=hf.num_experts_per_tok + fused, hidden_size=hf.hidden_size,
                   intermediate_size=getattr(hf, inter_key), layer_id=3, quant_config=quant_config,
                   prefix="model.layers.3.mlp.experts", **kwargs)


class _Reached(Exception):
    pass


def runner_quant_info(layer, hidden_dtype):
    """The quant info the layer's quant method hands its MoeRunner (None: it never calls one), from its own apply()."""
    import torch

    from sglang.srt.layers.moe.moe_runner.runner import MoeRunner
    from sglang.srt.layers.moe.token_dispatcher.standard import StandardDispatchOutput
    from sglang.srt.layers.moe.topk import StandardTopKOutput

    seen = []

    def run(self, dispatch_output, quant_info, *args, **kwargs):
        seen.append((quant_info, getattr(self, "runner_backend", None)))
        raise _Reached()

    meta = dict(device="meta")
    topk = StandardTopKOutput(torch.empty(1, 2, dtype=torch.float32, **meta), torch.empty(1, 2, dtype=torch.int32, **meta),
                              torch.empty(1, 8, dtype=hidden_dtype, **meta))
    dispatch = StandardDispatchOutput(torch.empty(1, layer.hidden_size, dtype=hidden_dtype, **meta), None, topk)
    original = MoeRunner.run
    MoeRunner.run = run
    method = layer.quant_method
    # a fused op (BaseFusedOp) dispatches apply() by platform: the server, on CUDA, runs forward_cuda
    call = method.forward_cuda if hasattr(method, "forward_cuda") else method.apply
    try:
        call(layer, dispatch)
        outcome = "apply() returned without a MoeRunner"
    except _Reached:
        outcome = None
    except Exception as exc:  # a kernel call that is not the MoeRunner (Marlin, triton_kernels, ...)
        outcome = "apply() called no MoeRunner before %s: %s" % (type(exc).__name__, str(exc)[:200])
    finally:
        MoeRunner.run = original
    return (seen[0] if seen else (None, None)), outcome


def lookup(layer, arch, hidden_dtype):
    """What fused_moe.py's try_get_optimal_moe_config looks up for this layer (None: it never runs), and the runner."""
    import sglang.srt.layers.moe.moe_runner.triton_utils.fused_moe_triton_config as cfg
    from sglang.srt.layers.moe.moe_runner.triton_utils import fused_moe as fm

    if arch == "DbrxForCausalLM":  # DbrxExperts calls fused_moe() directly: unquantized Triton
        w1, w2 = layer.ws, layer.w2s
        flags = dict((f, False) for f in FLAGS)
        block_shape, per_channel = None, False
        runner = "triton"  # dbrx.py DbrxExperts.forward calls fused_moe() itself
    else:
        (info, backend), outcome = runner_quant_info(layer, hidden_dtype)
        runner = str(backend or getattr(layer, "runner_backend", None))
        if info is None or type(info).__name__ != "TritonMoeQuantInfo":
            if info is not None:
                why = "the MoeRunner (%s) gets a %s" % (runner, type(info).__name__)
            elif backend is None and not getattr(layer, "runner_backend", None).is_triton():
                why = "the layer's MoE runner is %s (%s)" % (runner, type(layer.quant_method).__name__)
            else:
                why = outcome
            return {"triton": False, "why": why}, runner
        w1, w2 = info.w13_weight, info.w2_weight
        flags = dict((f, bool(getattr(info, f, False))) for f in FLAGS)
        block_shape, per_channel = info.block_shape, bool(info.per_channel_quant)
    dtype = cfg.get_config_dtype_str(hidden_dtype, **flags)
    padded = fm.padding_size
    if not (flags["use_fp8_w8a8"] or flags["use_int8_w8a8"]) or block_shape is not None:
        padded = 0
    seen = []
    original = cfg.get_config_file_name

    def spy(*args, **kwargs):
        name = original(*args, **kwargs)
        seen.append(name)
        return name

    cfg.get_config_file_name = spy
    cfg.get_moe_configs.cache_clear()
    try:
        cfg.try_get_optimal_moe_config(tuple(w1.shape), (w2.shape[0], w2.shape[1], w2.shape[2] - padded),
                                       2, dtype, 1, block_shape=block_shape, per_channel_quant=per_channel,
                                       return_down_config=True)
    finally:
        cfg.get_config_file_name = original
    E, _, N = w2.shape
    return {"triton": True, "E": int(E), "N": int(N) - padded, "dtype": dtype, "block_shape": _plain(block_shape),
            "per_channel_quant": per_channel, "up": seen[0] if seen else None,
            "down": seen[1] if len(seen) > 1 else None}, runner


def deep_gemm(hf, quant_config, runner):
    """Whether the server runs DeepGEMM kernels: a linear layer built with the checkpoint's quantization (its
    quant method dispatches through fp8_utils.dispatch_w8a8_block_fp8_linear when it is block-FP8), with
    deep_gemm_wrapper.ENABLE_JIT_DEEPGEMM on as on an SM90 CUDA host; or a deep_gemm MoE runner."""
    import torch

    from sglang.srt.layers import deep_gemm_wrapper
    from sglang.srt.layers.linear import RowParallelLinear

    users = []
    if quant_config is not None:
        saved = deep_gemm_wrapper.ENABLE_JIT_DEEPGEMM
        deep_gemm_wrapper.ENABLE_JIT_DEEPGEMM = True
        try:
            with torch.device("meta"), CudaToMeta():
                linear = RowParallelLinear(hf.hidden_size, hf.hidden_size, bias=False, quant_config=quant_config,
                                           prefix="model.layers.3.self_attn.o_proj")
        except AssertionError:  # RowParallelLinear asserts when the config gives linears no method (mxfp4)
            linear = types.SimpleNamespace(quant_method=None)
        finally:
            deep_gemm_wrapper.ENABLE_JIT_DEEPGEMM = saved
        for owner in (linear.quant_method, getattr(linear, "scheme", None)):
            fn = getattr(owner, "w8a8_block_fp8_linear", None)
            name = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", "")
            if fn is not None and "deepgemm" in name:
                users.append("block-FP8 linear (%s.%s)" % (type(owner).__name__, name))
    if "deep_gemm" in str(runner).lower():
        users.append("MoE runner %s" % runner)
    return users


def mamba(model_config, view):
    """Hybrid or not (mambaish_config), and whether the planned --max-mamba-cache-size serves a request."""
    from sglang.srt.mem_cache.kv_cache_configurator import KVCacheConfigurator
    from sglang.srt.mem_cache import kv_cache_configurator as kvc

    hybrid = kvc.mambaish_config(model_config) is not None
    out = {"hybrid": hybrid, "max_mamba_cache_size": view.max_mamba_cache_size}
    if not hybrid or view.max_mamba_cache_size is None:
        return out
    this = types.SimpleNamespace(model_config=model_config, attn_dp_size=1, mambaish_config=True)
    this._calculate_mamba_ratio = types.MethodType(KVCacheConfigurator._calculate_mamba_ratio, this)
    out["ratio"] = this._calculate_mamba_ratio()

    def serves(size):
        from sglang.srt.runtime_context import get_schedule
        with get_schedule().override(max_mamba_cache_size=size):
            try:
                return KVCacheConfigurator.resolve_max_num_reqs(this, 10 ** 7) > 0
            except RuntimeError as exc:
                if "too small to serve" in str(exc):
                    return False
                raise

    out["serves"] = serves(view.max_mamba_cache_size)
    out["one_less_serves"] = serves(view.max_mamba_cache_size - 1) if view.max_mamba_cache_size > 1 else False
    return out


def run_case(case, device_name):
    import torch

    import sglang.srt.layers.moe.moe_runner.triton_utils.fused_moe_triton_config as cfg
    from sglang.srt.arg_groups.overrides import resolving_view
    from sglang.srt.configs.load_config import LoadConfig
    from sglang.srt.configs.model_config import ModelConfig
    from sglang.srt.model_loader.loader import _get_quantization_config
    from sglang.srt.model_loader.utils import get_model_architecture
    from sglang.srt.runtime_context import SpawnRanks, publish
    from sglang.srt.server_args import prepare_server_args

    cfg.get_device_name = lambda: device_name
    with serving_gpu():
        return _run_case(case)


def _run_case(case):
    import sglang.srt.layers.moe.moe_runner.triton_utils.fused_moe_triton_config as cfg  # noqa: F401
    from sglang.srt.arg_groups.overrides import resolving_view
    from sglang.srt.configs.load_config import LoadConfig
    from sglang.srt.configs.model_config import ModelConfig
    from sglang.srt.layers.moe.utils import initialize_moe_config
    from sglang.srt.model_loader.loader import _get_quantization_config
    from sglang.srt.model_loader.utils import get_model_architecture
    from sglang.srt.runtime_context import SpawnRanks, publish
    from sglang.srt.server_args import prepare_server_args

    try:
        args = prepare_server_args(["--model-path", case["model"]] + case["argv"] + BASE_ARGV)
        args.resolve_once()
        model_config = ModelConfig.from_server_args(args)
    except (ValueError, AssertionError) as exc:  # SGLang refuses these arguments for this checkpoint
        return {"id": case["id"], "refused": "%s: %s" % (type(exc).__name__, exc), "stage": "arguments"}
    view = resolving_view(args)
    publish(args, role="test", ranks=SpawnRanks(world_rank=0, gpu_id=0))
    initialize_moe_config()  # what the scheduler calls after publish: the MoE runner and a2a flags
    model_class, arch = get_model_architecture(model_config)
    quant_config = _get_quantization_config(model_config, LoadConfig(load_format="dummy"))
    hf = text_config(model_config.hf_config)
    out = {"id": case["id"], "arch": arch, "emulated": "CUDA SM %d.%d where SGLang asks the platform" % SM,
           "tp_size": view.tp_size, "ep_size": view.ep_size, "moe_runner_backend": view.moe_runner_backend,
           "quantization": model_config.quantization, "dtype": str(model_config.dtype),
           "quant_config": None if quant_config is None else quant_config.get_name()}
    arch_key = model_config.hf_config.architectures[0]
    if arch_key in EXPERT_ARGS:
        fused, reason = fusion(model_class, arch_key, hf, quant_config)
        try:
            layer = build_experts(arch_key, hf, quant_config, fused, model_config.dtype)
        except ValueError as exc:  # SGLang refuses to build the experts for these args (e.g. block-FP8 N % block)
            out["refused"], out["stage"] = str(exc), "experts layer"
            out["fused_shared_experts"], out["fusion_off_reason"] = fused, reason
            out["lookup"], out["runner"], out["deep_gemm"] = None, None, deep_gemm(hf, quant_config, None)
            out["mamba"] = mamba(model_config, view)
            return out
        out["fused_shared_experts"] = fused
        out["fusion_off_reason"] = reason
        out["quant_method"] = type(getattr(layer, "quant_method", None)).__name__
        scheme = getattr(layer, "scheme", None)
        if scheme is not None:
            out["quant_method"] += "/" + type(scheme).__name__
        out["lookup"], out["runner"] = lookup(layer, arch_key, model_config.dtype)
        out["deep_gemm"] = deep_gemm(hf, quant_config, out["runner"])
    else:
        out["lookup"], out["runner"], out["deep_gemm"] = None, None, deep_gemm(hf, quant_config, None)
    out["mamba"] = mamba(model_config, view)
    return out


def main():
    request = json.load(sys.stdin)
    results = []
    for case in request["cases"]:
        try:
            results.append(run_case(case, request["device_name"]))
        except Exception as exc:  # reported per case: the test shows it as a disagreement with its cause
            import traceback
            results.append({"id": case["id"], "error": "%s: %s" % (type(exc).__name__, exc),
                            "traceback": traceback.format_exc()[-3000:]})
    sys.stdout.write(RESULT_MARK + json.dumps(results, default=_plain) + "\n")


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    os.environ.setdefault("SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN", "1")
    logging.disable(logging.WARNING)
    main()

# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""What the stand-ins read from a model directory's config.json (the only file they need)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

from sglang.srt.environ import env_bool

logger = logging.getLogger("sglang.srt.configs.model_config")

# get_context_length(): the first of these keys present in the HF config wins.
CONTEXT_LENGTH_KEYS = ("max_sequence_length", "seq_length", "max_seq_len", "model_max_length",
                       "max_position_embeddings")
# Architectures whose shared expert is fused into the routed-expert tensor (E + 1).
SHARED_EXPERT_FUSION = ("DeepseekV3ForCausalLM", "DeepseekV32ForCausalLM", "Glm4MoeForCausalLM",
                        "Glm4MoeLiteForCausalLM", "GlmMoeDsaForCausalLM", "MistralLarge3ForCausalLM")
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass
class ModelConfig:
    path: str
    hf: dict

    def get(self, *keys, default=None):
        for key in keys:
            if self.hf.get(key) is not None:
                return self.hf[key]
        return default

    @property
    def architecture(self) -> str:
        return (self.hf.get("architectures") or ["LlamaForCausalLM"])[0]

    @property
    def torch_dtype(self) -> str:
        return self.get("torch_dtype", "dtype", default="bfloat16")

    @property
    def hidden_size(self) -> int:
        return int(self.hf["hidden_size"])

    @property
    def num_layers(self) -> int:
        return int(self.hf.get("num_hidden_layers", 1))

    @property
    def num_heads(self) -> int:
        return int(self.hf.get("num_attention_heads", 1))

    @property
    def num_kv_heads(self) -> int:
        return int(self.get("num_key_value_heads", default=self.num_heads))

    @property
    def head_dim(self) -> int:
        return int(self.get("head_dim", default=self.hidden_size // self.num_heads))

    @property
    def ffn_config(self) -> dict:
        """DBRX keeps its MoE settings nested: ffn_config.{moe_num_experts, moe_top_k, ffn_hidden_size}."""
        return self.hf.get("ffn_config") or {}

    @property
    def num_experts(self) -> int:
        if self.architecture == "DbrxForCausalLM":
            return int(self.ffn_config.get("moe_num_experts") or 0)
        return int(self.get("num_local_experts", "n_routed_experts", "num_experts", default=0))

    @property
    def intermediate_size(self) -> int:
        if self.architecture == "DbrxForCausalLM":
            return int(self.ffn_config["ffn_hidden_size"])
        if self.num_experts:
            return int(self.get("moe_intermediate_size", "intermediate_size"))
        return int(self.get("intermediate_size", default=4 * self.hidden_size))

    @property
    def block_shape(self):
        quant = self.hf.get("quantization_config") or {}
        return quant.get("weight_block_size")

    def moe_quant(self, quantization=None):
        """(dtype selector, per_channel_quant, block_shape) of the fused-MoE lookup, as the layer's quant method
        gives them (get_triton_quant_info -> get_config_dtype_str). ``quantization``: --quantization, if given."""
        quant = self.hf.get("quantization_config") or {}
        method = quantization or quant.get("quant_method")
        if method is None:
            hf_quant = os.path.join(self.path, "hf_quant_config.json")
            if os.path.isfile(hf_quant):
                with open(hf_quant) as f:
                    algo = (json.load(f).get("quantization") or {}).get("quant_algo")
                method = "modelopt_fp8" if algo == "FP8" else None
        block = quant.get("weight_block_size")
        if method == "fp8":
            return "fp8_w8a8", False, block
        if method == "w8a8_fp8":
            return "fp8_w8a8", True, None
        if method == "w8a8_int8":
            return "int8_w8a8", True, None
        if method == "blockwise_int8":
            return "int8_w8a8", False, block
        if method in ("modelopt", "modelopt_fp8"):
            return "fp8_w8a8", False, None
        if method == "moe_wna16":
            return {4: "int4_w4a16", 8: "int8_w8a16"}[int(quant.get("bits"))], False, None
        return ("float32" if self.torch_dtype == "float32" else None), False, None

    @property
    def moe_dtype(self):
        """The dtype selector of the MoE config file name (None for unquantized weights)."""
        return self.moe_quant()[0]

    def derived_context_length(self) -> int:
        rope_scaling = self.hf.get("rope_scaling") or {}
        factor = rope_scaling.get("factor", 1)
        if "original_max_position_embeddings" in rope_scaling or rope_scaling.get("rope_type") == "llama3":
            factor = 1
        for key in CONTEXT_LENGTH_KEYS:
            if self.hf.get(key) is not None:
                return int(factor * self.hf[key])
        return 2048

    def num_params(self) -> int:
        """Rough parameter count, only for the pretend memory figures."""
        h, i, e = self.hidden_size, self.intermediate_size, max(self.num_experts, 1)
        attn = h * (self.num_heads + 2 * self.num_kv_heads) * self.head_dim + self.num_heads * self.head_dim * h
        return int(self.hf.get("vocab_size", 32000)) * h * 2 + self.num_layers * (attn + e * 3 * h * i)

    def weight_bytes(self) -> int:
        return self.num_params() * DTYPE_BYTES.get(self.torch_dtype, 2)

    @property
    def is_hybrid(self) -> bool:
        """A hybrid mamba/linear-attention model (SGLang gives it a mamba state cache). The real server decides by
        model config class; the stand-in by these architectures or a per-layer type list naming such layers."""
        if self.architecture in ("Qwen3NextForCausalLM", "NemotronHForCausalLM", "FalconH1ForCausalLM",
                                 "JambaForCausalLM", "GraniteMoeHybridForCausalLM", "Lfm2ForCausalLM"):
            return True
        kinds = self.hf.get("layer_types") or self.hf.get("layers_block_type") or []
        return any(str(kind) in ("mamba", "linear_attention") for kind in kinds)


def load_model_config(model_path: str) -> ModelConfig:
    """config.json of a local model directory; the errors read like transformers' own."""
    config_file = os.path.join(model_path, "config.json")
    if not os.path.isdir(model_path):
        raise OSError(
            f"{model_path} is not a local folder and is not a valid model identifier listed on "
            "'https://huggingface.co/models'\nIf this is a private repository, make sure to pass a token "
            "having permission to this repo either by logging in with `hf auth login` or by passing "
            "`token=<your_token>`"
        )
    if not os.path.isfile(config_file):
        raise OSError(
            f"{model_path} does not appear to have a file named config.json. Checkout "
            f"'https://huggingface.co/{model_path}/tree/main' for available files."
        )
    with open(config_file) as f:
        return ModelConfig(path=model_path, hf=json.load(f))


def resolve_context_length(model: ModelConfig, context_length):
    """ModelConfig._derive_context_length: refuse a longer context unless the env var allows it."""
    derived = model.derived_context_length()
    if context_length is None:
        return derived
    if context_length > derived:
        msg = (
            f"Warning: User-specified context_length ({context_length}) is greater than the derived "
            f"context_length ({derived}). This may lead to incorrect model outputs or CUDA errors. Note that "
            "the derived context_length may differ from max_position_embeddings in the model's config."
        )
        if env_bool("SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN") or env_bool("SGLANG_IS_IN_CI"):
            logger.warning(msg)
            return context_length
        raise ValueError(
            f"{msg} To allow overriding this maximum, set the env var SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1"
        )
    return context_length


def server_fuses_shared_expert(model: ModelConfig, ep_size: int = 1, disable_shared_experts_fusion=False) -> bool:
    """Whether the SERVER fuses the shared expert (the tuner's rule in moe_shape is wider).

    Real 0.5.23 (models/deepseek_v2.py and glm4_moe.py shared_experts_fusion_disable_reason, checked by
    tests/contract/test_zoo.py): never under expert parallelism on NVIDIA; DeepSeek-V3 only with 256 routed
    experts and one shared expert (384 only for Quark checkpoints, which the stand-in has none of).
    """
    if disable_shared_experts_fusion or ep_size > 1 or model.architecture not in SHARED_EXPERT_FUSION:
        return False
    if model.architecture.startswith("Glm"):
        return bool(model.get("n_shared_experts", default=0))
    return model.get("n_routed_experts") == 256 and model.get("n_shared_experts") == 1


def moe_shape(model: ModelConfig, tp_size: int, ep_size: int = 1, disable_shared_experts_fusion=False):
    """(E, N) of the fused-MoE config file name, as the tuner's common_utils computes it.

    E = routed experts per EP rank (+1 for a fused shared expert), N = 2*I/(tp/ep)/2.
    None for a model without experts.
    """
    if not model.num_experts:
        return None
    fused = model.architecture in SHARED_EXPERT_FUSION and not disable_shared_experts_fusion
    E = model.num_experts // ep_size + (1 if fused else 0)
    moe_tp_size = tp_size // ep_size
    if tp_size % ep_size or model.intermediate_size % moe_tp_size:
        raise AssertionError(f"intermediate_size {model.intermediate_size} does not split over "
                             f"tp={tp_size}, ep={ep_size}")
    shard_intermediate_size = 2 * model.intermediate_size // moe_tp_size
    return E, shard_intermediate_size // 2

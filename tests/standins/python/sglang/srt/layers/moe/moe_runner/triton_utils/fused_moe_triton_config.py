# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""Fused-MoE Triton config lookup, with the real names, paths, messages and hazards (facts 3, 6).

config_dir is $SGLANG_MOE_CONFIG_DIR or this file's directory (the shipped configs). The
variable replaces the shipped tree, it is no overlay, and a config_dir without a configs/
subdirectory makes the lookup crash with FileNotFoundError once the exact file is missing; so does a
configs/triton_<X_Y_Z+local> directory (ValueError from int()). Each fused-MoE call looks up the
up-projection file and then <name>_down.json (lookup_moe_configs).
"""

from __future__ import annotations

import functools
import json
import logging
import os

import triton

from sglang._standin_gpu import first_gpu

logger = logging.getLogger(__name__)

TUNING_URL = "https://github.com/sgl-project/sglang/tree/main/benchmark/kernels/fused_moe_triton"


def get_device_name() -> str:
    gpu = first_gpu()
    return gpu.name if gpu else "cpu"


def get_config_file_name(E, N, dtype, block_shape=None, per_channel_quant=False, down_moe=False) -> str:
    device_name = get_device_name().replace(" ", "_")
    dtype_selector = "" if not dtype else f",dtype={dtype}"
    block_shape_selector = "" if not block_shape or not all(block_shape) else f",block_shape={block_shape}"
    per_channel_quant_selector = ",per_channel_quant=True" if per_channel_quant else ""
    down_moe_selector = "_down" if down_moe else ""
    return (f"E={E},N={N},device_name={device_name}{dtype_selector}{block_shape_selector}"
            f"{per_channel_quant_selector}{down_moe_selector}.json")


def config_dir() -> str:
    return os.environ.get("SGLANG_MOE_CONFIG_DIR", os.path.dirname(os.path.realpath(__file__)))


@functools.lru_cache(maxsize=None)
def get_moe_configs(E, N, dtype, block_n=0, block_k=0, per_channel_quant=False, down_moe=False):
    """The tuned configs {batch size: config} for this shape, or None (default config).

    Like the real function it is cached per process, so the down lookup's reuse of the up configs logs no
    second "Using MoE kernel config" line.
    """
    json_file_name = get_config_file_name(E, N, dtype, [block_n, block_k], per_channel_quant, down_moe=down_moe)
    base = config_dir()
    triton_version = triton.__version__
    version_dir = "triton_" + triton_version.replace(".", "_")
    config_file_path = os.path.join(base, "configs", version_dir, json_file_name)
    if os.path.exists(config_file_path):
        with open(config_file_path) as f:
            logger.info(f"Using MoE kernel config from {config_file_path}.")
            return {int(key): val for key, val in json.load(f).items()}

    configs_root = os.path.join(base, "configs")
    available_versions = sorted(
        (d[len("triton_"):].replace("_", ".") for d in os.listdir(configs_root) if d.startswith("triton_")),
        key=lambda v: tuple(int(x) for x in v.split(".")),
        reverse=True,
    )
    for try_version in available_versions:
        if try_version == triton_version:
            continue
        try_path = os.path.join(configs_root, "triton_" + try_version.replace(".", "_"), json_file_name)
        if os.path.exists(try_path):
            with open(try_path) as f:
                logger.warning(
                    f"Config file not found at {config_file_path}. Fallback to triton version {try_version} "
                    f"and use MoE kernel config from {try_path}. Performance might be sub-optimal!"
                )
                return {int(key): val for key, val in json.load(f).items()}

    if down_moe:
        # the down projection reuses a tuned up-projection config (without TMA) when its own file is absent
        up_configs = get_moe_configs(E, N, dtype, block_n, block_k, per_channel_quant=per_channel_quant,
                                     down_moe=False)
        if up_configs is not None:
            logger.warning(
                "Down MoE config file not found at %s; reusing the tuned "
                "up-projection config without TMA. Performance might be sub-optimal.",
                config_file_path,
            )
            return up_configs
    logger.warning(
        "Using default MoE kernel config. Performance might be sub-optimal! "
        "Config file not found at %s, you can create them with " + TUNING_URL,
        config_file_path,
    )
    return None


def lookup_moe_configs(E, N, dtype, block_shape=None, per_channel_quant=False):
    """(up configs, down configs): the two lookups try_get_optimal_moe_config(..., return_down_config=True) makes
    for one fused-MoE call, in the real order (up first)."""
    block_n = block_shape[0] if block_shape else 0
    block_k = block_shape[1] if block_shape else 0
    up = get_moe_configs(E, N, dtype, block_n, block_k, per_channel_quant=per_channel_quant, down_moe=False)
    down = get_moe_configs(E, N, dtype, block_n, block_k, per_channel_quant=per_channel_quant, down_moe=True)
    return up, down

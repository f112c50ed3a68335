# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""Fused-MoE Triton tuner stand-in, with the real CLI and output (sglang-facts.md 8).

Reads E and the intermediate size from <model>/config.json, computes N = 2*I/(tp/ep)/2, and with
--tune writes `E=<E>,N=<N>,device_name=<GPU>[,dtype=...].json` into the current working directory
(json.dump indent=4 plus a newline), printing `Writing best config to <file>...`. The "best"
configs are picked deterministically from the search space (seeded by --seed), not measured.

Like the real tuner it imports ray at top level. Knobs: SGLANG_STANDIN_TUNER_FAULT=fail (exit 1 with a traceback), SGLANG_STANDIN_TUNER_S (total
pretend tuning time, default 0.2 s), and the GPU variables of sglang._standin_gpu.
"""

import argparse
import json
import os
import random
import sys
import time
from datetime import datetime

import ray  # noqa: F401  (top-level in the real tuner: without ray it fails here)
from sglang._standin_gpu import gpus
from sglang.srt._standin.model import load_model_config, moe_shape
from sglang.srt.layers.moe.moe_runner.triton_utils.fused_moe_triton_config import get_config_file_name


def get_default_batch_sizes():
    return [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 1536, 2048, 3072, 4096]


def get_configs_compute_bound():
    return [
        {"BLOCK_SIZE_M": block_m, "BLOCK_SIZE_N": block_n, "BLOCK_SIZE_K": block_k,
         "GROUP_SIZE_M": group_size, "num_warps": num_warps, "num_stages": num_stages}
        for num_stages in (2, 3, 4, 5)
        for block_m in (16, 32, 64, 128, 256)
        for block_k in (64, 128, 256)
        for block_n in (32, 64, 128, 256)
        for num_warps in (4, 8)
        for group_size in (1, 16, 32, 64)
    ]


def sort_config(config):
    keys = ("BLOCK_SIZE_M", "BLOCK_SIZE_N", "BLOCK_SIZE_K", "GROUP_SIZE_M", "num_warps", "num_stages")
    return {k: config[k] for k in keys}


def save_configs(configs, filename):
    print(f"Writing best config to {filename}...")
    with open(filename, "w") as f:
        json.dump(configs, f, indent=4)
        f.write("\n")


def config_dtype_str(args, torch_dtype):
    if args.dtype != "auto":
        return args.dtype
    return "float32" if torch_dtype == "float32" else None


def main(args):
    if os.environ.get("SGLANG_STANDIN_TUNER_FAULT") == "fail":
        raise RuntimeError("Triton Error [CUDA]: an illegal memory access was encountered "
                           "(stand-in fault SGLANG_STANDIN_TUNER_FAULT=fail)")
    model = load_model_config(args.model)
    shape = moe_shape(model, args.tp_size, args.ep_size, args.disable_shared_experts_fusion)
    if shape is None:
        raise AttributeError(f"'{model.architecture}' config has no attribute 'num_local_experts'")
    E, N = shape
    block_shape = model.block_shape
    filename = get_config_file_name(E, N, config_dtype_str(args, model.torch_dtype), block_shape,
                                    args.per_channel_quant)
    if args.batch_sizes is not None:
        batch_sizes = args.batch_sizes
    elif args.batch_size is not None:
        batch_sizes = [args.batch_size]
    else:
        batch_sizes = get_default_batch_sizes()
    num_gpus = len(gpus())
    if num_gpus == 0:
        raise KeyError("GPU")  # ray.available_resources()["GPU"] on a host without GPUs
    pause = float(os.environ.get("SGLANG_STANDIN_TUNER_S") or 0.2) / len(batch_sizes)

    if not args.tune:
        for batch_size in batch_sizes:
            config = {"BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 32, "GROUP_SIZE_M": 8}
            print(f"Batch size: {batch_size}, config: {config}")
            print(f"Kernel time: {10.0 + batch_size / 100:.2f} us")
        return

    if args.search_space_file:
        with open(args.search_space_file) as f:
            search_space = json.load(f)
        if not isinstance(search_space, list) or not all(isinstance(c, dict) for c in search_space):
            raise ValueError("--search-space-file must contain a JSON list of configs")
    else:
        search_space = get_configs_compute_bound()
    if block_shape is not None:
        search_space = [c for c in search_space if block_shape[1] % c["BLOCK_SIZE_K"] == 0]
    print(f"Start tuning over {len(search_space)} configurations to create {filename}...")
    start = time.perf_counter()
    best = {}
    for batch_size in batch_sizes:
        rng = random.Random(f"{args.seed}/{filename}/{batch_size}")
        time.sleep(pause)
        best[batch_size] = sort_config(rng.choice(search_space))
        print(f"{datetime.now().ctime()}] Completed tuning for batch_size={batch_size}")
    save_configs(best, filename)
    print(f"Tuning took {time.perf_counter() - start:.2f} seconds")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=str, default="mistralai/Mixtral-8x7B-Instruct-v0.1")
    parser.add_argument("--tp-size", "--tp", type=int, default=2)
    parser.add_argument("--ep-size", "--ep", type=int, default=1)
    parser.add_argument("--dtype", type=str, choices=["auto", "fp8_w8a8", "int8_w8a16", "int8_w8a8", "int4_w4a16"],
                        default="auto")
    parser.add_argument("--per-channel-quant", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, required=False)
    parser.add_argument("--batch-sizes", type=int, nargs="+",
                        help="Tune or benchmark an explicit set of token counts in parallel.")
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--search-space-file", type=str,
                        help="JSON file containing an explicit list of Triton configs to evaluate with --tune.")
    parser.add_argument("--disable-shared-experts-fusion", action="store_true")
    sys.exit(main(parser.parse_args()))

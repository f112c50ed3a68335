# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""Down-projection config tuner stand-in (benchmark/kernels/fused_moe_triton/tune_down_moe.py), real CLI and output.

Run after the main tuner with its output as --gate-up-config. For each batch size it pins BLOCK_SIZE_M to the
gate/up config nearest that M (one sort feeds both GEMMs) and picks a down config deterministically from the
search space (not measured). The file is named like the real script names it:
get_config_file_name(E, N, get_config_dtype_str(dtype, use_fp8_w8a8=args.dtype == "fp8_w8a8"), block_shape,
down_moe=True), i.e. only fp8_w8a8 or no dtype (float32 for float32 weights), never per_channel_quant. It is
written with json.dump(indent=4) (no trailing newline) into --out-dir, and `wrote <path>` is printed.
Like the real script it imports the main tuner, and with it ray.
"""

import argparse
import json
import os
import random
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--tp-size", type=int, required=True)
    parser.add_argument("--ep-size", type=int, default=1)
    parser.add_argument("--dtype", default="fp8_w8a8")
    parser.add_argument("--gate-up-config", required=True, help="the main tuner's output json for this geometry")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=None)
    parser.add_argument("--out-dir", default=".")
    parser.add_argument("--disable-shared-experts-fusion", action="store_true")
    args = parser.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tuning_fused_moe_triton as tuner  # noqa: F401  (imports ray, as the real one does)
    from tuning_fused_moe_triton import get_configs_compute_bound, get_default_batch_sizes, sort_config

    from sglang._standin_gpu import gpus
    from sglang.srt._standin.model import load_model_config, moe_shape
    from sglang.srt.layers.moe.moe_runner.triton_utils.fused_moe_triton_config import get_config_file_name

    if os.environ.get("SGLANG_STANDIN_TUNER_FAULT") == "fail_down":
        raise RuntimeError("Triton Error [CUDA]: an illegal memory access was encountered "
                           "(stand-in fault SGLANG_STANDIN_TUNER_FAULT=fail_down)")
    if not gpus():
        raise RuntimeError("No CUDA GPUs are available")  # torch.set_default_device("cuda") without a GPU
    model = load_model_config(args.model)
    E, N = moe_shape(model, args.tp_size, args.ep_size, args.disable_shared_experts_fusion)
    block_shape = model.block_shape
    with open(args.gate_up_config) as f:
        gate_up = {int(k): v for k, v in json.load(f).items()}
    batch_sizes = args.batch_sizes or get_default_batch_sizes()
    space = get_configs_compute_bound()
    name = get_config_file_name(E, N, "fp8_w8a8" if args.dtype == "fp8_w8a8" else (
        "float32" if model.torch_dtype == "float32" else None), block_shape, down_moe=True)

    results = {}
    for M in batch_sizes:
        pinned = dict(gate_up[min(gate_up, key=lambda k: abs(k - M))])
        rng = random.Random(f"down/{name}/{M}")
        best = dict(rng.choice(space))
        best["BLOCK_SIZE_M"] = pinned["BLOCK_SIZE_M"]
        results[M] = sort_config(best)
        print(f"M={M}: best down {results[M]} (12.5us)", flush=True)

    path = os.path.join(args.out_dir, name)
    json.dump(results, open(path, "w"), indent=4)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

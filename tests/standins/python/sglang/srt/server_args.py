# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""The server's command line: same flag names, types, choices, defaults and parse errors as
`prepare_server_args` of SGLang 0.5.23 (sglang-facts.md 1 and 2), for the flags listed there.

Like the real parser this uses `parse_args` (unknown flags are errors), keeps argparse's prefix
matching (`--tp 2` means `--tp-size 2`) and makes every boolean a store_true flag, so
`--enable-metrics false` fails with "unrecognized arguments: false" and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import re
import shlex
from decimal import Decimal

logger = logging.getLogger("sglang.srt.arg_groups.argparse_actions")

# arg_groups/choices.py LINEAR_ATTN_KERNEL_BACKEND_CHOICES (GDN/KDA kernels)
LINEAR_ATTN_KERNEL_BACKEND_CHOICES = ["triton", "cutedsl", "flashinfer", "flashkda", "nvidia_kda", "ptx_kda", "helion",
                                      "intel_xpu"]
KV_CACHE_DTYPE_CHOICES = ["auto", "fp8_e5m2", "fp8_e4m3", "mxfp8", "bf16", "bfloat16", "nvfp4", "fp4_mx_block16"]
LOAD_FORMAT_CHOICES = [
    "auto", "pt", "safetensors", "instanttensor", "npcache", "dummy", "sharded_state", "presharded",
    "gguf", "expert_pack", "bitsandbytes", "mistral", "layered", "flash_rl", "remote",
    "remote_instance", "fastsafetensors", "private", "runai_streamer",
]
ATTENTION_BACKEND_CHOICES = [
    "triton", "torch_native", "flex_attention", "dsa", "nsa", "qsa", "dsv4", "compressed", "fa3",
    "fa4", "flashinfer", "llada2_cfg_flashinfer", "flashmla", "trtllm_mla", "cutedsl_mla",
    "tokenspeed_mla", "trtllm_mha", "hpc_ops", "minicpm_flashattn", "minicpm_flashinfer", "aiter",
    "wave", "intel_amx", "ascend", "intel_xpu",
]
QUANTIZATION_CHOICES = [
    "awq", "fp8", "mxfp8", "gptq", "gptq_marlin", "awq_marlin", "bitsandbytes", "gguf", "modelopt", "modelopt_fp8",
    "modelopt_fp4", "nvfp4_online", "modelopt_mixed", "petit_nvfp4", "w8a8_int8", "w8a8_fp8", "moe_wna16", "w4afp8",
    "mxfp4", "auto-round", "auto-round-int8", "compressed-tensors", "modelslim", "mxfp_w4a8", "quark",
    "quark_int4fp8_moe", "quark_mxfp4", "mlx_q4", "mlx_q8", "unquant", "humming",
]
MOE_RUNNER_BACKEND_CHOICES = [
    "auto", "deep_gemm", "triton", "triton_kernel", "flashinfer_trtllm", "experimental_sgl_trtllm",
    "flashinfer_trtllm_routed", "flashinfer_cutlass", "flashinfer_mxfp4", "flashinfer_cutedsl",
    "flashinfer_megamoe", "cutlass", "aiter", "marlin", "humming", "experimental_sgl_marlin",
    "lora_cutedsl", "lora_triton", "lora_marlin", "hpc_ops", "megamoe", "intel_xpu",
]
CUDA_GRAPH_BACKEND_CHOICES = ["full", "breakable", "disabled"]
DTYPE_CHOICES = ["auto", "half", "float16", "bfloat16", "float", "float32"]


def human_readable_int(value: str) -> int:
    """Integers with SI (k, M, G, T; decimals allowed) or IEC (Ki, Mi, Gi, Ti) suffixes."""
    value = value.strip()
    si = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    iec = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)", value)
    if match:
        number, suffix = match.groups()
        if suffix in iec:
            if "." in number:
                raise argparse.ArgumentTypeError(
                    f"Decimals are not allowed with IEC suffixes like '{suffix}'. "
                    f"Use an integer IEC value such as '{int(Decimal(number))}{suffix}', "
                    f"or an SI value such as '{number}{suffix[0]}'."
                )
            return int(number) * iec[suffix]
        return int(Decimal(number) * si[suffix])
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"Invalid integer value: '{value}'. "
            "Use a plain integer, SI suffixes (1k, 1M), or IEC suffixes (1Ki, 1Mi). "
            "Suffixes are case-sensitive."
        )


def parse_cuda_graph_backend_arg(raw: str) -> str:
    if raw == "tc_piecewise":
        raise argparse.ArgumentTypeError("tc_piecewise was removed; select breakable, full, or disabled")
    return raw


class DeprecatedStoreTrueAction(argparse.Action):
    """A deprecated flag that still stores True and prints a warning (before logging is set up)."""

    def __init__(self, option_strings, dest, new_flag=None, nargs=0, const=True, default=False, **kwargs):
        self.new_flag = new_flag
        super().__init__(option_strings, dest, nargs=nargs, const=const, default=default, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        replacement = f" Use '{self.new_flag}' instead." if self.new_flag else ""
        logger.warning(
            f"\033[1;33m'{option_string}' is deprecated and will be removed in a future release.{replacement}\033[0m"
        )
        setattr(namespace, self.dest, True)


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    flag = lambda *names, **kw: add(*names, action="store_true", **kw)  # noqa: E731

    # model (fields/model.py)
    add("--model-path", "--model", type=str, required=True, help="Model weights directory or hub id.")
    add("--tokenizer-path", type=str, default=None)
    flag("--skip-tokenizer-init", help="Skip tokenizer init; pass input_ids to /generate.")
    add("--load-format", type=str, default="auto", choices=LOAD_FORMAT_CHOICES)
    flag("--trust-remote-code")
    add("--context-length", type=human_readable_int, default=None)
    add("--dtype", type=str, default="auto", choices=DTYPE_CHOICES)
    add("--kv-cache-dtype", type=str, default="auto", choices=KV_CACHE_DTYPE_CHOICES)
    # serving (fields/serving.py)
    add("--host", type=str, default="127.0.0.1")
    add("--port", type=int, default=30000)
    flag("--skip-server-warmup")
    add("--served-model-name", type=str, default=None)
    add("--device", type=str, default=None)
    add("--random-seed", type=int, default=None)
    add("--watchdog-timeout", type=float, default=300)
    add("--log-level", type=str, default="info")
    add("--log-level-http", type=str, default=None)
    add("--ssl-keyfile", type=str, default=None)
    add("--ssl-keyfile-password", type=str, default=None)
    add("--api-key", type=str, default=None)
    add("--admin-api-key", type=str, default=None)
    # parallel (fields/parallel.py)
    add("--tp-size", "--tensor-parallel-size", type=int, default=1)
    add("--pp-size", "--pipeline-parallel-size", type=int, default=1)
    add("--dp-size", "--data-parallel-size", type=int, default=1)
    add("--ep-size", "--expert-parallel-size", "--ep", type=int, default=1)
    flag("--disable-shared-experts-fusion")
    # quantization (fields/quantization.py)
    add("--quantization", type=str, default=None, choices=QUANTIZATION_CHOICES)
    # schedule (fields/schedule.py)
    add("--mem-fraction-static", type=float, default=None)
    add("--chunked-prefill-size", type=int, default=None, help="-1 disables chunked prefill.")
    add("--max-prefill-tokens", type=human_readable_int, default=16384)
    add("--max-mamba-cache-size", type=int, default=None)
    add("--max-running-requests", type=int, default=None)
    add("--page-size", type=int, default=None)
    # exec (fields/exec_.py)
    add("--attention-backend", type=str, default=None, choices=ATTENTION_BACKEND_CHOICES)
    add("--moe-runner-backend", type=str, default="auto", choices=MOE_RUNNER_BACKEND_CHOICES)
    add("--linear-attn-backend", type=str, default="triton", choices=LINEAR_ATTN_KERNEL_BACKEND_CHOICES)
    add("--linear-attn-decode-backend", type=str, default=None, choices=LINEAR_ATTN_KERNEL_BACKEND_CHOICES)
    add("--linear-attn-prefill-backend", type=str, default=None, choices=LINEAR_ATTN_KERNEL_BACKEND_CHOICES)
    add("--cuda-graph-backend-decode", type=parse_cuda_graph_backend_arg, default=None,
        choices=CUDA_GRAPH_BACKEND_CHOICES)
    add("--cuda-graph-backend-prefill", type=parse_cuda_graph_backend_arg, default=None,
        choices=CUDA_GRAPH_BACKEND_CHOICES)
    add("--cuda-graph-max-bs-decode", type=int, default=None)
    add("--cuda-graph-max-bs-prefill", type=int, default=None)
    add("--cuda-graph-bs-decode", type=int, nargs="+", default=None)
    add("--cuda-graph-bs-prefill", type=int, nargs="+", default=None)
    add("--cuda-graph-prefill-max-context", "--context-bucket", type=human_readable_int, default=None)
    flag("--disable-prefill-cuda-graph")
    flag("--disable-decode-cuda-graph")
    flag("--enable-torch-compile")
    add("--torch-compile-max-bs", type=int, default=32)
    # observability (fields/observability.py)
    flag("--enable-metrics")
    flag("--enable-metrics-for-all-schedulers")
    flag("--enable-trace")
    add("--trace-modules", type=str, default="request")
    add("--otlp-traces-endpoint", type=str, default="localhost:4317")
    add("--otlp-service-name", type=str, default=None)
    # deprecated spelling registered by ServerArgs.add_cli_args itself
    add("--disable-cuda-graph", action=DeprecatedStoreTrueAction,
        new_flag="--cuda-graph-backend-{decode,prefill}=disabled",
        help="Deprecated. Use --cuda-graph-backend-{decode,prefill}=disabled instead.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sglang serve")
    add_cli_args(parser)
    return parser


def prepare_server_args(argv):
    """Parse argv exactly as the real entry point does (errors exit 2 with `sglang serve: error:`)."""
    args = build_parser().parse_args(argv)
    args.launch_command = shlex.join(argv)
    return args


def decode_cuda_graph_backend(args) -> str:
    """Resolved decode CUDA-graph backend: the explicit selector wins over the disable flags."""
    if args.cuda_graph_backend_decode is not None:
        return args.cuda_graph_backend_decode
    return "disabled" if (args.disable_cuda_graph or args.disable_decode_cuda_graph) else "full"


def prefill_cuda_graph_backend(args) -> str:
    """Resolved prefill CUDA-graph backend; on CUDA the default is `breakable`."""
    if args.cuda_graph_backend_prefill is not None:
        return args.cuda_graph_backend_prefill
    return "disabled" if (args.disable_cuda_graph or args.disable_prefill_cuda_graph) else "breakable"

# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""GPU memory settings and the KV pool, with the real heuristics and log lines (facts 2, 3).

All figures are in the units SGLang uses: gpu_mem in MB (MiB), sizes in GB (GiB).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sglang.srt.server_args import decode_cuda_graph_backend, prefill_cuda_graph_backend

logger = logging.getLogger("sglang.srt.mem_cache.memory_pool")
GB = 1 << 30
CUDA_CONTEXT_GB = 0.55  # what the CUDA context takes before weights load

KV_TORCH_DTYPES = {
    "fp8_e4m3": "torch.float8_e4m3fn",
    "fp8_e5m2": "torch.float8_e5m2",
    "mxfp8": "torch.float8_e4m3fn",
    "bf16": "torch.bfloat16",
    "bfloat16": "torch.bfloat16",
    "nvfp4": "torch.uint8",
    "fp4_mx_block16": "torch.uint8",
}
KV_BYTES = {"torch.float8_e4m3fn": 1, "torch.float8_e5m2": 1, "torch.bfloat16": 2, "torch.float16": 2,
            "torch.float32": 4, "torch.uint8": 0.5}


def kv_torch_dtype(kv_cache_dtype: str, model_dtype: str) -> str:
    """`auto` falls back to the model dtype (bfloat16 for the usual checkpoints)."""
    if kv_cache_dtype == "auto":
        return "torch." + (model_dtype if model_dtype in ("bfloat16", "float16", "float32") else "bfloat16")
    return KV_TORCH_DTYPES[kv_cache_dtype]


def default_chunked_prefill_size(gpu_mem):
    if gpu_mem is None:
        return 4096
    for limit_gib, size in ((20, 2048), (35, 4096), (60, 4096), (90, 8192), (160, 8192)):
        if gpu_mem < limit_gib * 1024:
            return size
    return 16384


def default_decode_max_bs(gpu_mem, tp_size):
    if gpu_mem is None:
        return 160
    if gpu_mem < 20 * 1024:
        return 8
    if gpu_mem < 35 * 1024:
        return 48 if tp_size < 4 else 160
    if gpu_mem < 60 * 1024:
        return 32 if tp_size < 4 else 160
    if gpu_mem < 160 * 1024:
        return 256 if tp_size < 4 else 512
    return 512


def decode_capture_bs(max_bs):
    capture = [1, 2, 4, 8, 12] + list(range(16, 257, 8)) + list(range(272, 512, 16)) + list(range(512, max_bs + 1, 32))
    capture = [bs for bs in capture if bs <= max_bs]
    if max_bs not in capture:
        capture.append(max_bs)
    return capture


def prefill_capture_sizes(max_bs):
    sizes = (list(range(4, 33, 4)) + list(range(48, 257, 16)) + list(range(288, 513, 32))
             + list(range(576, 1025, 64)) + list(range(1280, 4097, 256)) + list(range(4608, max_bs + 1, 512)))
    return [s for s in sizes if s <= max_bs]


@dataclass
class MemorySettings:
    gpu_mem: float  # MB
    chunked_prefill_size: int
    decode_max_bs: int
    mem_fraction_static: float
    mem_fraction_explicit: bool


def resolve_memory_settings(args, gpu_mem) -> MemorySettings:
    """memory_hook.handle_gpu_memory_settings: fill what the user left unset."""
    chunked = args.chunked_prefill_size if args.chunked_prefill_size is not None else default_chunked_prefill_size(gpu_mem)
    max_bs = args.cuda_graph_max_bs_decode or default_decode_max_bs(gpu_mem, args.tp_size)
    if args.mem_fraction_static is not None:
        return MemorySettings(gpu_mem, chunked, max_bs, args.mem_fraction_static, True)
    activation_tokens = max(chunked, 2048) if chunked > 0 else max(args.max_prefill_tokens, 2048)
    reserved = 512 + activation_tokens * 1.5 + args.tp_size * args.pp_size / 8 * 1024
    if decode_cuda_graph_backend(args) != "disabled":
        reserved += max_bs * 2
    if prefill_cuda_graph_backend(args) != "disabled":
        reserved += len(prefill_capture_sizes(chunked)) * 8
    if gpu_mem is not None and gpu_mem > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    fraction = round((gpu_mem - reserved) / gpu_mem, 3) if gpu_mem is not None else 0.95
    return MemorySettings(gpu_mem, chunked, max_bs, fraction, False)


@dataclass
class KvPool:
    dtype: str
    num_tokens: int
    k_size_gb: float
    v_size_gb: float
    avail_after_gb: float


def allocate_kv_pool(model, settings: MemorySettings, torch_dtype: str, avail_gb: float) -> KvPool:
    """Size the pool from what mem_fraction_static leaves; too little -> SGLang's RuntimeError."""
    total_gb = settings.gpu_mem / 1024.0
    rest_gb = avail_gb - total_gb * (1 - settings.mem_fraction_static)
    cell = model.num_layers * model.num_kv_heads * model.head_dim * KV_BYTES[torch_dtype]
    num_tokens = int(rest_gb * GB / (2 * cell)) if rest_gb > 0 else 0
    if num_tokens <= 0:
        raise RuntimeError(not_enough_memory_message(settings.mem_fraction_static))
    side_gb = num_tokens * cell / GB
    return KvPool(torch_dtype, num_tokens, side_gb, side_gb, avail_gb - 2 * side_gb)


def not_enough_memory_message(mem_fraction_static) -> str:
    msg = "Not enough memory. Please try to increase --mem-fraction-static."
    if mem_fraction_static is not None:
        msg += f" Current value: mem_fraction_static={mem_fraction_static}"
    return msg


def log_kv_pool(pool: KvPool) -> None:
    logger.info(
        f"KV Cache is allocated. dtype: {pool.dtype}, #tokens: {pool.num_tokens}, "
        f"K size: {pool.k_size_gb:.2f} GB, V size: {pool.v_size_gb:.2f} GB"
    )
    logging.getLogger("sglang.srt.mem_cache.kv_cache_configurator").info(
        f"Memory pool end. avail mem={pool.avail_after_gb:.2f} GB"
    )

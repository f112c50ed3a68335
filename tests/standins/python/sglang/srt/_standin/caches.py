# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""Kernel caches the stand-in server fills, at the real locations (sglang-facts.md 6 and 7).

Every artifact is a real file written by whichever user runs the server; an artifact that
already exists is reused, not rewritten, which is what makes a second start fast. What is primed
is what the cache directories hold: a deleted entry is compiled again by the next server that needs
it. Contents are placeholders (deterministic bytes), the layout is the real one:

  DeepGEMM     $SGLANG_DG_CACHE_DIR/cache/<tag>.<digest>/{kernel.cu,kernel.cubin,meta.json,.committed},
               published by renaming $SGLANG_DG_CACHE_DIR/tmp/<uuid>; lock files in locks/
  Triton       $TRITON_CACHE_DIR/<hash>/<kernel>.{json,cubin,ptx,ttir,ttgir,llir}, __grp__<kernel>.json
               (shape-specialized kernels: see ShapeKernels)
  FlashInfer   $FLASHINFER_WORKSPACE_BASE/.cache/flashinfer/<ver>/<arch>/cached_ops/<op>/<op>.so
               and flashinfer_jit.log in <arch>/
  Inductor     $TORCHINDUCTOR_CACHE_DIR/fxgraph/<k[1:3]>/<k>/<entry> and <cc>/c<hash>.py; a warm start (FX graph
               cache hit) re-runs coordinate descent from the cached winners and compiles the configs it visits into
               $TRITON_CACHE_DIR once (the first warm start adds files, the next adds none: tests/gpu/evidence)
  sglang JIT   $SGLANG_JIT_CACHE_DIR/<target>/sgl_kernel_jit_<args>/build-<key>/deps-<key>/{sgl_deps.json,<module>.so}
               (sglang/kernels/jit/utils/compile/cache.py); with SGLANG_CRASH_ON_JIT_COMPILE=1 a miss raises
               loader.py's RuntimeError instead of compiling
  autotune     @triton.autotune (triton/runtime/autotuner.py): every process benchmarks its configs again, unless
               TRITON_CACHE_AUTOTUNING=1 and $TRITON_CACHE_DIR/<hash>/<kernel>.autotune.json holds the result;
               TRITON_PRINT_AUTOTUNING=1 prints "Triton autotuning for function <kernel>, ..." after each benchmark
  CuTe DSL     $CUTE_DSL_CACHE_DIR/cutedsl_<hash>.mlir, published from tmp.pid_<pid>_<uuid>/ by os.replace
               (nvidia-cutlass-dsl base_dsl/cache_helpers.py save_ir)
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from sglang.srt import environ

FLASHINFER_VERSION = "0.7.2"
dg_logger = logging.getLogger("sglang.srt.layers.deep_gemm_wrapper.compile_utils")
fi_logger = logging.getLogger("flashinfer.jit")
TRITON_VERSION = "3.4.0"


@dataclass(frozen=True)
class CacheDirs:
    deep_gemm: str
    triton: str
    inductor: str
    flashinfer_base: str
    sglang_jit: str
    cute_dsl: str

    @classmethod
    def from_env(cls, env=None):
        """Read after `import sglang` has set the third-party defaults under SGLANG_CACHE_DIR."""
        env = os.environ if env is None else env
        defaults = environ.third_party_cache_defaults(env)
        pick = lambda key: os.path.expanduser(env.get(key) or defaults[key])  # noqa: E731
        return cls(
            deep_gemm=environ.deep_gemm_cache_dir(env),
            triton=pick("TRITON_CACHE_DIR"),
            inductor=pick("TORCHINDUCTOR_CACHE_DIR"),
            flashinfer_base=pick("FLASHINFER_WORKSPACE_BASE"),
            sglang_jit=environ.sglang_jit_cache_dir(env),
            cute_dsl=environ.cute_dsl_cache_dir(env),
        )

    def flashinfer_workspace(self, gpu) -> str:
        return os.path.join(self.flashinfer_base, ".cache", "flashinfer", FLASHINFER_VERSION, gpu.flashinfer_arch)


def _digest(*parts) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _payload(key: str, size: int, magic: bytes = b"") -> bytes:
    block = hashlib.sha256(key.encode()).digest()
    return (magic + block * (size // len(block) + 1))[:size]


def _write_new(path: str, data) -> bool:
    """Write path atomically unless it exists. True when written."""
    if os.path.exists(path):
        return False
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.replace(tmp, path)
    return True


def compile_pause() -> None:
    """The pretend compile time, paid once per cache family that compiled something."""
    time.sleep(float(os.environ.get("SGLANG_STANDIN_COMPILE_S") or 0.05))


# ------------------------------------------------------------------------------------------ DeepGEMM

def deep_gemm_importable() -> bool:
    """deep_gemm_wrapper/configurer.py: a failed `import deep_gemm` disables DeepGEMM without a log line."""
    try:
        import deep_gemm  # noqa: F401
    except ImportError:
        return False
    return True


def deep_gemm_used(model, args) -> bool:
    """DeepGEMM runs for FP8 block-quantized weights and for --moe-runner-backend deep_gemm (sglang-facts.md 10)."""
    return bool((model.moe_dtype == "fp8_w8a8" and model.block_shape) or args.moe_runner_backend == "deep_gemm")


def deep_gemm_enabled(gpu, model, args) -> bool:
    return (gpu is not None and gpu.sm >= 90 and environ.env_bool("SGLANG_ENABLE_JIT_DEEPGEMM", True)
            and environ.env_bool("SGLANG_JIT_DEEPGEMM_PRECOMPILE", True) and deep_gemm_used(model, args)
            and deep_gemm_importable())


def nvcc_for_deep_gemm(env=None) -> str:
    """The nvcc DeepGEMM's JIT runs (sgl-deep-gemm 0.2.3.post2 is NVCC-only): $CUDA_HOME, $CUDA_PATH, the directory
    above `which nvcc`, /usr/local/cuda; then <home>/bin/nvcc must be executable, else its assertion text."""
    env = os.environ if env is None else env
    home = env.get("CUDA_HOME") or env.get("CUDA_PATH")
    if not home:
        found = shutil.which("nvcc", path=env.get("PATH"))
        home = os.path.dirname(os.path.dirname(os.path.realpath(found))) if found else None
    if not home and os.path.exists("/usr/local/cuda"):
        home = "/usr/local/cuda"
    if not home or not os.path.exists(home):
        raise RuntimeError("Assertion error: not home_path.empty() and std::filesystem::exists(home_path)")
    nvcc = os.path.join(os.path.abspath(home), "bin", "nvcc")
    if not (os.path.isfile(nvcc) and os.access(nvcc, os.X_OK)):
        raise RuntimeError(f"NVCC compiler is not executable: {nvcc}")
    return nvcc


def deep_gemm_shapes(model, tp_size, ep_size):
    """(kernel type, N, K, num_groups) of the GEMMs of one layer, per TP rank."""
    h, tp = model.hidden_size, tp_size
    q, kv = model.num_heads * model.head_dim, model.num_kv_heads * model.head_dim
    shapes = [("GEMM_NT_F8F8BF16", (q + 2 * kv) // tp, h, 1), ("GEMM_NT_F8F8BF16", h, q // tp, 1)]
    if model.num_experts:
        groups, inter = model.num_experts // ep_size, model.intermediate_size // max(tp // ep_size, 1)
        for kind in ("GROUPED_GEMM_NT_F8F8BF16_CONTIG", "GROUPED_GEMM_NT_F8F8BF16_MASKED"):
            shapes += [(kind, 2 * inter, h, groups), (kind, h, inter, groups)]
    else:
        inter = model.intermediate_size // tp
        shapes += [("GEMM_NT_F8F8BF16", 2 * inter, h, 1), ("GEMM_NT_F8F8BF16", h, inter, 1)]
    return shapes


def _dg_kernel_name(kind, sm):
    arch = "sm100" if sm >= 100 else "sm90"
    if kind.startswith("GROUPED"):
        layout = "masked" if kind.endswith("MASKED") else "contiguous"
        return f"{arch}_m_grouped_fp8_gemm_{layout}_1d2d"
    return f"{arch}_fp8_gemm_1d2d"


@contextmanager
def _dg_lock(root, kind, n, k, groups):
    lock_dir = os.path.join(root, "locks")
    os.makedirs(lock_dir, exist_ok=True)
    with open(os.path.join(lock_dir, f"{kind}_n{n}_k{k}_g{groups}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def deep_gemm_kernel_dirs(root, gpu, kind, n, k, groups):
    """cache/<tag>.<digest> of the kernels one (kind, N, K, num_groups) needs (two block sizes)."""
    tag = _dg_kernel_name(kind, gpu.sm)
    return [os.path.join(root, "cache", f"{tag}.{_digest(tag, n, k, groups, block_m, gpu.sm)[:32]}")
            for block_m in (64, 128)]


def deep_gemm_committed(kernel_dir) -> bool:
    """A kernel is in the cache when its directory holds the .committed marker and the cubin."""
    return all(os.path.exists(os.path.join(kernel_dir, name)) for name in (".committed", "kernel.cubin"))


def _publish_deep_gemm(root, kernel_dir, kind, n, k, groups, gpu) -> bool:
    """Compile into <root>/tmp/<uuid>/, then rename it to cache/<tag>.<digest> (sgl-deep-gemm's disk cache)."""
    if deep_gemm_committed(kernel_dir):
        return False
    tag = os.path.basename(kernel_dir).split(".", 1)[0]
    staging = os.path.join(root, "tmp", uuid.uuid4().hex)
    os.makedirs(staging)
    with open(os.path.join(staging, "kernel.cu"), "w") as f:
        f.write(f"// {tag} N={n} K={k} num_groups={groups}\n")
    with open(os.path.join(staging, "kernel.cubin"), "wb") as f:
        f.write(_payload(kernel_dir, 8192, b"\x7fELF"))
    with open(os.path.join(staging, "meta.json"), "w") as f:
        json.dump({"name": tag, "kernel_type": kind, "n": n, "k": k, "num_groups": groups, "arch": f"sm{gpu.sm}"}, f)
    open(os.path.join(staging, ".committed"), "w").close()
    if os.path.exists(kernel_dir):  # an incomplete entry (no marker, or its cubin deleted)
        shutil.rmtree(kernel_dir, ignore_errors=True)
    os.makedirs(os.path.dirname(kernel_dir), exist_ok=True)
    os.rename(staging, kernel_dir)
    return True


def warm_deep_gemm(dirs: CacheDirs, model, args, gpu) -> int:
    """Pre-compile every DeepGEMM kernel of the model; cached kernels are not compiled again.

    Like the real server (compile_utils.py _maybe_compile_deep_gemm_one_type_all), every (kind, N, K) logs the
    pre-compile session warning and its `Try DeepGEMM JIT Compiling` line whether or not its kernels are cached (a
    cached kernel just loads); only missing kernels need nvcc and are written.
    """
    if not deep_gemm_enabled(gpu, model, args):
        return 0
    compiled = 0
    for kind, n, k, groups in deep_gemm_shapes(model, args.tp_size, args.ep_size):
        kernel_dirs = deep_gemm_kernel_dirs(dirs.deep_gemm, gpu, kind, n, k, groups)
        cached = all(deep_gemm_committed(d) for d in kernel_dirs)
        dg_logger.warning(
            "Entering DeepGEMM JIT Pre-Compile session. It may take a long time (typically 10-20 mins) "
            "if you have not run `sglang.compile_deep_gemm`. It is recommended to run "
            "`sglang.compile_deep_gemm` with same args as `sglang.launch_server` for pre-compilation to "
            "reduce the overhead if you have not run it before. For example: "
            "`python3 -m sglang.compile_deep_gemm --model deepseek-ai/DeepSeek-V3 --tp 8 --trust-remote-code`"
        )
        dg_logger.info(
            f"Try DeepGEMM JIT Compiling for <{kind}> N={n}, K={k}, num_groups={groups} with all Ms. "
            "It only takes a little time (typically 1 sec) if you have run `python3 -m sglang.compile_deep_gemm`. "
        )
        if cached:
            continue
        nvcc_for_deep_gemm()
        with _dg_lock(dirs.deep_gemm, kind, n, k, groups):
            for d in kernel_dirs:
                compiled += _publish_deep_gemm(dirs.deep_gemm, d, kind, n, k, groups, gpu)
    if compiled:
        compile_pause()
    return compiled


# ------------------------------------------------------------------------------------------ Triton

def triton_kernels(model, args, attention_backend):
    kernels = [("write_req_to_token_pool_triton", "req_to_token")]
    if attention_backend == "flashinfer":
        kernels.append(("create_flashinfer_kv_indices_triton", "kv_indices"))
    if attention_backend == "triton":
        kernels += [("_fwd_kernel_stage1", "decode"), ("_fwd_kernel_stage2", "decode"), ("_fwd_kernel", "extend")]
    if model.num_experts:
        kernels += [("fused_moe_kernel", "w13"), ("fused_moe_kernel", "w2")]
    return kernels


def triton_entry(dirs: CacheDirs, gpu, name, variant, *key) -> int:
    """Compile one Triton kernel specialization into $TRITON_CACHE_DIR/<hash>/ unless it is there (1 if written)."""
    digest = _digest("triton", TRITON_VERSION, name, variant, gpu.sm if gpu else 0, *key)
    entry = os.path.join(dirs.triton, base64.b32encode(bytes.fromhex(digest)).decode().rstrip("="))
    if os.path.exists(os.path.join(entry, name + ".cubin")):
        return 0
    meta = {"hash": digest, "target": {"backend": "cuda", "arch": gpu.sm if gpu else 0, "warp_size": 32},
            "num_warps": 4, "num_stages": 3, "name": name, "triton_version": TRITON_VERSION}
    for ext in ("ttir", "ttgir", "llir", "ptx"):
        _write_new(os.path.join(entry, f"{name}.{ext}"), f"// {name} ({variant}) {ext}\n")
    _write_new(os.path.join(entry, name + ".json"), json.dumps(meta))
    _write_new(os.path.join(entry, f"__grp__{name}.json"),
               json.dumps({"child_paths": {f"{name}.{e}": os.path.join(entry, f"{name}.{e}")
                                           for e in ("json", "ttir", "ttgir", "llir", "ptx", "cubin")}}))
    return int(_write_new(os.path.join(entry, name + ".cubin"), _payload(entry, 4096, b"\x7fELF")))


def warm_triton(dirs: CacheDirs, model, args, gpu, attention_backend) -> int:
    written = 0
    for name, variant in triton_kernels(model, args, attention_backend):
        written += triton_entry(dirs, gpu, name, variant, model.hidden_size, model.head_dim, args.tp_size,
                                args.kv_cache_dtype)
    if written:
        compile_pause()
    return written


def bucket(tokens: int) -> int:
    """The power of two a token count is specialized for (a stand-in simplification of Triton's keys)."""
    value = 1
    while value < tokens:
        value *= 2
    return value


def moe_config_tag(configs, m: int, num_experts: int) -> str:
    """The fused-MoE kernel config for M tokens, as try_get_optimal_moe_config picks it: nearest tuned M."""
    if configs:
        cfg = configs[min(configs, key=lambda key: abs(key - m))]
        return "M{BLOCK_SIZE_M}N{BLOCK_SIZE_N}K{BLOCK_SIZE_K}G{GROUP_SIZE_M}w{num_warps}s{num_stages}".format(
            **{k: cfg.get(k, 0) for k in ("BLOCK_SIZE_M", "BLOCK_SIZE_N", "BLOCK_SIZE_K", "GROUP_SIZE_M",
                                           "num_warps", "num_stages")})
    return "default_small_m" if m <= num_experts else "default"


class ShapeKernels:
    """The Triton kernels that are specialized per shape, and whether a shape runs in a captured CUDA graph.

    CUDA-graph capture at start-up runs every captured decode batch size and prefill token count, which
    compiles their kernels (fused MoE with the config picked for that M, per phase and power-of-two bucket of
    M: decode and prefill are separate specializations here), and
    the prefill graphs cover contexts (prefix + chunk) up to --cuda-graph-prefill-max-context (default: the
    chunked-prefill size): the chunked-prefix attention kernel is compiled per context bucket up to it. A
    request whose shape is outside what was captured runs eagerly, and compiles what the cache does not hold.
    """

    def __init__(self, dirs: CacheDirs, model, gpu, moe_configs, decode_bs, prefill_sizes, chunk, max_context):
        self.dirs, self.model, self.gpu, self.moe_configs = dirs, model, gpu, moe_configs
        self.decode_bs = list(decode_bs or [])
        self.prefill_sizes = list(prefill_sizes or [])
        self.chunk = chunk if chunk and chunk > 0 else None
        self.max_context = max_context or self.chunk or 0
        self.lock = threading.Lock()

    def _tokens(self, phase: str, m: int) -> int:
        if not self.model.num_experts or self.gpu is None:
            return 0
        tag = moe_config_tag(self.moe_configs, m, self.model.num_experts)
        return sum(triton_entry(self.dirs, self.gpu, "fused_moe_kernel", variant, phase, tag, bucket(m),
                                self.model.hidden_size) for variant in ("w13", "w2"))

    def _context(self, context: int) -> int:
        if self.gpu is None:
            return 0
        return triton_entry(self.dirs, self.gpu, "_fwd_kernel", "extend_prefix", bucket(context), self.model.head_dim,
                            self.model.num_kv_heads)

    def capture(self) -> int:
        """CUDA-graph capture at start-up: compile what every captured shape runs."""
        written = (sum(self._tokens("decode", bs) for bs in self.decode_bs)
                   + sum(self._tokens("prefill", size) for size in self.prefill_sizes))
        if self.chunk:
            context = bucket(self.chunk) * 2
            while context <= bucket(self.max_context):
                written += self._context(context)
                context *= 2
        if written:
            compile_pause()
        return written

    def prefill(self, prompt_tokens: int) -> int:
        """A prompt: chunks of at most the chunked-prefill size, each after the earlier ones as its prefix."""
        written, done = 0, 0
        with self.lock:
            while done < prompt_tokens:
                size = min(self.chunk or prompt_tokens, prompt_tokens - done)
                if not self.prefill_sizes or size > max(self.prefill_sizes):
                    written += self._tokens("prefill", size)  # eager: no captured graph this large
                if done and done + size > self.max_context:
                    written += self._context(done + size)  # a context longer than the prefill graphs cover
                done += size
        if written:
            compile_pause()
        return written

    def decode(self, batch_size: int) -> int:
        """One decode step of ``batch_size`` running sequences: captured, or eager above the captured range."""
        if self.decode_bs and batch_size <= max(self.decode_bs):
            return 0
        with self.lock:
            written = self._tokens("decode", batch_size)
        if written:
            compile_pause()
        return written


# ------------------------------------------------------------------------------------------ FlashInfer

_FI_DTYPES = {"torch.float8_e4m3fn": "e4m3", "torch.float8_e5m2": "e5m2", "torch.bfloat16": "bf16",
              "torch.float16": "f16", "torch.uint8": "u8"}


def flashinfer_ops(model, kv_torch_dtype, attention_backend):
    ops = ["sampling", "page"]
    if attention_backend == "flashinfer":
        kv = _FI_DTYPES.get(kv_torch_dtype, "bf16")
        hd = model.head_dim
        common = f"dtype_q_bf16_dtype_kv_{kv}_dtype_o_bf16_dtype_idx_i32_head_dim_qk_{hd}_head_dim_vo_{hd}"
        ops += [f"batch_prefill_with_kv_cache_{common}_posenc_0_use_swa_False_use_logits_cap_False_f16qk_False",
                f"batch_decode_with_kv_cache_{common}_posenc_0_use_swa_False_use_logits_cap_False"]
    return ops


def warm_flashinfer(dirs: CacheDirs, model, gpu, kv_torch_dtype, attention_backend) -> int:
    workspace = dirs.flashinfer_workspace(gpu)
    jit_dir = os.path.join(workspace, "cached_ops")
    os.makedirs(jit_dir, exist_ok=True)
    written = 0
    with open(os.path.join(workspace, "flashinfer_jit.log"), "a") as log:
        for op in flashinfer_ops(model, kv_torch_dtype, attention_backend):
            so = os.path.join(jit_dir, op, op + ".so")
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            if not os.path.exists(so):
                log.write(f"{stamp} - INFO - flashinfer.jit: Building JIT ops: {op}\n")
                fi_logger.info(f"flashinfer.jit: Building JIT ops: {op}")
                _write_new(os.path.join(jit_dir, op, "build.ninja"), f"# {op}\nbuild {op}.so: link {op}.cuda.o\n")
                written += _write_new(so, _payload(so, 16384, b"\x7fELF"))
            log.write(f"{stamp} - INFO - flashinfer.jit: Loading JIT ops: {op}\n")
            log.write(f"{stamp} - INFO - flashinfer.jit: Finished loading JIT ops: {op}\n")
    if written:
        compile_pause()
    return written


# ------------------------------------------------------------------------------------------ Inductor

def warm_inductor(dirs: CacheDirs, model, compile_bs, gpu=None) -> int:
    """FX-graph cache entries for each batch size torch.compile captures (decode CUDA graph only).

    A batch size whose FX graph was already cached is a warm start: coordinate descent starts again from the cached
    winner and compiles the neighbouring configs it visits (Triton files), which a later warm start finds cached.
    """
    written = 0
    for bs in compile_bs:
        key = "f" + base64.b32encode(bytes.fromhex(_digest("fxgraph", model.path, bs))[:20]).decode().lower()
        entry = os.path.join(dirs.inductor, "fxgraph", key[1:3], key)
        code_hash = _digest("code", model.path, bs)[:40]
        code = os.path.join(dirs.inductor, code_hash[:2], "c" + code_hash + ".py")
        _write_new(code, f"# torch._inductor generated code for batch size {bs}\n")
        cold = _write_new(os.path.join(entry, _digest("entry", key)[:32]), _payload(entry, 2048))
        written += cold
        if not cold and gpu is not None:  # a warm start: the configs coordinate descent visits
            written += sum(triton_entry(dirs, gpu, "triton_poi_fused_moe_%d" % bs, "coordesc", step, model.hidden_size)
                           for step in range(2))
    if written:
        compile_pause()
    return written


# ------------------------------------------------------------------------------------------ Triton autotune

# sglang/kernels/ops/mamba/triton_ops/ssd_*.py: the @triton.autotune kernels a mamba2 layer runs in prefill
MAMBA_AUTOTUNED = ("_bmm_chunk_fwd_kernel", "_chunk_scan_fwd_kernel", "_chunk_state_fwd_kernel")


def autotune(dirs: CacheDirs, gpu, name, key) -> int:
    """Autotuner.run for one kernel and key in a new process (its in-memory cache is empty): 1 if a file was written.

    check_disk_cache: with TRITON_CACHE_AUTOTUNING on, a <hash>/<kernel>.autotune.json is read back and nothing is
    benchmarked; otherwise every config is benchmarked (and, with the switch on, the result stored).
    """
    cache = environ.triton_env_bool("TRITON_CACHE_AUTOTUNING")
    digest = _digest("autotune", TRITON_VERSION, name, gpu.sm, *key)
    path = os.path.join(dirs.triton, base64.b32encode(bytes.fromhex(digest)).decode().rstrip("="),
                        name[:150] + ".autotune.json")
    if cache and os.path.exists(path):
        return 0
    started = time.monotonic()
    compile_pause()  # the benchmark
    best = "BLOCK_SIZE_M: 64, BLOCK_SIZE_N: 64, BLOCK_SIZE_K: 32, num_warps: 4, num_ctas: 1, num_stages: 3, maxnreg: None"
    if environ.triton_env_bool("TRITON_PRINT_AUTOTUNING"):
        print(f"Triton autotuning for function {name},\nwith key as {tuple(key)},\n"
              f"finished after {time.monotonic() - started:.2f}s,\nbest config selected: {best};", flush=True)
    if not cache:
        return 0
    timings = [[{"kwargs": {"BLOCK_SIZE_M": m, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 32}, "num_warps": 4,
                 "num_stages": 3}, [0.01 * m, 0.01 * m, 0.01 * m]] for m in (64, 128)]
    return int(_write_new(path, json.dumps({"key": list(key), "configs_timings": timings})))


def warm_autotune(dirs: CacheDirs, model, gpu) -> int:
    """The first prefill of a process with mamba2 layers runs the SSD kernels, each @triton.autotune'd."""
    if gpu is None or not model.is_hybrid:
        return 0
    key = (model.hf.get("mamba_head_dim") or model.head_dim, model.hf.get("ssm_state_size") or 16, "torch.bfloat16")
    return sum(autotune(dirs, gpu, name, key) for name in MAMBA_AUTOTUNED)


# ------------------------------------------------------------------------------------------ CuTe DSL

def cute_dsl_kernel(dirs: CacheDirs, name, *key) -> int:
    """Compile one CuTe DSL kernel unless its MLIR is in the file cache (1 if written): cutedsl_<hash>.mlir."""
    digest = _digest("cute_dsl", name, *key)[:40]
    final = os.path.join(dirs.cute_dsl, f"cutedsl_{digest}.mlir")
    if os.path.exists(final):
        return 0
    os.makedirs(dirs.cute_dsl, exist_ok=True)
    staging = os.path.join(dirs.cute_dsl, f"tmp.pid_{os.getpid()}_{uuid.uuid4()}")
    os.makedirs(staging)
    with open(os.path.join(staging, os.path.basename(final)), "wb") as f:
        f.write(_payload(final, 4096, b"ML\xefR"))
    os.replace(os.path.join(staging, os.path.basename(final)), final)
    os.removedirs(staging)
    return 1


def warm_cute_dsl(dirs: CacheDirs, model, args, gpu) -> int:
    """A linear-attention (GDN) model whose decode backend is cutedsl (gdn_backend.py CuteDSLGDNKernel) compiles its
    CuTe DSL decode kernel in the first forward pass."""
    decode = args.linear_attn_decode_backend or args.linear_attn_backend
    gdn = model.architecture == "Qwen3NextForCausalLM" or "linear_attention" in (model.hf.get("layer_types") or [])
    if gpu is None or not gdn or decode != "cutedsl":
        return 0
    written = cute_dsl_kernel(dirs, "gdn_decode", model.hidden_size, model.num_heads, gpu.sm)
    if written:
        compile_pause()
    return written


# ------------------------------------------------------------------------------------------ sglang JIT

def sglang_jit_scope(dirs: CacheDirs, gpu, module_args):
    """(module name, build-key directory) of one sglang.kernels.jit module (cache.py build_key_dir)."""
    module = "sgl_kernel_jit_" + "_".join(str(a) for a in module_args)
    target = f"sm{gpu.sm}" if gpu is not None else "cpu"
    return module, os.path.join(dirs.sglang_jit, target, module, "build-" + _digest("build", module, target)[:16])


def warm_sglang_jit(dirs: CacheDirs, model, gpu=None) -> int:
    """load_jit of the fused add-RMSNorm module: a cached leaf is loaded; a miss compiles and publishes a leaf, or,
    with SGLANG_CRASH_ON_JIT_COMPILE=1, raises loader.py's RuntimeError before taking the build lock."""
    module, scope = sglang_jit_scope(dirs, gpu, ("fused_add_rmsnorm", model.hidden_size))
    leaf = os.path.join(scope, "deps-" + _digest("deps", module)[:16])
    if os.path.exists(os.path.join(leaf, module + ".so")):
        return 0
    if environ.env_bool("SGLANG_CRASH_ON_JIT_COMPILE"):
        raise RuntimeError(
            f"JIT module '{module}' has no usable cached build under {scope}, and SGLANG_CRASH_ON_JIT_COMPILE "
            "forbids compiling at runtime. Seed the cache with prebuilt artifacts matching this environment, or "
            "unset the flag.")
    _write_new(os.path.join(leaf, "sgl_deps.json"), json.dumps([["kernels", "csrc/norm.cuh", _digest(module)[:64]]]))
    written = _write_new(os.path.join(leaf, module + ".so"), _payload(module, 4096, b"\x7fELF"))
    if written:
        compile_pause()
    return int(written)

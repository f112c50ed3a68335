# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""Start-up, serving and shutdown of the stand-in server, in the order the real one does them.

1. parse (exit 2 on a parse error), resolve (model config, context length, memory settings);
   a failure here is an uncaught exception: traceback on stderr, exit 1
2. start the scheduler child, then what the scheduler does: load weights, allocate the KV pool,
   JIT-compile kernels into the caches, look up the MoE config, capture CUDA graphs; a failure
   here logs `Scheduler hit an exception: <traceback>` and exits 1
3. bind HTTP (errno 98 -> exit 1), serve; warm up, then `The server is fired up and ready to roll!`
4. SIGTERM/SIGINT at any point: stop serving, end the child, exit 0
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback

from sglang._standin_gpu import first_gpu
from sglang.srt._standin import caches, faults, logs, memory
from sglang.srt._standin.http import Metrics, ServerState, make_server
from sglang.srt._standin.model import load_model_config, moe_shape, resolve_context_length
from sglang.srt.layers.moe.moe_runner.triton_utils.fused_moe_triton_config import lookup_moe_configs
from sglang.srt.server_args import decode_cuda_graph_backend, prefill_cuda_graph_backend, prepare_server_args

logger = logging.getLogger("sglang.srt.entrypoints.http_server")
uvicorn_logger = logging.getLogger("uvicorn.error")
runner_logger = logging.getLogger("sglang.srt.model_executor.model_runner")
graph_logger = logging.getLogger("sglang.srt.model_executor.model_runner_components.cuda_graph_setup")
scheduler_logger = logging.getLogger("sglang.srt.managers.scheduler")

LIBCUDA_ERROR = "libcuda.so.1: cannot open shared object file: No such file or directory"


class _Shutdown(BaseException):
    """Raised in the main thread by the SIGTERM/SIGINT handler."""


class StandinServer:
    def __init__(self, args, active_faults):
        self.args = args
        self.faults = active_faults
        self.gpu = first_gpu()
        self.stopping = False
        self.scheduler = None
        self.httpd = None
        self.state = None
        self.kernels = None
        self.moe_configs = None
        self.moe_down_configs = None

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        self._install_signal_handlers()
        try:
            try:
                self.resolve()
            except Exception:
                traceback.print_exc()
                return 1
            self.scheduler = subprocess.Popen(
                [sys.executable, "-m", "sglang.srt._standin.scheduler", "sglang::scheduler_TP0"],
                stdin=subprocess.PIPE)
            try:
                self.launch_engine()
            except Exception:
                scheduler_logger.error("Scheduler hit an exception: " + traceback.format_exc())
                logger.error("Received sigquit from a child process. It usually means the child failed.")
                return 1
            return self.serve()
        except _Shutdown:
            self.shutdown()
            return 0
        finally:
            self._stop_scheduler()

    def _install_signal_handlers(self):
        def on_signal(signum, frame):
            if not self.stopping:
                self.stopping = True
                raise _Shutdown()

        signal.signal(signal.SIGINT, on_signal)
        ignore = "ignore_sigterm" in self.faults
        signal.signal(signal.SIGTERM, signal.SIG_IGN if ignore else on_signal)

    def _stop_scheduler(self):
        if self.scheduler is None or self.scheduler.poll() is not None:
            return
        self.scheduler.stdin.close()  # EOF: the child's cue to exit
        try:
            self.scheduler.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            self.scheduler.kill()
            self.scheduler.wait()

    # ------------------------------------------------------------------ 1. resolution (main process)
    def resolve(self):
        args = self.args
        if "libcuda_missing" in self.faults:
            raise OSError(LIBCUDA_ERROR)
        if self.gpu is None and args.device in (None, "cuda"):
            raise RuntimeError("No accelerator (CUDA, XPU, HPU, NPU, MUSA, MPS) or platform plugin is available.")
        self.model = load_model_config(args.model_path)
        self.context_len = resolve_context_length(self.model, args.context_length)
        self.mem = memory.resolve_memory_settings(args, self.gpu.memory_total_mib if self.gpu else None)
        sm = self.gpu.sm if self.gpu else 0
        # model_override_base.py: fa3 on Hopper, trtllm_mha on SM100 (MHA models), else flashinfer (sglang-facts.md 10)
        self.attention_backend = args.attention_backend or (
            "fa3" if 90 <= sm < 100 else "trtllm_mha" if sm >= 100 else "flashinfer")
        self.decode_backend = decode_cuda_graph_backend(args)
        self.prefill_backend = prefill_cuda_graph_backend(args)
        self.resolved = {
            key: value for key, value in vars(args).items()
            if key != "launch_command"
        }
        self.resolved.update(
            mem_fraction_static=self.mem.mem_fraction_static,
            chunked_prefill_size=self.mem.chunked_prefill_size,
            context_length=self.context_len,
            attention_backend=self.attention_backend,
            sampling_backend=getattr(args, "sampling_backend", None) or ("flashinfer" if self.gpu is not None else "pytorch"),
            served_model_name=args.served_model_name or args.model_path,
            tokenizer_path=args.tokenizer_path or args.model_path,
            cuda_graph_config={
                "decode": {"backend": self.decode_backend, "max_bs": self.mem.decode_max_bs},
                "prefill": {"backend": self.prefill_backend,
                            "max_bs": args.cuda_graph_max_bs_prefill or self.mem.chunked_prefill_size,
                            "max_context": self.prefill_max_context()},
            },
            launch_command=args.launch_command,
        )
        shown = ", ".join(f"{k}={v!r}" for k, v in self.resolved.items() if k != "launch_command")
        logger.info(f"server_args=ServerArgs({shown})")

    def prefill_max_context(self):
        """The longest context (prefix + chunk) the prefill CUDA graphs cover (stand-in model of the flag)."""
        return self.args.cuda_graph_prefill_max_context or self.mem.chunked_prefill_size

    # ------------------------------------------------------------------ 2. engine (scheduler side)
    def launch_engine(self):
        args, model, mem = self.args, self.model, self.mem
        total_gb = mem.gpu_mem / 1024.0 if mem.gpu_mem else 0.0
        avail = total_gb - memory.CUDA_CONTEXT_GB
        runner_logger.info("Init torch distributed begin.")
        runner_logger.info("Init torch distributed ends. elapsed=0.00 s, mem usage=0.00 GB")
        runner_logger.info(f"Load weight begin. avail mem={avail:.2f} GB")
        tic = time.monotonic()
        time.sleep(faults.seconds("SGLANG_STANDIN_START_DELAY_S", 0.2))
        weights = model.weight_bytes() / memory.GB
        avail -= weights
        runner_logger.info(f"Load weight end. elapsed={time.monotonic() - tic:.2f} s, type={model.architecture}, "
                           f"avail mem={avail:.2f} GB, mem usage={weights:.2f} GB.")

        torch_dtype = memory.kv_torch_dtype(args.kv_cache_dtype, model.torch_dtype)
        if "kv_dtype_drift" in self.faults:
            torch_dtype = "torch.bfloat16"  # what a model override replacing the KV dtype looks like
        if "oom" in self.faults:
            raise RuntimeError(memory.not_enough_memory_message(mem.mem_fraction_static))
        if model.is_hybrid and args.max_mamba_cache_size is not None:
            # kv_cache_configurator.py resolve_max_num_reqs: with the radix cache a request takes 3 state slots
            # (unset, the size comes from memory and fits)
            ratio = 3
            if args.max_mamba_cache_size // ratio <= 0:
                raise RuntimeError(
                    f"Hybrid (mamba/linear-attention) state cache is too small to serve any requests. "
                    f"max_mamba_cache_size={args.max_mamba_cache_size}, mamba_ratio={ratio}, "
                    f"resulting max_num_reqs={args.max_mamba_cache_size // ratio}. "
                    f"Try: (1) reduce --max-running-requests, (2) increase --mem-fraction-static, or "
                    f"(3) use GPUs with more memory.")
        if not mem.mem_fraction_explicit and args.kv_cache_dtype == "auto":
            # Notebook failure mode 4: with the auto fraction, a bfloat16 KV cache does not fit.
            raise RuntimeError(memory.not_enough_memory_message(mem.mem_fraction_static))
        pool = memory.allocate_kv_pool(model, mem, torch_dtype, avail)
        memory.log_kv_pool(pool)
        self.pool = pool

        self.warm_kernels(torch_dtype)
        self.capture_graphs(pool.avail_after_gb)
        scheduler_logger.info(
            f"max_total_num_tokens={pool.num_tokens}, chunked_prefill_size={mem.chunked_prefill_size}, "
            f"max_prefill_tokens={args.max_prefill_tokens}, max_running_requests={args.max_running_requests or 4096}, "
            f"context_len={self.context_len}, available_gpu_mem={pool.avail_after_gb:.2f} GB"
        )

    def warm_kernels(self, torch_dtype):
        """First forward passes: JIT kernels land in the caches; the MoE config is looked up."""
        args, model, gpu = self.args, self.model, self.gpu
        dirs = caches.CacheDirs.from_env()
        caches.warm_sglang_jit(dirs, model, gpu)
        caches.warm_deep_gemm(dirs, model, args, gpu)
        self.moe_configs = None
        if model.num_experts and args.moe_runner_backend in ("auto", "triton"):
            E, N = moe_shape(model, args.tp_size, args.ep_size, args.disable_shared_experts_fusion)
            dtype, per_channel_quant, block_shape = model.moe_quant(args.quantization)
            self.moe_configs, self.moe_down_configs = lookup_moe_configs(E, N, dtype, block_shape, per_channel_quant)
        if gpu is not None:
            caches.warm_triton(dirs, model, args, gpu, self.attention_backend)
            caches.warm_flashinfer(dirs, model, gpu, torch_dtype, self.attention_backend)
            caches.warm_cute_dsl(dirs, model, args, gpu)
            caches.warm_autotune(dirs, model, gpu)
        self.dirs = dirs

    def capture_graphs(self, avail):
        args, mem = self.args, self.mem
        prefill_sizes, decode_bs = [], []
        if self.prefill_backend != "disabled":
            sizes = args.cuda_graph_bs_prefill or memory.prefill_capture_sizes(
                args.cuda_graph_max_bs_prefill or mem.chunked_prefill_size)
            prefill_sizes = sizes
            graph_logger.info(f"Capture target prefill CUDA graph begin. backend={self.prefill_backend}, "
                              f"num_tokens={sizes}, avail mem={avail:.2f} GB")
            graph_logger.info(f"Capture target prefill CUDA graph end. elapsed=0.01 s, mem usage=0.05 GB, "
                              f"avail mem={avail - 0.05:.2f} GB.")
            avail -= 0.05
        else:
            graph_logger.info("Disable prefill CUDA graph because cuda_graph_config resolved prefill.backend="
                              "'disabled' (e.g. via --cuda-graph-backend-prefill=disabled or auto-disable rules).")
        if self.decode_backend != "disabled":
            decode_bs = args.cuda_graph_bs_decode or memory.decode_capture_bs(mem.decode_max_bs)
        # what the captured graphs run is compiled now; other shapes compile when a request needs them
        self.kernels = caches.ShapeKernels(self.dirs, self.model, self.gpu, self.moe_configs, decode_bs, prefill_sizes,
                                           mem.chunked_prefill_size, self.prefill_max_context())
        self.kernels.capture()
        if self.decode_backend == "disabled":
            return
        capture_bs = decode_bs
        graph_logger.info(f"Capture target decode CUDA graph begin. backend={self.decode_backend}, "
                          f"num_tokens_per_req=1, avail mem={avail:.2f} GB")
        if args.enable_torch_compile:
            # torch.compile runs only inside decode CUDA-graph capture (sglang-facts.md 2).
            compile_bs = [bs for bs in capture_bs if bs <= args.torch_compile_max_bs]
            caches.warm_inductor(self.dirs, self.model, compile_bs, self.gpu)
        graph_logger.info(f"Capture target decode CUDA graph end. bs={capture_bs}, elapsed=0.02 s, "
                          f"mem usage=0.12 GB, avail mem={avail - 0.12:.2f} GB.")

    # ------------------------------------------------------------------ 3. serving (main process)
    def serve(self) -> int:
        args = self.args
        metrics = Metrics(args.served_model_name or args.model_path, self.pool.num_tokens, self.context_len,
                          self.decode_backend != "disabled")
        self.state = ServerState(args, self.model, self.resolved, metrics, self.faults, kernels=self.kernels)
        try:
            self.httpd = make_server(args.host, args.port, self.state)
        except OSError as e:
            uvicorn_logger.error(f"ERROR:    [Errno {e.errno}] error while attempting to bind on address "
                                 f"('{args.host}', {args.port}): {(e.strerror or '').lower()}")
            logger.error(f"OSError: {e}")
            return 1
        pid = os.getpid()
        uvicorn_logger.info(f"INFO:     Started server process [{pid}]")
        uvicorn_logger.info("INFO:     Waiting for application startup.")
        uvicorn_logger.info("INFO:     Application startup complete.")
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        uvicorn_logger.info(f"INFO:     Uvicorn running on http://{args.host}:{args.port} (Press CTRL+C to quit)")
        threading.Thread(target=self.warmup, daemon=True).start()
        while True:
            signal.pause()  # until SIGTERM/SIGINT raises _Shutdown

    def warmup(self):
        """The built-in warmup: /health and /ready answer 503 until it has run a generation."""
        if not self.args.skip_server_warmup:
            if "hang" in self.faults:
                return  # never ready
            time.sleep(faults.seconds("SGLANG_STANDIN_WARMUP_S", 0.3))
            body = {"sampling_params": {"temperature": 0, "max_new_tokens": 8}}
            if self.args.skip_tokenizer_init:
                body["input_ids"] = [10, 11, 12]
            else:
                body["text"] = "The capital city of France is"
            self.state.generate(body)
        if self.state.status == "Starting":
            self.state.status = "Up"
            logger.info("The server is fired up and ready to roll!")

    def shutdown(self):
        if self.state is not None:
            self.state.status = "Shutdown"
        if self.httpd is None:
            return
        uvicorn_logger.info("INFO:     Shutting down")
        self.httpd.shutdown()
        self.httpd.server_close()
        uvicorn_logger.info("INFO:     Waiting for application shutdown.")
        uvicorn_logger.info("INFO:     Application shutdown complete.")
        uvicorn_logger.info(f"INFO:     Finished server process [{os.getpid()}]")


def main(argv=None) -> int:
    args = prepare_server_args(sys.argv[1:] if argv is None else argv)
    logs.configure(args.log_level)
    try:
        active_faults = faults.active()
    except ValueError as e:
        logger.error(str(e))
        return 2
    if "exit_at_start" in active_faults:
        logger.error("Stand-in fault exit_at_start (SGLANG_STANDIN_FAULT): exiting before start-up.")
        return 3
    return StandinServer(args, active_faults).run()

"""What the stand-in server compiles, and when: it tracks what is primed by the files in the cache directories.

Start-up compiles what it runs (DeepGEMM kernels, the Triton kernels of every captured CUDA-graph shape); a
request compiles what no captured graph covers (a decode batch above the captured range, a context longer than
the prefill graphs cover). A deleted cache entry is compiled again by the next server that needs it.
"""

import json
import shutil
from pathlib import Path

from harness import StandinServer, copy_tiny_model

SMALL = ["--chunked-prefill-size", "512", "--cuda-graph-max-bs-decode", "8"]


def files(root):
    return {p: p.stat().st_mtime_ns for p in Path(root).rglob("*") if p.is_file() and not p.name.endswith((".log", ".lock"))}


def batch(size, tokens=4, new=4):
    ids = [[3 + (i * 7 + j) % 97 for j in range(tokens)] for i in range(size)]
    return {"input_ids": ids if size > 1 else ids[0], "sampling_params": {"max_new_tokens": new, "temperature": 0}}


def start(tmp_path, args=(), port=None, model=None):
    return StandinServer(tmp_path, list(SMALL) + list(args), port=port, model=model)


def fp8_block(tmp_path):
    """SGLang runs DeepGEMM for FP8 block-quantized weights (sglang-facts.md 10)."""
    return copy_tiny_model(Path(tmp_path) / "models" / "tiny-moe-fp8-block", "tiny-moe-fp8-block")


def test_deep_gemm_entries_have_the_real_layout(tmp_path):
    with start(tmp_path, model=fp8_block(tmp_path)) as server:
        server.wait_ready()
    root = server.cache / "deep_gemm"
    kernels = sorted((root / "cache").iterdir())
    assert kernels and all(k.name.split(".")[0].startswith("sm90_") and len(k.name.split(".")[1]) == 32 for k in kernels)
    for kernel in kernels:
        assert sorted(p.name for p in kernel.iterdir()) == [".committed", "kernel.cu", "kernel.cubin", "meta.json"]
        meta = json.loads((kernel / "meta.json").read_text())
        assert meta["name"] == kernel.name.split(".")[0] and meta["arch"] == "sm90"
    assert not (root / "tmp").exists() or not list((root / "tmp").iterdir())  # published by rename
    assert list((root / "locks").iterdir())


def test_a_deleted_deep_gemm_kernel_is_compiled_again_at_the_next_start(tmp_path):
    model = fp8_block(tmp_path)
    with start(tmp_path, model=model) as first:
        first.wait_ready()
    kernels = sorted((first.cache / "deep_gemm" / "cache").iterdir())
    victim = kernels[0]
    shutil.rmtree(victim)
    (kernels[1] / "kernel.cubin").unlink()  # an entry without its cubin is not primed either
    before = files(first.cache)
    with start(tmp_path, port=None, model=model) as second:
        second.wait_ready()
        log = second.log()
    assert "Entering DeepGEMM JIT Pre-Compile session" in log and "Try DeepGEMM JIT Compiling for <" in log
    after = files(second.cache)
    added = sorted(p for p in after if p not in before)
    assert victim / ".committed" in added and kernels[1] / "kernel.cubin" in added
    assert all(after[p] == before[p] for p in before if p.parent not in (victim, kernels[1]))


def test_a_deleted_triton_entry_is_compiled_again_at_the_next_start(tmp_path):
    with start(tmp_path) as first:
        first.wait_ready()
    entry = sorted((first.cache / "triton").glob("*/fused_moe_kernel.cubin"))[0].parent
    shutil.rmtree(entry)
    with start(tmp_path) as second:
        second.wait_ready()
    assert (entry / "fused_moe_kernel.cubin").is_file()


def test_a_decode_batch_above_the_captured_range_compiles_at_request_time(tmp_path):
    with start(tmp_path) as server:
        server.wait_ready()
        captured = files(server.cache)
        assert server.post("/generate", batch(8))[0] == 200  # the largest captured batch: a graph replay
        assert files(server.cache) == captured
        assert server.post("/generate", batch(12))[0] == 200  # above --cuda-graph-max-bs-decode 8: eager
        added = [p for p in files(server.cache) if p not in captured]
        assert server.post("/generate", batch(12))[0] == 200  # compiled once, then cached
        again = [p for p in files(server.cache) if p not in captured]
    assert added and all(p.parent.parent.name == "triton" for p in added)
    assert any(p.name == "fused_moe_kernel.cubin" for p in added) and sorted(again) == sorted(added)


def test_a_context_longer_than_the_prefill_graphs_cover_compiles_at_request_time(tmp_path):
    with start(tmp_path) as server:
        server.wait_ready()
        captured = files(server.cache)
        assert server.post("/generate", batch(1, tokens=512, new=1))[0] == 200  # one chunk: captured
        assert files(server.cache) == captured
        assert server.post("/generate", batch(1, tokens=1024, new=1))[0] == 200  # a second chunk after a prefix
        added = [p for p in files(server.cache) if p not in captured]
    assert any(p.name == "_fwd_kernel.cubin" for p in added)
    # primed with prefill graphs that cover that context, the same request compiles nothing
    with start(tmp_path / "covered", ["--cuda-graph-prefill-max-context", "1024"]) as covered:
        covered.wait_ready()
        primed = files(covered.cache)
        assert any(p.name == "_fwd_kernel.cubin" for p in primed)
        assert covered.post("/generate", batch(1, tokens=1024, new=1))[0] == 200
        assert files(covered.cache) == primed


def test_no_tuned_moe_config_logs_the_default_config_warning(tmp_path):
    with start(tmp_path) as server:
        server.wait_ready()
        log = server.log()
    assert "Using default MoE kernel config. Performance might be sub-optimal! Config file not found at " in log


# ---------------------------------------------------------------- the zero-JIT switches (sglang-facts.md 12)
def hybrid(tmp_path, name="tiny-hybrid"):
    return copy_tiny_model(Path(tmp_path) / "models" / name, name)


def autotune_files(cache):
    return sorted((cache / "triton").glob("*/*.autotune.json"))


def test_without_autotune_caching_every_process_benchmarks_again_and_keeps_nothing(tmp_path):
    """triton/runtime/autotuner.py: without TRITON_CACHE_AUTOTUNING each process benchmarks its autotuned kernels."""
    env = {"TRITON_PRINT_AUTOTUNING": "1"}
    model = hybrid(tmp_path)
    for _ in range(2):
        with StandinServer(tmp_path, list(SMALL), env=env, model=model) as server:
            server.wait_ready()
            log = server.log()
        assert "Triton autotuning for function _chunk_scan_fwd_kernel," in log
    assert autotune_files(server.cache) == []


def test_with_autotune_caching_the_second_process_reads_the_result_and_benchmarks_nothing(tmp_path):
    env = {"TRITON_PRINT_AUTOTUNING": "1", "TRITON_CACHE_AUTOTUNING": "1"}
    model = hybrid(tmp_path)
    with StandinServer(tmp_path, list(SMALL), env=env, model=model) as first:
        first.wait_ready()
        assert "Triton autotuning for function _bmm_chunk_fwd_kernel," in first.log()
    stored = autotune_files(first.cache)
    assert sorted(p.name for p in stored) == ["_bmm_chunk_fwd_kernel.autotune.json",
                                              "_chunk_scan_fwd_kernel.autotune.json",
                                              "_chunk_state_fwd_kernel.autotune.json"]
    assert json.loads(stored[0].read_text())["configs_timings"]
    with StandinServer(tmp_path, list(SMALL), env=env, model=model) as second:
        second.wait_ready()
        assert "Triton autotuning for function" not in second.log()


def test_a_cutedsl_linear_attention_kernel_compiles_into_the_cute_dsl_cache_once(tmp_path):
    model = hybrid(tmp_path, "tiny-gdn")
    cute = tmp_path / "cute"
    args = list(SMALL) + ["--linear-attn-backend", "cutedsl"]
    with StandinServer(tmp_path, args, env={"CUTE_DSL_CACHE_DIR": cute}, model=model) as first:
        first.wait_ready()
    kernels = sorted(cute.iterdir())
    assert len(kernels) == 1 and kernels[0].name.startswith("cutedsl_") and kernels[0].suffix == ".mlir"
    before = files(cute)
    with StandinServer(tmp_path, args, env={"CUTE_DSL_CACHE_DIR": cute}, model=model) as second:
        second.wait_ready()
    assert files(cute) == before  # a file-cache hit compiles nothing
    kernels[0].unlink()
    with StandinServer(tmp_path, list(SMALL), env={"CUTE_DSL_CACHE_DIR": cute}, model=model) as triton_backend:
        triton_backend.wait_ready()
    assert list(cute.iterdir()) == []  # the default Triton backend runs no CuTe DSL kernel


def test_crash_on_jit_compile_refuses_a_missing_sglang_jit_kernel_with_the_real_message(tmp_path):
    with start(tmp_path) as first:
        first.wait_ready()
    leaves = sorted((first.cache.parent / "home" / ".cache" / "sglang" / "jit").rglob("*.so"))
    assert leaves
    with StandinServer(tmp_path, list(SMALL), env={"SGLANG_CRASH_ON_JIT_COMPILE": "1"}) as primed:
        primed.wait_ready()  # a cached build loads
    leaves[0].unlink()
    server = StandinServer(tmp_path, list(SMALL), env={"SGLANG_CRASH_ON_JIT_COMPILE": "1"})
    with server:
        assert server.wait_exit(timeout=20) == 1
    log = server.log()
    assert "RuntimeError: JIT module 'sgl_kernel_jit_fused_add_rmsnorm_128' has no usable cached build under " in log
    assert "and SGLANG_CRASH_ON_JIT_COMPILE forbids compiling at runtime." in log
    assert not leaves[0].exists()


def test_a_warm_torch_compile_start_adds_files_once_then_settles(tmp_path):
    args = list(SMALL) + ["--enable-torch-compile"]
    added = []
    seen = {}
    for _ in range(3):
        with start(tmp_path, args) as server:
            server.wait_ready()
        now = files(server.cache)
        added.append(len([p for p in now if p not in seen]))
        seen = now
    assert added[0] > 0 and added[1] > 0 and added[2] == 0, added

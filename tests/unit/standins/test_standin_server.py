"""The stand-in SGLang server (tests/standins): endpoints, metrics, caches, shutdown."""

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import StandinServer, copy_tiny_model, standin_env, wait_for

GENERATE = {"input_ids": [0, 1, 2, 3], "sampling_params": {"max_new_tokens": 8, "temperature": 0}}


def files_under(root):
    return sorted(p for p in Path(root).rglob("*") if p.is_file())


def metric_value(text, name):
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("metric %s not found in:\n%s" % (name, text))


def test_health_is_503_until_warmup_while_models_answers(tmp_path):
    with StandinServer(tmp_path, env={"SGLANG_STANDIN_WARMUP_S": "0.6"}) as server:
        server.wait_http()
        assert server.status("/health") == 503
        assert server.status("/health_generate") == 503
        assert server.status("/ready") == 503
        server.wait_ready()
        assert server.status("/ready") == 200
        assert server.status("/health_generate") == 200
        log = server.log()
    assert "The server is fired up and ready to roll!" in log
    assert log.index("Uvicorn running on") < log.index("The server is fired up and ready to roll!")


def test_skip_server_warmup_is_ready_at_once(tmp_path):
    with StandinServer(tmp_path, ["--skip-server-warmup"], env={"SGLANG_STANDIN_WARMUP_S": "30"}) as server:
        server.wait_ready(timeout=5)


def test_generate_and_schema_errors(tmp_path):
    with StandinServer(tmp_path, ["--skip-tokenizer-init"]) as server:
        server.wait_ready()
        status, body = server.post("/generate", GENERATE)
        assert status == 200
        reply = json.loads(body)
        assert len(reply["output_ids"]) == 8 and "text" not in reply
        assert reply["meta_info"]["finish_reason"] == {"type": "length", "length": 8}
        assert reply["meta_info"]["prompt_tokens"] == 4
        status, _ = server.request("PUT", "/generate", GENERATE)
        assert status == 200
        status, body = server.post("/generate", {"input_ids": [[1, 2], [3]], "sampling_params": {"max_new_tokens": 2}})
        assert status == 200 and len(json.loads(body)) == 2

        status, body = server.post("/generate", {"input_ids": [1], "sampling_params": {"max_tokens": 8}})
        assert status == 400
        error = json.loads(body)["error"]
        assert error.startswith("unknown field `max_tokens`, expected one of `max_new_tokens`, `stop`, ")
        status, body = server.post("/generate", {"text": "hello"})
        assert status == 400
        status, body = server.post("/generate", {"input_ids": [1], "sampling_params": {"max_new_tokens": "x"}})
        assert status == 400 and json.loads(body)["error"] == 'invalid type: string "x", expected i64'


def test_api_key_guards_every_path_but_health_ready_and_metrics(tmp_path):
    key = "sk-standin-31d0"
    with StandinServer(tmp_path, ["--skip-tokenizer-init", "--enable-metrics", "--api-key", key]) as server:
        server.wait_ready()
        for path in ("/health", "/health_generate", "/ready", "/metrics"):
            assert server.status(path) == 200, path  # probes and scrapes need no key
        for method, path, body in (("POST", "/generate", GENERATE), ("GET", "/server_info", None),
                                   ("GET", "/model_info", None), ("GET", "/v1/models", None),
                                   ("GET", "/no_such_path", None)):
            for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": key},
                            {"Authorization": "Basic " + key}):
                assert server.request(method, path, body, headers=headers) == (401, '{"error":"Unauthorized"}'), path
        for scheme in ("Bearer", "bearer"):
            status, body = server.request("POST", "/generate", GENERATE, headers={"Authorization": "%s %s" % (scheme, key)})
            assert status == 200 and len(json.loads(body)["output_ids"]) == 8
        status, _ = server.request("GET", "/server_info", headers={"Authorization": "Bearer " + key})
        assert status == 200


def test_admin_api_key_alone_leaves_normal_endpoints_open(tmp_path):
    with StandinServer(tmp_path, ["--skip-tokenizer-init", "--admin-api-key", "adm-31d0"]) as server:
        server.wait_ready()
        assert server.post("/generate", GENERATE)[0] == 200
        assert server.post("/flush_cache", None)[0] == 401
        assert server.request("POST", "/flush_cache", headers={"Authorization": "Bearer adm-31d0"})[0] == 200


def test_generate_text_with_tokenizer(tmp_path):
    with StandinServer(tmp_path) as server:
        server.wait_ready()
        status, body = server.post("/generate", {"text": "The capital of France is",
                                                 "sampling_params": {"max_new_tokens": 3}})
        assert status == 200 and json.loads(body)["text"]


def test_metrics_only_with_enable_metrics(tmp_path):
    with StandinServer(tmp_path / "off") as server:
        server.wait_ready()
        assert server.status("/metrics") == 404
    with StandinServer(tmp_path / "on", ["--enable-metrics"]) as server:
        server.wait_ready()
        status, before = server.get("/metrics")
        assert status == 200
        for name in ("sglang:num_running_reqs", "sglang:token_usage", "sglang:num_queue_reqs"):
            assert name + "{" in before
        assert 'model_name="%s"' % server.model in before and 'engine_type="unified"' in before
        assert server.post("/generate", GENERATE)[0] == 200
        after = server.get("/metrics")[1]
    for name, delta in (("sglang:num_requests_total", 1), ("sglang:prompt_tokens_total", 4),
                        ("sglang:generation_tokens_total", 8)):
        assert metric_value(after, name) - metric_value(before, name) == delta


def test_info_endpoints(tmp_path):
    with StandinServer(tmp_path, ["--context-length", "1024", "--served-model-name", "tiny"]) as server:
        server.wait_ready()
        models = json.loads(server.get("/v1/models")[1])
        assert models["data"][0]["id"] == "tiny" and models["data"][0]["max_model_len"] == 1024
        info = json.loads(server.get("/model_info")[1])
        assert info["model_type"] == "mixtral" and info["architectures"] == ["MixtralForCausalLM"]
        assert json.loads(server.get("/get_model_info")[1]) == info
        server_info = json.loads(server.get("/server_info")[1])
        assert server_info["mem_fraction_static"] == 0.94 and server_info["kv_cache_dtype"] == "fp8_e4m3"
        assert server_info["version"] == "0.5.23" and "--context-length 1024" in server_info["launch_command"]
        assert server.status("/nope") == 404
        log = server.log()
    assert log.count("Endpoint '/get_model_info' is deprecated") == 1


def test_kv_cache_and_memory_lines(tmp_path):
    with StandinServer(tmp_path, ["--kv-cache-dtype", "fp8_e5m2"]) as server:
        server.wait_ready()
        log = server.log()
    assert re.search(r"\] KV Cache is allocated\. dtype: torch\.float8_e5m2, #tokens: \d+, "
                     r"K size: [\d.]+ GB, V size: [\d.]+ GB", log)
    assert re.search(r"Memory pool end\. avail mem=[\d.]+ GB", log)
    stamped = [line for line in log.splitlines() if line.startswith("[")]
    assert stamped and all(re.match(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d( TP0)?\] ", line) for line in stamped)
    assert any(line.split("] ", 1)[0].endswith(" TP0") and "KV Cache is allocated" in line for line in stamped)


def test_auto_memory_fraction_with_bf16_kv_is_not_enough_memory(tmp_path):
    server = StandinServer(tmp_path, canonical=False).start()
    try:
        assert server.wait_exit() == 1
        assert re.search(r"RuntimeError: Not enough memory\. Please try to increase --mem-fraction-static\. "
                         r"Current value: mem_fraction_static=0\.\d+", server.log())
    finally:
        server.kill()


def test_auto_memory_fraction_with_fp8_kv_runs(tmp_path):
    with StandinServer(tmp_path, ["--kv-cache-dtype", "fp8_e4m3"], canonical=False) as server:
        server.wait_ready()
        info = json.loads(server.get("/server_info")[1])
    # memory hook on 81559 MiB: chunked 8192, reserved 512+12288+128+512+58*8 MB
    assert info["chunked_prefill_size"] == 8192
    assert info["mem_fraction_static"] == round((81559 - 13904) / 81559, 3)


def test_context_length_above_model_maximum(tmp_path):
    refused = StandinServer(tmp_path / "refused", ["--context-length", "272000"]).start()
    try:
        assert refused.wait_exit() == 1
        log = refused.log()
        assert ("ValueError: Warning: User-specified context_length (272000) is greater than the derived "
                "context_length (2048).") in log
        assert "set the env var SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1" in log
    finally:
        refused.kill()
    with StandinServer(tmp_path / "allowed", ["--context-length", "272k"],
                       env={"SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN": "1"}) as server:
        server.wait_ready()
        assert json.loads(server.get("/v1/models")[1])["data"][0]["max_model_len"] == 272000
        assert "] Warning: User-specified context_length (272000)" in server.log()


def test_missing_model_config(tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    server = StandinServer(tmp_path, model=empty).start()
    try:
        assert server.wait_exit() == 1
        assert "does not appear to have a file named config.json" in server.log()
    finally:
        server.kill()


def test_parse_errors_exit_2(tmp_path):
    env = standin_env(tmp_path)
    for extra, message in ((["--enable-metrics", "false"], "error: unrecognized arguments: false"),
                           (["--kv-cache-dtype", "fp9"], "error: argument --kv-cache-dtype: invalid choice: 'fp9'")):
        proc = subprocess.run([sys.executable, "-m", "sglang.launch_server", "--model-path", str(tmp_path), *extra],
                              env=env, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and "sglang serve: " + message in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "sglang.launch_server", "--help"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "--enable-torch-compile" in proc.stdout


# ------------------------------------------------------------------------------------------ caches

def fp8_block(tmp_path):
    """SGLang runs DeepGEMM for FP8 block-quantized weights only (or --moe-runner-backend deep_gemm)."""
    return copy_tiny_model(tmp_path / "models" / "tiny-moe-fp8-block", "tiny-moe-fp8-block")


def test_caches_default_under_sglang_cache_dir(tmp_path):
    with StandinServer(tmp_path, env={"DG_JIT_CACHE_DIR": str(tmp_path / "ignored")}, model=fp8_block(tmp_path)) as server:
        server.wait_ready()
    cache = server.cache
    assert files_under(cache / "deep_gemm" / "cache")
    assert all(p.name in ("kernel.cu", "kernel.cubin", "meta.json", ".committed") and p.parent.name.startswith("sm90_")
               for p in files_under(cache / "deep_gemm" / "cache"))
    assert any(p.suffix == ".cubin" for p in files_under(cache / "triton"))
    workspace = cache / ".cache" / "flashinfer" / "0.7.2" / "90a"
    assert (workspace / "cached_ops" / "sampling" / "sampling.so").is_file()
    assert (workspace / "flashinfer_jit.log").is_file()
    assert not (cache / "inductor").exists()
    assert not (tmp_path / "ignored").exists()
    assert (tmp_path / "home" / ".cache" / "sglang" / "jit").is_dir()  # SGLANG_JIT_CACHE_DIR default


def test_explicit_cache_env_wins(tmp_path):
    env = {name: tmp_path / name.lower() for name in
           ("SGLANG_DG_CACHE_DIR", "TRITON_CACHE_DIR", "FLASHINFER_WORKSPACE_BASE", "TORCHINDUCTOR_CACHE_DIR",
            "SGLANG_JIT_CACHE_DIR")}
    with StandinServer(tmp_path, ["--enable-torch-compile"], env=env, model=fp8_block(tmp_path)) as server:
        server.wait_ready()
    assert not server.cache.exists() or not files_under(server.cache)
    assert list((tmp_path / "sglang_dg_cache_dir" / "cache").glob("sm90_*/kernel.cubin"))
    assert list((tmp_path / "triton_cache_dir").glob("*/*.cubin"))
    assert list((tmp_path / "flashinfer_workspace_base" / ".cache" / "flashinfer").glob("*/*/cached_ops/*/*.so"))
    assert list((tmp_path / "torchinductor_cache_dir" / "fxgraph").rglob("*"))
    assert list((tmp_path / "sglang_jit_cache_dir").glob("sm90/sgl_kernel_jit_*/build-*/deps-*/sgl_kernel_jit_*.so"))


@pytest.mark.parametrize("args, expect_inductor", [
    (["--enable-torch-compile"], True),
    ([], False),
    (["--enable-torch-compile", "--disable-cuda-graph"], False),
    (["--enable-torch-compile", "--cuda-graph-backend-decode", "disabled"], False),
    (["--enable-torch-compile", "--disable-decode-cuda-graph"], False),
    (["--enable-torch-compile", "--cuda-graph-backend-prefill", "disabled"], True),
])
def test_inductor_only_with_torch_compile_and_decode_graph(tmp_path, args, expect_inductor):
    with StandinServer(tmp_path, args) as server:
        server.wait_ready()
    fxgraph = server.cache / "inductor" / "fxgraph"
    assert bool(fxgraph.is_dir() and files_under(fxgraph)) is expect_inductor
    if expect_inductor:
        # one entry per decode capture batch size <= --torch-compile-max-bs (32)
        assert len(files_under(fxgraph)) == len([1, 2, 4, 8, 12, 16, 24, 32])


def test_a_start_after_the_first_warm_start_compiles_nothing(tmp_path):
    model = fp8_block(tmp_path)
    with StandinServer(tmp_path, ["--enable-torch-compile"], model=model) as first:
        first.wait_ready()
        first_log = first.log()
    snapshot = {p: p.stat().st_mtime_ns for p in files_under(first.cache) if p.name != "flashinfer_jit.log"}
    assert "Entering DeepGEMM JIT Pre-Compile session" in first_log
    assert "Try DeepGEMM JIT Compiling for <GROUPED_GEMM_NT_F8F8BF16_CONTIG> N=512, K=128, num_groups=8" in first_log
    with StandinServer(tmp_path, ["--enable-torch-compile"], port=None, model=model) as second:
        second.wait_ready()
        second_log = second.log()
    # like the real server, the lines come again for cached kernels (compile_utils.py logs per kernel group)
    assert second_log.count("Try DeepGEMM JIT Compiling for <") == first_log.count("Try DeepGEMM JIT Compiling for <")
    after = {p: p.stat().st_mtime_ns for p in files_under(second.cache) if p.name != "flashinfer_jit.log"}
    # torch.compile's first warm start compiles the configs coordinate descent visits from the cached winners
    # (tests/gpu/evidence): Triton files only, nothing else rewritten; the next start adds nothing
    added = [p for p in after if p not in snapshot]
    assert added and all(p.relative_to(second.cache).parts[0] == "triton" and "triton_poi_fused_moe_" in p.name
                         for p in added)
    assert all(after[p] == snapshot[p] for p in snapshot)
    with StandinServer(tmp_path, ["--enable-torch-compile"], port=None, model=model) as third:
        third.wait_ready()
    assert {p: p.stat().st_mtime_ns for p in files_under(third.cache) if p.name != "flashinfer_jit.log"} == after


def test_no_deep_gemm_below_sm90(tmp_path):
    env = {"SGLANG_STANDIN_COMPUTE_CAP": "8.0", "SGLANG_STANDIN_GPU_NAME": "NVIDIA A100-SXM4-80GB"}
    with StandinServer(tmp_path, env=env, model=fp8_block(tmp_path)) as server:
        server.wait_ready()
    assert not (server.cache / "deep_gemm").exists()
    assert (server.cache / ".cache" / "flashinfer" / "0.7.2" / "80" / "cached_ops").is_dir()


def test_no_deep_gemm_for_weights_that_do_not_use_it(tmp_path):
    """A bf16 checkpoint with the default MoE runner: no DeepGEMM line, no DeepGEMM cache."""
    with StandinServer(tmp_path) as server:
        server.wait_ready()
        log = server.log()
    assert "DeepGEMM" not in log and not (server.cache / "deep_gemm").exists()


def test_the_deep_gemm_moe_runner_uses_deep_gemm_for_any_weights(tmp_path):
    with StandinServer(tmp_path, ["--moe-runner-backend", "deep_gemm"]) as server:
        server.wait_ready()
        log = server.log()
    assert "Try DeepGEMM JIT Compiling for <GROUPED_GEMM" in log
    assert list((server.cache / "deep_gemm" / "cache").glob("sm90_m_grouped_*/kernel.cubin"))


def test_a_failed_deep_gemm_import_disables_deep_gemm_without_a_word(tmp_path):
    """libnvrtc.so.13 is a NEEDED library of deep_gemm/_C.so; SGLang's configurer swallows the ImportError."""
    with StandinServer(tmp_path, env={"SGLANG_STANDIN_FAULT": "nvrtc_missing"}, model=fp8_block(tmp_path)) as server:
        server.wait_ready()
        log = server.log()
    assert "DeepGEMM" not in log and "nvrtc" not in log
    assert not (server.cache / "deep_gemm").exists()
    env = standin_env(tmp_path / "home", SGLANG_STANDIN_FAULT="nvrtc_missing")
    proc = subprocess.run([sys.executable, "-c", "import deep_gemm"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "ImportError: libnvrtc.so.13: cannot open shared object file: No such file or directory")


def test_deep_gemm_without_nvcc_fails_with_deep_gemms_own_assertion(tmp_path):
    """sgl-deep-gemm 0.2.3.post2 compiles with NVCC only: <CUDA_HOME>/bin/nvcc must be executable."""
    home = tmp_path / "cuda-runtime-only"
    home.mkdir()
    with StandinServer(tmp_path, env={"CUDA_HOME": str(home)}, model=fp8_block(tmp_path)) as server:
        assert server.wait_exit() == 1
        log = server.log()
    assert "NVCC compiler is not executable: %s/bin/nvcc" % home in log
    assert "Scheduler hit an exception" in log


@pytest.mark.parametrize("args, serves", [([], True), (["--max-mamba-cache-size", "1"], False),
                                          (["--max-mamba-cache-size", "4"], False),
                                          (["--max-mamba-cache-size", "5"], True)])
def test_a_hybrid_model_needs_state_slots_for_a_request(tmp_path, args, serves):
    """kv_cache_configurator.py: with the radix cache's extra_buffer strategy (CUDA, overlap schedule on) a request
    takes 5 state slots (checked against real 0.5.23 by tests/contract/test_zoo.py); fewer leave none."""
    model = copy_tiny_model(tmp_path / "models" / "tiny-hybrid", "tiny-hybrid")
    with StandinServer(tmp_path, args, model=model) as server:
        if serves:
            server.wait_ready()
            return
        assert server.wait_exit() == 1
        log = server.log()
    assert ("RuntimeError: Hybrid (mamba/linear-attention) state cache is too small to serve any requests. "
            "max_mamba_cache_size=%s, mamba_ratio=5, resulting max_num_reqs=0." % args[1]) in log


def test_server_info_has_the_resolved_backends(tmp_path):
    """Hopper: fa3 attention (model_override_base.py), FlashInfer sampling."""
    with StandinServer(tmp_path) as server:
        server.wait_ready()
        info = json.loads(server.get("/server_info")[1])
    assert info["attention_backend"] == "fa3" and info["sampling_backend"] == "flashinfer"


# ------------------------------------------------------------------------------------------ processes

def test_sigterm_shuts_down_fast_and_child_dies(tmp_path):
    server = StandinServer(tmp_path).start()
    try:
        server.wait_ready()
        children = server.children()
        assert children
        cmdline = Path("/proc/%d/cmdline" % children[0]).read_bytes().split(b"\0")
        assert b"sglang::scheduler_TP0" in cmdline
        started = time.monotonic()
        server.signal_group(signal.SIGTERM)
        assert server.wait_exit(timeout=5) == 0
        assert time.monotonic() - started < 1.0
        wait_for(lambda: not any(Path("/proc/%d" % pid).exists() for pid in children), 2.0, what="child gone")
        assert "Shutting down" in server.log()
    finally:
        server.kill()


def test_sigterm_to_main_process_only_also_ends_child(tmp_path):
    server = StandinServer(tmp_path).start()
    try:
        server.wait_http()
        children = server.children()
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait_exit(timeout=5) == 0
        wait_for(lambda: not any(Path("/proc/%d" % pid).exists() for pid in children), 2.0, what="child gone")
    finally:
        server.kill()


def test_sigterm_during_startup(tmp_path):
    server = StandinServer(tmp_path, env={"SGLANG_STANDIN_START_DELAY_S": "30"}).start()
    try:
        wait_for(lambda: "Load weight begin" in server.log(), 10, what="weight loading")
        server.signal_group(signal.SIGTERM)
        assert server.wait_exit(timeout=5) == 0
    finally:
        server.kill()


def test_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = StandinServer(tmp_path, port=busy.getsockname()[1]).start()
        try:
            assert server.wait_exit() == 1
            assert "[Errno 98] Address already in use" in server.log()
        finally:
            server.kill()

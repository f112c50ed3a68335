"""DeepGEMM like SGLang's own precompile, and a deep_gemm stage that reports what it primed (sglang-facts.md 7, 10).

The stage runs the stand-in server (tests/standins) on the host: DeepGEMM only for FP8 block-quantized weights or
--moe-runner-backend deep_gemm, a failed `import deep_gemm` (libnvrtc.so.13 missing) disables it without a log
line, and its JIT needs an executable nvcc.
"""

import os
import shutil
import stat
import sys

import pytest

from unit_support.runtime import STANDINS, Run
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import argv, deepgemm

@pytest.fixture
def run(tmp_path):
    """Run's model is FP8 block-quantized (run.fp8); run.bf16 is the bf16 tiny-moe, which never uses DeepGEMM."""
    out = Run(str(tmp_path))
    assert os.path.basename(out.model) == "tiny-moe-fp8-block"
    out.fp8 = out.model
    out.bf16 = os.path.join(os.path.dirname(out.model), "tiny-moe")
    shutil.copytree(os.path.join(STANDINS, "models", "tiny-moe"), out.bf16)
    return out


# ------------------------------------------------------------------------------------------ what the servers get

@pytest.mark.parametrize("stage", argv.SERVER_STAGES)
def test_every_server_reads_the_deep_gemm_cache_through_both_variables(stage):
    env = argv.server_env({"DG_JIT_CACHE_DIR": "/home/devuser/.dj"}, stage)
    assert env["DG_JIT_CACHE_DIR"] == env["SGLANG_DG_CACHE_DIR"] == contract.CACHES["deep_gemm"][0]
    assert "DG_JIT_CACHE_DIR" in contract.RESERVED_ENV  # the role refuses it in prime_extra_env


def test_the_deep_gemm_server_is_started_like_compile_deep_gemm():
    env = argv.server_env({}, "deep_gemm")
    assert env["SGLANG_CHUNKED_PREFIX_CACHE_THRESHOLD"] == "0"
    cmd = argv.server_argv("deep_gemm", "/models/M", timeout=5400)
    assert cmd[cmd.index("--watchdog-timeout") + 1] == "5400.0"
    for stage in ("flashinfer", "inductor", "serve_check"):
        assert "SGLANG_CHUNKED_PREFIX_CACHE_THRESHOLD" not in argv.server_env({}, stage)
        assert "--watchdog-timeout" not in argv.server_argv(stage, "/models/M")


def test_a_watchdog_timeout_in_the_extra_args_wins():
    cmd = argv.server_argv("deep_gemm", "/models/M", extra_args=["--watchdog-timeout=900"])
    assert cmd.index("--watchdog-timeout") < cmd.index("--watchdog-timeout=900")


# ------------------------------------------------------------------------------------------ when DeepGEMM is used

def test_deep_gemm_use_follows_the_checkpoint_and_the_moe_runner_backend(run):
    used, why = deepgemm.usage(run.fp8, {"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}, [])
    assert used and "FP8 block-quantized" in why
    used, why = deepgemm.usage(run.bf16, {"architectures": ["MixtralForCausalLM"]}, [])
    assert not used and "no quantization_config" in why
    assert deepgemm.usage(run.bf16, {}, ["--moe-runner-backend", "deep_gemm"])[0]
    assert deepgemm.usage(run.bf16, {}, ["--moe-runner-backend=deep_gemm"])[0]
    assert not deepgemm.usage(run.bf16, {}, ["--moe-runner-backend=triton"])[0]


def _executable(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\necho 'Cuda compilation tools, release 12.8, V12.8.93'\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


def test_deep_gemm_needs_nvcc_where_its_jit_looks(tmp_path):
    home = tmp_path / "cuda"
    home.mkdir()
    problem = deepgemm.nvcc_problem({"CUDA_HOME": str(home), "PATH": ""})
    assert problem.startswith("NVCC compiler is not executable: %s/bin/nvcc" % home)
    _executable(str(home / "bin" / "nvcc"))
    assert deepgemm.nvcc_problem({"CUDA_HOME": str(home), "PATH": ""}) is None
    # no CUDA_HOME: the directory above `which nvcc`
    assert deepgemm.nvcc_problem({"PATH": str(home / "bin")}) is None


def test_a_failed_deep_gemm_import_is_named(run):
    env = dict(run.env, SGLANG_STANDIN_FAULT="nvrtc_missing")
    problem = deepgemm.import_problem(sys.executable, env)
    assert problem == "import deep_gemm failed: ImportError: libnvrtc.so.13: cannot open shared object file: " \
                      "No such file or directory"
    assert deepgemm.import_problem(sys.executable, run.env) is None


# ------------------------------------------------------------------------------------------ the stage

def test_deep_gemm_on_an_fp8_block_model_records_what_it_compiled(run):
    result = run.stage("deep_gemm", model=run.fp8)
    assert result["status"] == "ok", result["message"]
    info = result["validation"]["deep_gemm"]
    assert info["uses_deep_gemm"] and info["compile_lines"] >= 4 and info["files_added"] > 0
    assert all(line.startswith("Try DeepGEMM JIT Compiling for <") for line in info["compile_lines_sample"])
    primed = result["primed"]["deep_gemm"]
    assert primed["files_added"] == info["files_added"] and primed["bytes_added"] > 0
    assert primed["sample"] and all(p.startswith("deep_gemm/cache/sm90_") for p in primed["sample"])
    assert set(result["primed"]) == set(contract.CACHES)
    assert "%d 'Try DeepGEMM JIT Compiling' lines" % info["compile_lines"] in result["message"]
    # a rebuild on the warm cache: the lines are logged again (as the real server does), nothing new is written
    again = run.stage("deep_gemm", model=run.fp8, mode="rebuild")
    assert again["status"] == "ok", again["message"]
    assert again["validation"]["deep_gemm"]["compile_lines"] == info["compile_lines"]
    assert again["primed"]["deep_gemm"]["files_added"] == 0


def test_deep_gemm_on_a_model_that_never_uses_it_is_skipped_with_the_reason(run):
    result = run.stage("deep_gemm", model=run.bf16)
    assert result["status"] == "skipped"
    assert "no quantization_config" in result["message"] and "deep_gemm" in result["message"]


def test_deep_gemm_silently_disabled_by_a_failed_import_fails_with_the_reason(run):
    result = run.stage("deep_gemm", model=run.fp8, env={"SGLANG_STANDIN_FAULT": "nvrtc_missing"})
    assert result["status"] == "error" and result["error_type"] == "deepgemm_inactive", result["message"]
    assert "libnvrtc.so.13" in result["message"] and "FP8 block-quantized" in result["message"]
    assert result["validation"]["deep_gemm"]["compile_lines"] == 0
    assert not os.path.exists(run.p(contract.CACHES["deep_gemm"][0] + "/cache"))  # no kernel compiled


def test_deep_gemm_disabled_by_the_environment_fails_with_the_reason(run):
    result = run.stage("deep_gemm", model=run.fp8, env={"SGLANG_ENABLE_JIT_DEEPGEMM": "false"})
    assert result["error_type"] == "deepgemm_inactive"
    assert "SGLANG_ENABLE_JIT_DEEPGEMM=false disables DeepGEMM" in result["message"]


def test_deep_gemm_without_a_cuda_toolkit_is_nvcc_not_found_before_the_server(run, tmp_path):
    empty = tmp_path / "no-toolkit"
    empty.mkdir()
    result = run.stage("deep_gemm", model=run.fp8, env={"CUDA_HOME": str(empty)})
    assert result["error_type"] == "nvcc_not_found", result["message"]
    assert "NVCC compiler is not executable: %s/bin/nvcc" % empty in result["message"]
    assert result.get("server") is None  # refused before any server started


# ------------------------------------------------------------------------------------------ flashinfer says what it primed

def test_flashinfer_says_when_it_added_nothing_and_which_backend_attention_runs_on(run):
    assert run.stage("deep_gemm")["status"] == "ok"  # its server already built FlashInfer's sampling kernels
    result = run.stage("flashinfer")
    assert result["status"] == "ok", result["message"]
    info = result["validation"]["flashinfer"]
    assert info["attention_backend"] == "fa3" and info["sampling_backend"] == "flashinfer"
    assert info["flashinfer_attention"] is False and info["files_added"] == 0
    assert info["summary"].startswith("nothing added to /profiles/flashinfer beyond what the earlier stages left")
    assert "FlashInfer serves sampling" in info["summary"] and info["summary"] in result["message"]
    on_fi = run.stage("flashinfer", mode="rebuild", extra_server_args=["--attention-backend=flashinfer"])
    assert on_fi["validation"]["flashinfer"]["flashinfer_attention"] is True
    assert on_fi["validation"]["flashinfer"]["files_added"] > 0
    assert "attention runs on FlashInfer (flashinfer)" in on_fi["message"]

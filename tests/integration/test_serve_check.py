"""The serve check inside the test image, as a non-root UID, on bind-mounted host directories.

On a primed host it proves zero JIT, with its evidence in the stage JSON, and an ensure afterwards is a noop.
Each way the priming can fall short makes it fail with jit_at_serve_time naming the cause (a deleted Triton
cache entry, a deleted DeepGEMM kernel, a removed tuned MoE config, serving args that raise the captured
batch size after priming, a longer context), and re-priming what the message names makes it pass again.
"""

import glob
import json
import os
import shutil

import pytest

import stage_harness as h
from stage_harness import MODEL, RUN_ID, contract

PRIMING = ("deep_gemm", "moe_tune", "flashinfer", "inductor")
SERVER_STAGES = ("deep_gemm", "flashinfer", "inductor")


pytestmark = pytest.mark.usefixtures("image")  # the test image (conftest.py), before the first test


@pytest.fixture
def primed():
    """A container whose run primed every priming stage (with the harness's small MoE batch sizes)."""
    box = h.StageContainer()
    try:
        for stage in PRIMING:
            result = box.stage(stage)
            assert result.rc == 0 and result["status"] == "ok", result
        yield box
    finally:
        box.remove()


def check(box, *args, mode=None):
    return box.stage("serve_check", *args, mode=mode, timeout=300)


def assert_jit(result, *words):
    assert result.rc == 1, result
    assert result["status"] == "error" and result["error_type"] == "jit_at_serve_time", result
    assert result["zero_jit"] is False and result["serve_check"]["zero_jit"] is False
    for word in words:
        assert word in result["message"], result["message"]
    return result


def assert_proven(box, result):
    assert result.rc == 0 and result["status"] == "ok" and result["zero_jit"] is True, result
    stored = box.stage_json("serve_check")
    assert stored["zero_jit"] is True and stored["serve_check"]["findings"] == []
    assert box.prep_result()["zero_jit"] is True
    box.assert_clean("serve_check")
    assert box.foreign_owned() == []


def test_on_a_primed_host_the_check_proves_zero_jit_with_evidence_then_ensure_is_a_noop(primed):
    result = check(primed)
    assert_proven(primed, result)
    assert result["stage_json"] == contract.stage_json_path(RUN_ID, "serve_check", MODEL)
    argv = result["server"]["argv"]
    assert "--enable-metrics" in argv and "--enable-torch-compile" not in argv and "--port" in argv
    evidence = primed.stage_json("serve_check")["serve_check"]
    shapes = evidence["shapes"]
    assert shapes["chunked_prefill_size"] == 4096 and shapes["prompt_lengths"][-1] == 4096
    assert shapes["decode_batch_sizes"][0] == 1 and shapes["decode_batch_sizes"][-1] == 256
    assert len(evidence["requests"]) == len(shapes["prompt_lengths"]) + len(shapes["decode_batch_sizes"])
    assert evidence["caches"] == {} or all(not c.get("added") for c in evidence["caches"].values())
    assert evidence["snapshot"]["before"]["files"] == evidence["snapshot"]["after"]["files"] > 0
    assert "caches under /profiles unchanged" in evidence["summary"] and "no JIT log line" in evidence["summary"]
    assert "no crash on a JIT miss (SGLANG_CRASH_ON_JIT_COMPILE=1" in evidence["summary"]
    assert evidence["measured"]["caches_unchanged"] is True and evidence["measured"]["triton_autotune_benchmarks"] == 0
    assert os.path.exists(primed.profiles(contract.signature_path("serve_check", MODEL)))
    starts = primed.server_starts()
    again = check(primed)
    assert again.rc == 0 and again["status"] == "noop" and again["zero_jit"] is True and again["server"] is None
    assert again["proven_by"]["run_id"] == RUN_ID
    assert primed.server_starts() == starts  # nothing launched


def test_check_mode_says_whether_it_would_run_and_why_and_writes_nothing(primed):
    before = primed.tree()
    would = check(primed, mode="check")
    assert would.rc == 0 and would["status"] == "would_run" and would["reprime_reasons"][0]["field"] == "signature"
    assert primed.tree() == before
    assert check(primed)["status"] == "ok"
    now = check(primed, "--extra-server-arg=--random-seed=7", mode="check")
    assert now["status"] == "would_run" and [r["field"] for r in now["reprime_reasons"]] == ["extra_server_args"]


def test_a_deleted_triton_cache_entry_fails_the_check_and_a_reprime_passes(primed):
    assert check(primed)["status"] == "ok"
    entry = sorted(glob.glob(primed.host("profiles", "triton", "*", "fused_moe_kernel.cubin")))[0]
    shutil.rmtree(os.path.dirname(entry))
    failed = assert_jit(check(primed, mode="rebuild"), "triton: 7 files (fused_moe_kernel)", "server start-up",
                        "should have primed them", "re-prime flashinfer")
    [finding] = failed["serve_check"]["findings"]
    assert finding["cache"] == "triton" and finding["sample"][0].startswith("/profiles/triton/")
    primed.assert_clean("serve_check")
    assert primed.stage("flashinfer", mode="rebuild")["status"] == "ok"
    assert_proven(primed, check(primed))


def test_a_missing_sglang_jit_kernel_is_refused_by_the_server_not_compiled(primed):
    """SGLANG_CRASH_ON_JIT_COMPILE=1 on the serving server: a miss of SGLang's JIT-kernel cache fails loudly."""
    [leaf] = glob.glob(primed.host("profiles", "sglang_jit", "*", "sgl_kernel_jit_*", "build-*", "deps-*", "*.so"))
    os.unlink(leaf)
    failed = assert_jit(check(primed), "refused to compile it (SGLANG_CRASH_ON_JIT_COMPILE=1) and exited",
                        "sgl_kernel_jit_fused_add_rmsnorm_")
    assert failed["serve_check"]["measured"]["crash_on_jit_miss"]["crashed"] is True
    assert not os.path.exists(leaf)  # nothing was compiled at serve time
    assert primed.stage("flashinfer", mode="rebuild")["status"] == "ok"  # a priming server compiles it again
    assert_proven(primed, check(primed))


def test_a_deleted_deep_gemm_kernel_fails_the_check_and_a_reprime_passes(primed):
    kernel = sorted(glob.glob(primed.host("profiles", "deep_gemm", "cache", "sm90_fp8_gemm_1d2d.*")))[0]
    shutil.rmtree(kernel)
    failed = assert_jit(check(primed), "deep_gemm: 1 new kernel sm90_fp8_gemm_1d2d.*",
                        "Try DeepGEMM JIT Compiling for <GEMM_NT_F8F8BF16>", "deep_gemm should have primed them",
                        "prime_stage_modes: {deep_gemm: rebuild}")
    lines = failed["serve_check"]["jit_lines"]
    assert any(line["kind"] == "deep_gemm_session" for line in lines)
    assert os.path.exists(primed.profiles("/profiles/.in_progress/serve_check.json"))  # ensure will re-run it
    assert primed.prep_result()["zero_jit"] is False
    assert primed.stage("deep_gemm", mode="rebuild")["status"] == "ok"
    assert_proven(primed, check(primed))


def test_a_removed_tuned_moe_config_fails_the_check_with_the_default_config_warning(primed):
    tuned = primed.host("profiles", "moe_configs", "configs", "triton_3_4_0",
                        "E=8,N=256,device_name=NVIDIA_H100_80GB_HBM3,dtype=fp8_w8a8,block_shape=[128, 128].json")
    os.unlink(tuned)
    failed = assert_jit(check(primed), "default MoE kernel config", "moe_tune should have primed it",
                        "re-run moe_tune with mode rebuild")
    [finding] = failed["serve_check"]["findings"]
    assert finding["kind"] == "moe_default"
    assert "Using default MoE kernel config. Performance might be sub-optimal! Config file not found at " \
           "/profiles/moe_configs/configs/triton_3_4_0/E=8,N=256,device_name=NVIDIA_H100_80GB_HBM3,dtype=fp8_w8a8,block_shape=[128, 128].json" in \
           finding["log_lines"][0]
    assert primed.stage("moe_tune", mode="rebuild")["status"] == "ok"
    assert_proven(primed, check(primed))


def test_serving_args_that_raise_the_captured_batch_size_after_priming_fail_the_check(primed):
    raised = "--extra-server-arg=--cuda-graph-max-bs-decode=512"
    failed = assert_jit(check(primed, raised), "triton: ", "fused_moe_kernel", "server start-up",
                        "--cuda-graph-max-bs-decode=512", "other extra server args",
                        "run prime with the serving args as prime_extra_server_args")
    assert failed["serve_check"]["shapes"]["decode_batch_sizes"][-1] == 512
    assert [c["cause"] for c in failed["serve_check"]["causes"]] == ["serving_args"]
    # the re-prime: the server stages with the serving args (their signatures change, so an ensure runs them)
    for stage in SERVER_STAGES:
        result = primed.stage(stage, raised)
        # the re-prime names the kernel input that changed, besides the raw args
        assert result["status"] == "ok" and [r["field"] for r in result["reprime_reasons"]] == [
            "cuda_graph_max_bs_decode", "extra_server_args"]
    assert_proven(primed, check(primed, raised))


def test_a_longer_context_fails_the_check_naming_the_request(primed):
    longer = ("--serve-max-prompt-tokens", "8192")
    failed = assert_jit(check(primed, *longer), "triton: 7 files (_fwd_kernel)",
                        "prompt of 8192 tokens (2 chunks of up to 4096)", "a longer context",
                        "--cuda-graph-prefill-max-context=8192")
    [finding] = failed["serve_check"]["findings"]
    assert finding["phases"] == ["prompt of 8192 tokens (2 chunks of up to 4096)"]
    assert [c["cause"] for c in failed["serve_check"]["causes"]] == ["longer_context"]
    cover = "--extra-server-arg=--cuda-graph-prefill-max-context=8192"
    for stage in SERVER_STAGES:
        assert primed.stage(stage, cover)["status"] == "ok"
    proof = check(primed, cover, *longer)
    assert_proven(primed, proof)
    assert proof["serve_check"]["shapes"]["prompt_lengths"][-1] == 8192
    assert json.loads(primed.stage_json_text("serve_check"))["serve_check"]["shapes"]["max_prompt_tokens"] == 8192

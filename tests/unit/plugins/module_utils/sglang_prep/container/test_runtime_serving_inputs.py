"""Signatures cover every input that changes kernels, and a re-prime names the field (issue 11, point 9).

Each input is its own signature field (registry.SERVER_KERNEL_INPUTS, registry.MOE_SHAPE_INPUTS), read by
container/serving_inputs.py from the extra server args, the checkpoint and the servers' environment.
"""

import json
import os

import pytest

from unit_support.runtime import Run
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import registry
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import serving_inputs


@pytest.fixture(scope="module")
def primed(tmp_path_factory):
    """deep_gemm and moe_tune primed once; each test asks a check-mode run what would change."""
    run = Run(str(tmp_path_factory.mktemp("primed")))
    for stage in ("deep_gemm", "moe_tune"):
        assert run.stage(stage)["status"] == "ok"
    return run


def reasons(run, stage, env=None, **options):
    result = run.stage(stage, mode="check", env=env, **options)
    return dict((r["field"], (r["old"], r["new"])) for r in result["reprime_reasons"])


def test_a_primed_stage_with_the_same_inputs_has_nothing_to_do(primed):
    assert primed.stage("deep_gemm", mode="check")["status"] == "noop"


@pytest.mark.parametrize("args, field, value", [
    (["--max-running-requests=64"], "max_running_requests", "64"),
    (["--cuda-graph-max-bs-decode", "256"], "cuda_graph_max_bs_decode", "256"),
    (["--cuda-graph-bs-decode", "1", "2", "4"], "cuda_graph_bs_decode", ["1", "2", "4"]),
    (["--torch-compile-max-bs=16"], "torch_compile_max_bs", "16"),
    (["--dtype=float16"], "dtype", "float16"),
    (["--quantization", "w8a8_fp8"], "quantization", "w8a8_fp8"),
    (["--ep-size=2"], "ep_size", "2"),
    (["--moe-runner-backend=triton"], "moe_runner_backend", "triton"),
    (["--attention-backend=flashinfer"], "attention_backend", "flashinfer"),
    (["--sampling-backend=pytorch"], "sampling_backend", "pytorch"),
    (["--page-size", "64"], "page_size", "64"),
])
def test_a_changed_serving_arg_names_its_field(primed, args, field, value):
    changed = reasons(primed, "deep_gemm", extra_server_args=args)
    assert changed[field][1] == value
    assert "extra_server_args" in changed


def test_the_backends_are_recorded_as_resolved(primed):
    fields = primed.stage("deep_gemm", mode="check")["signature"]
    assert fields["attention_backend"] == "fa3" and fields["sampling_backend"] == "flashinfer"  # Hopper stand-in
    assert fields["gpu_memory_mib"] == 81559


def test_gpu_memory_is_part_of_the_server_stages_signature(primed):
    changed = reasons(primed, "deep_gemm", env={"SGLANG_STANDIN_GPU_MEM_MIB": "143771"})
    assert changed["gpu_memory_mib"] == (81559, 143771)
    assert "gpu_memory_mib" not in reasons(primed, "moe_tune", env={"SGLANG_STANDIN_GPU_MEM_MIB": "143771"})


def test_the_servers_environment_is_part_of_the_signature(primed):
    changed = reasons(primed, "deep_gemm", env={"TORCHINDUCTOR_MAX_AUTOTUNE": "1"})
    assert list(changed) == ["server_env"] and changed["server_env"][1]["TORCHINDUCTOR_MAX_AUTOTUNE"] == "1"
    # what does not reach a kernel is not recorded, nor what the runtime sets itself
    assert reasons(primed, "deep_gemm", env={"SOME_TOOL_TOKEN": "x", "TRITON_CACHE_DIR": "/elsewhere"}) == {}


def test_the_checkpoints_quantization_files_are_part_of_the_signature(primed, tmp_path):
    path = os.path.join(primed.model, "hf_quant_config.json")
    with open(path, "w") as handle:
        json.dump({"quantization": {"quant_algo": "FP8"}}, handle)
    try:
        for stage in ("deep_gemm", "moe_tune"):
            changed = reasons(primed, stage)
            assert changed["quantization_files_sha256"][0] is None and changed["quantization_files_sha256"][1]
    finally:
        os.unlink(path)


def test_moe_tune_records_the_serving_args_that_change_its_shapes(primed):
    assert reasons(primed, "moe_tune", extra_server_args=["--ep-size", "2"])["ep_size"] == (None, "2")
    assert reasons(primed, "moe_tune", extra_server_args=["--disable-shared-experts-fusion"])[
        "disable_shared_experts_fusion"] == (False, True)
    assert reasons(primed, "moe_tune", extra_server_args=["--log-level=debug"]) == {}  # no shape change


def test_sglang_env_names_come_from_sglangs_own_environ(tmp_path):
    pkg = tmp_path / "sglang"
    (pkg / "srt").mkdir(parents=True)
    (pkg / "srt" / "environ.py").write_text("class Envs:\n    SGLANG_JIT_DEEPGEMM_FAST_WARMUP = EnvBool(False)\n")
    env = {"SGLANG_JIT_DEEPGEMM_FAST_WARMUP": "1", "SGLANG_UNKNOWN_KNOB": "1", "PATH": "/bin", "DG_JIT_USE_NVRTC": "0",
           "SGLANG_DG_CACHE_DIR": "/profiles/deep_gemm"}
    assert serving_inputs.server_env(env, str(pkg), {"SGLANG_DG_CACHE_DIR"}) == {
        "DG_JIT_USE_NVRTC": "0", "SGLANG_JIT_DEEPGEMM_FAST_WARMUP": "1"}


def test_every_server_stage_records_the_kernel_inputs():
    for stage in registry.server_stages():
        fields = registry.get(stage).signature_fields()
        assert set(registry.SERVER_KERNEL_INPUTS) <= set(fields) and "gpu_memory_mib" in fields
    assert set(registry.MOE_SHAPE_INPUTS) <= set(registry.get("moe_tune").signature_fields())

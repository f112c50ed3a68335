"""Log validation: the real SGLang 0.5.23 lines (sglang-facts.md 3) map to the right verdicts."""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import validate  # noqa: E402

KV_OK = "[2026-11-29 12:00:00 TP0] KV Cache is allocated. dtype: torch.float8_e4m3fn, #tokens: 1000, K size: 1.00 GB, V size: 1.00 GB"
KV_MLA = "[2026-11-29 12:00:00 TP0] KV Cache is allocated. dtype: torch.float8_e4m3fn, #tokens: 1000, KV size: 2.00 GB"
KV_POST = ("Post-capture KV sizing: KV cache allocated. dtype: torch.bfloat16, #tokens: 12, KV size: 1.00 GB, "
           "avail mem=3.00 GB")
MOE_DIR = "/profiles/moe_configs"
MOE_FILE = MOE_DIR + "/configs/triton_3_4_0/E=256,N=256,device_name=NVIDIA_H200,dtype=fp8_w8a8,block_shape=[128, 128].json"


def scan(*lines):
    out = validate.LogScan()
    for line in lines:
        out.feed(line)
    return out


@pytest.mark.parametrize("line", [KV_OK, KV_MLA, "[x] KV Cache VA upper bound. dtype: torch.float8_e4m3fn, #tokens: 9"])
def test_fp8_kv_lines_in_all_variants_pass(line):
    assert scan("Load weight end.", line).kv_drift() is None


def test_bfloat16_kv_cache_is_config_drift_naming_both_dtypes():
    error_type, message = scan(KV_OK.replace("float8_e4m3fn", "bfloat16")).kv_drift()
    assert error_type == "config_drift"
    assert "torch.bfloat16" in message and "fp8_e4m3" in message


def test_post_capture_variant_is_checked_too():
    assert scan(KV_OK, KV_POST).kv_drift()[0] == "config_drift"


def test_missing_kv_line_cannot_pass_silently():
    error_type, message = scan("The server is fired up and ready to roll!").kv_drift()
    assert error_type == "config_drift" and "cannot be verified" in message


@pytest.mark.parametrize("line", [
    "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static. Current value: mem_fraction_static=0.94",
    "ValueError: Loaded weights leave no GPU memory for the KV cache under --mem-fraction-static=0.94. Raise it",
    "Not enough GPU memory for hybrid (mamba/linear-attention) state cache. Need 3 GB",
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
])
def test_not_enough_memory_variants(line):
    error_type, message = scan("Load weight begin.", line, "Traceback ...").log_failure()
    assert error_type == "not_enough_memory"
    assert "0.94" in message  # the fix names the policy value it will not lower


def test_a_mamba_state_cache_without_a_request_slot_is_its_own_error():
    """kv_cache_configurator.py's text (0.5.23): more memory does not help, the cache size does."""
    line = ("RuntimeError: Hybrid (mamba/linear-attention) state cache is too small to serve any requests. "
            "max_mamba_cache_size=1, mamba_ratio=3, resulting max_num_reqs=0. Try: (1) reduce --max-running-requests, "
            "(2) increase --mem-fraction-static, or (3) use GPUs with more memory.")
    error_type, message = scan("Load weight end.", line).log_failure()
    assert error_type == "mamba_cache_too_small"
    assert "--max-mamba-cache-size" in message and "max_mamba_cache_size=1" in message


def test_a_missing_nvcc_is_told_apart_from_nvrtc():
    """sgl-deep-gemm 0.2.3.post2 JIT-compiles with NVCC only; its assertion names the path it tried."""
    line = "RuntimeError: Assertion error: NVCC compiler is not executable: /usr/local/cuda/bin/nvcc"
    error_type, message = scan(line).log_failure()
    assert error_type == "nvcc_not_found"
    assert "CUDA toolkit" in message and "/usr/local/cuda/bin/nvcc" in message


def test_nvrtc_and_libcuda_are_told_apart():
    nvrtc = "RuntimeError: Failed to load nvrtc: libnvrtc.so.12: cannot open shared object file: No such file or directory"
    libcuda = "OSError: libcuda.so.1: cannot open shared object file: No such file or directory"
    assert scan(nvrtc).log_failure()[0] == "nvrtc_not_found"
    assert scan(libcuda).log_failure()[0] == "libcuda_missing"


def test_memory_failure_outranks_a_later_cuda_library_line():
    out = scan("libcuda.so.1: cannot open shared object file: No such file or directory",
               "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.")
    assert out.log_failure()[0] == "not_enough_memory"


def test_clean_log_has_no_failure():
    assert scan(KV_OK, "The server is fired up and ready to roll!").log_failure() is None


def test_moe_config_line_with_spaces_in_the_file_name_is_verified():
    out = scan("[2026-11-29 12:00:00 TP0] Using MoE kernel config from %s." % MOE_FILE)
    result = out.moe_validation(MOE_DIR)
    assert result["moe_config_used"] == MOE_FILE
    assert result["verified_in_log"] is True


def test_moe_config_from_the_package_is_not_ours():
    shipped = "/usr/lib/python3/dist-packages/sglang/srt/layers/moe/moe_runner/triton_utils/configs/triton_3_4_0/E=8.json"
    result = scan("Using MoE kernel config from %s." % shipped).moe_validation(MOE_DIR)
    assert result["moe_config_used"] == shipped and result["verified_in_log"] is False


def test_moe_fallback_to_another_triton_version_is_not_verified():
    line = ("Config file not found at %s/configs/triton_3_5_0/E=8.json. Fallback to triton version 3.4.0 and use MoE "
            "kernel config from %s/configs/triton_3_4_0/E=8.json. Performance might be sub-optimal!" % (MOE_DIR, MOE_DIR))
    result = scan(line).moe_validation(MOE_DIR)
    assert result["moe_config_fallback"]["triton_version"] == "3.4.0"
    assert result["verified_in_log"] is False


def test_default_moe_config_is_recorded():
    result = scan("Using default MoE kernel config. Performance might be sub-optimal! Config file not found at x").moe_validation(
        MOE_DIR)
    assert result["moe_default_config"] is True and result["moe_config_used"] is None


def test_tail_keeps_the_last_twenty_lines():
    out = scan(*["line %d" % i for i in range(50)])
    assert list(out.tail) == ["line %d" % i for i in range(30, 50)]


def test_carriage_returns_end_lines():
    lines, rest = validate.split_lines("DeepGEMM warmup 10%\rDeepGEMM warmup 20%\r\nnext\npart")
    assert lines == ["DeepGEMM warmup 10%", "DeepGEMM warmup 20%", "next"]
    assert rest == "part"

"""Log validation: the real SGLang 0.5.23 lines (sglang-facts.md 3) map to the right verdicts."""


import pytest


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import validate

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


def default_line(path):
    return ("[2026-11-29 12:00:00 TP0] Using default MoE kernel config. Performance might be sub-optimal! Config file "
            "not found at %s, you can create them with "
            "https://github.com/sgl-project/sglang/tree/main/benchmark/kernels/fused_moe_triton" % path)


MOE_DOWN = MOE_FILE[:-len(".json")] + "_down.json"
DOWN_REUSE = ("[2026-11-29 12:00:00 TP0] Down MoE config file not found at %s; reusing the tuned up-projection config "
              "without TMA. Performance might be sub-optimal." % MOE_DOWN)


def test_default_moe_config_is_recorded():
    result = scan(default_line(MOE_FILE)).moe_validation(MOE_DIR)
    assert result["moe_default_config"] is True and result["moe_config_used"] is None
    assert result["moe_lookups"]["up"] == {"config_used": None, "looked_up": MOE_FILE, "source": "default",
                                           "fallback": None}


def test_up_and_down_lookups_are_reported_apart():
    # the order real SGLang logs them in: the up file, then the down file
    out = scan("Using MoE kernel config from %s." % MOE_FILE, "Using MoE kernel config from %s." % MOE_DOWN)
    result = out.moe_validation(MOE_DIR, origin=lambda path: "tuned")
    assert result["moe_config_used"] == MOE_FILE and result["verified_in_log"] is True
    assert result["moe_lookups"]["up"]["source"] == "tuned"
    assert result["moe_lookups"]["down"] == {"config_used": MOE_DOWN, "looked_up": MOE_DOWN, "source": "tuned",
                                             "fallback": None}


def test_a_down_file_is_never_the_config_used():
    # only the down lookup found a file (the up one fell back to the default): the up result says so
    result = scan(default_line(MOE_FILE), "Using MoE kernel config from %s." % MOE_DOWN).moe_validation(MOE_DIR)
    assert result["moe_config_used"] is None and result["verified_in_log"] is False
    assert result["moe_lookups"]["down"]["config_used"] == MOE_DOWN


def test_down_lookup_reusing_the_up_config_and_a_down_default_are_not_the_up_default():
    reuse = scan("Using MoE kernel config from %s." % MOE_FILE, DOWN_REUSE).moe_validation(MOE_DIR)
    assert reuse["verified_in_log"] is True and reuse["moe_default_config"] is False
    assert reuse["moe_lookups"]["down"] == {"config_used": None, "looked_up": MOE_DOWN, "source": "up_config_reused",
                                            "fallback": None}
    down_default = scan("Using MoE kernel config from %s." % MOE_FILE, default_line(MOE_DOWN)).moe_validation(MOE_DIR)
    assert down_default["moe_default_config"] is False and down_default["verified_in_log"] is True
    assert down_default["moe_lookups"]["down"]["source"] == "default"


def test_a_down_fallback_to_another_triton_version_is_the_down_lookups():
    other = MOE_DOWN.replace("triton_3_4_0", "triton_3_3_0")
    line = ("Config file not found at %s. Fallback to triton version 3.3.0 and use MoE kernel config from %s. "
            "Performance might be sub-optimal!" % (MOE_DOWN, other))
    result = scan("Using MoE kernel config from %s." % MOE_FILE, line).moe_validation(MOE_DIR)
    assert result["moe_config_used"] == MOE_FILE and result["moe_config_fallback"] is None
    assert result["moe_lookups"]["down"]["fallback"] == {"triton_version": "3.3.0", "path": other}
    assert result["moe_lookups"]["down"]["looked_up"] == MOE_DOWN


def test_a_config_from_sglangs_own_directory_is_the_package():
    shipped = "/usr/lib/python3/dist-packages/sglang/srt/layers/moe/moe_runner/triton_utils/configs/triton_3_4_0/E=8.json"
    result = scan("Using MoE kernel config from %s." % shipped).moe_validation(MOE_DIR)
    assert result["moe_lookups"]["up"]["source"] == "package"


def test_tail_keeps_the_last_twenty_lines():
    out = scan(*["line %d" % i for i in range(50)])
    assert list(out.tail) == ["line %d" % i for i in range(30, 50)]


def test_carriage_returns_end_lines():
    lines, rest = validate.split_lines("DeepGEMM warmup 10%\rDeepGEMM warmup 20%\r\nnext\npart")
    assert lines == ["DeepGEMM warmup 10%", "DeepGEMM warmup 20%", "next"]
    assert rest == "part"

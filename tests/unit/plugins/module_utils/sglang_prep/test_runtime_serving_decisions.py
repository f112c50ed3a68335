"""Serving decisions the zoo tier (tests/contract/test_zoo.py) checks against real SGLang, branch by branch here:
argument reading with SGLang's prefix rule (server_flags.read_args), DeepGEMM use (deepgemm.usage) and the
--max-mamba-cache-size policy (mamba.policy, argv.server_argv)."""

import json

import pytest


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import server_flags
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import (
    argv, deepgemm, mamba, serving_inputs)


@pytest.mark.parametrize("args, dest, value", [
    (["--ep-s", "8"], "ep_size", "8"),             # before: abbreviations were ignored by the scanners
    (["--ep", "8"], "ep_size", "8"),
    (["--expert-parallel-size=8"], "ep_size", "8"),
    (["--moe-runner-b", "deep_gemm"], "moe_runner_backend", "deep_gemm"),
    (["--json-model-override-args", '{"a": 1}'], "json_model_override_args", '{"a": 1}'),
    (["--cuda-graph-bs-decode", "1", "2", "--ep-size", "2"], "cuda_graph_bs_decode", ["1", "2"]),
    (["--disable-shared-experts-fusion"], "disable_shared_experts_fusion", True),
    (["--chunked-prefill-size", "-1"], "chunked_prefill_size", "-1"),
])
def test_arguments_are_read_as_sglang_reads_them(args, dest, value):
    assert server_flags.read_args(args)[dest] == value


@pytest.mark.parametrize("args, message", [
    (["--quant", "fp8"], "ambiguous option: --quant could match"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--ep-size"], "expected one argument"),
    (["--disable-shared-experts-fusion=yes"], "ignored explicit argument"),
    (["stray"], "unrecognized arguments: stray"),
])
def test_arguments_sglang_refuses_are_refused_before_any_work(args, message):
    with pytest.raises(server_flags.ArgsError, match=message):
        server_flags.read_args(args)
    with pytest.raises(argv.ArgvError, match="would refuse the extra server arguments"):
        argv.check_extra_args(args)


def test_the_signature_fields_read_abbreviations_too():
    values = serving_inputs.extra_arg_values(["--ep-s", "4", "--moe-runner-b", "triton", "--speculative-algo", "EAGLE"])
    assert values == {"ep_size": "4", "moe_runner_backend": "triton", "speculative_algorithm": "EAGLE"}


def write(tmp_path, config, name="config.json"):
    (tmp_path / name).write_text(json.dumps(config))
    return str(tmp_path)


@pytest.mark.parametrize("config, args, used, why", [
    ({"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}, [], True, "block-quantized"),
    ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {
        "type": "float", "num_bits": 8, "strategy": "block", "block_structure": [128, 128]}}}}}, [], True,
     "block-quantized"),  # before: skipped (only quant_method fp8 was looked at)
    ({"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {
        "type": "float", "num_bits": 8, "strategy": "channel"}}}}}, [], False, "without FP8 weight blocks"),
    ({"architectures": ["DeepseekV32ForCausalLM"], "index_topk": 2048}, [], True, "DSA indexer"),
    ({"architectures": ["DeepseekV4ForCausalLM"]}, [], True, "directly"),
    ({}, ["--moe-runner-b", "deep_gemm"], True, "deep_gemm"),  # abbreviated: before, not seen
    ({}, ["--moe-runner-backend", "megamoe"], True, "MegaMoE"),
    ({"quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}},
     ["--quantization", "w8a8_fp8"], False, "without"),
    ({}, [], False, "no quantization_config"),
])
def test_deep_gemm_use(tmp_path, config, args, used, why):
    path = write(tmp_path, config)
    got, reason = deepgemm.usage(path, config, args)
    assert got is used and why in reason


@pytest.mark.parametrize("config, args, hybrid, value", [
    ({"model_type": "llama"}, [], False, 1),
    ({"model_type": "qwen3_next"}, [], True, 5),
    ({"model_type": "qwen3_next"}, ["--disable-radix-cache"], True, 1),
    ({"model_type": "qwen3_next"}, ["--mamba-radix-cache-strategy", "no_buffer", "--disable-overlap-schedule"], True, 3),
    ({"model_type": "qwen3_next"}, ["--disable-overlap-schedule"], True, 3),
    ({"model_type": "qwen3_next"}, ["--disable-overlap-schedule", "--page-size", "16"], True, 4),
    ({"text_config": {"model_type": "qwen3_5_moe_text"}}, [], True, 5),
    ({"model_type": "granitemoehybrid", "layer_types": ["mamba", "attention"]}, [], True, 5),
    ({"model_type": "qwen3_next"}, ["--max-mamba-cache-size", "64"], True, None),
])
def test_mamba_cache_policy(config, args, hybrid, value):
    policy = mamba.policy(config, args)
    assert (policy["hybrid"], policy["value"]) == (hybrid, value)
    assert (policy["deviation"] is not None) is (hybrid and value is not None)


def test_every_stage_server_gets_the_policy_size(tmp_path):
    """Before: no stage server got --max-mamba-cache-size (the notebook's hard policy was dropped)."""
    plain = write(tmp_path, {"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    cmd = argv.server_argv("flashinfer", plain)
    assert cmd[cmd.index("--max-mamba-cache-size") + 1] == "1"
    hybrid = tmp_path / "hybrid"
    hybrid.mkdir()
    cmd = argv.server_argv("flashinfer", write(hybrid, {"model_type": "nemotron_h"}))
    assert cmd[cmd.index("--max-mamba-cache-size") + 1] == "5"
    given = argv.server_argv("flashinfer", plain, extra_args=["--max-mamba-cache-size", "8"])
    assert given.count("--max-mamba-cache-size") == 1 and given[-1] == "8"

"""container/moe.py: the tuner inputs that make the tuned file the one SGLang 0.5.23 looks up (sglang-facts.md 10).

The mapping of each quantization method to the lookup's name parts is checked against the real code for the
bf16, FP8-block and W8A8-int8 test models in tests/contract/test_real_moe_names.py; here every branch is.
"""

import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import moe  # noqa: E402

MIXTRAL = {"architectures": ["MixtralForCausalLM"], "num_local_experts": 8, "intermediate_size": 256,
           "torch_dtype": "bfloat16"}


def model(tmp_path, quantization_config=None, hf_quant=None, **extra):
    config = dict(MIXTRAL, **extra)
    if quantization_config is not None:
        config["quantization_config"] = quantization_config
    (tmp_path / "config.json").write_text(json.dumps(config))
    if hf_quant is not None:
        (tmp_path / "hf_quant_config.json").write_text(json.dumps(hf_quant))
    return str(tmp_path), config


@pytest.mark.parametrize("qconf, hf_quant, extra_args, dtype, per_channel, block, down", [
    (None, None, [], None, False, None, True),
    ({"quant_method": "fp8", "weight_block_size": [128, 128]}, None, [], "fp8_w8a8", False, [128, 128], True),
    ({"quant_method": "fp8"}, None, [], "fp8_w8a8", False, None, True),
    ({"quant_method": "w8a8_fp8"}, None, [], "fp8_w8a8", True, None, False),
    ({"quant_method": "w8a8_int8"}, None, [], "int8_w8a8", True, None, False),
    ({"quant_method": "blockwise_int8", "weight_block_size": [128, 128]}, None, [], "int8_w8a8", False, [128, 128],
     False),
    (None, {"quantization": {"quant_algo": "FP8"}}, [], "fp8_w8a8", False, None, True),
    ({"quant_method": "gptq", "bits": 4}, None, ["--quantization", "moe_wna16"], "int4_w4a16", False, None, False),
    ({"quant_method": "gptq", "bits": 8}, None, ["--quantization=moe_wna16"], "int8_w8a16", False, None, False),
    (None, None, ["--quantization", "fp8"], "fp8_w8a8", False, None, True),  # online FP8 of a bf16 checkpoint
])
def test_the_plan_follows_the_quantization(tmp_path, qconf, hf_quant, extra_args, dtype, per_channel, block, down):
    path, config = model(tmp_path, qconf, hf_quant)
    plan = moe.tuner_plan(path, config, extra_args)
    assert (plan["dtype"], plan["per_channel_quant"], plan["block_shape"], plan["tune_down"]) == (
        dtype, per_channel, block, down)
    argv = moe.tuner_argv("python3", "t.py", path, 1, plan, 8)
    assert argv[argv.index("--dtype") + 1] == (dtype or "auto")
    assert ("--per-channel-quant" in argv) is per_channel
    assert (plan["down_reason"] is None) is down


def test_an_unknown_method_is_refused_unless_the_dtype_is_given(tmp_path):
    path, config = model(tmp_path, {"quant_method": "compressed-tensors"})
    with pytest.raises(ValueError, match="compressed-tensors.*--moe-dtype"):
        moe.tuner_plan(path, config, [])
    assert moe.tuner_plan(path, config, [], moe_dtype="fp8_w8a8")["tuner_dtype"] == "fp8_w8a8"


def test_a_dtype_that_disagrees_with_the_checkpoint_is_refused(tmp_path):
    path, config = model(tmp_path)
    with pytest.raises(ValueError, match="never reads.*without dtype="):
        moe.tuner_plan(path, config, [], moe_dtype="fp8_w8a8")


def test_serving_args_that_change_the_shape(tmp_path):
    path, config = model(tmp_path)
    for args in (["--ep", "2"], ["--ep-size=2"], ["--expert-parallel-size", "2"]):
        plan = moe.tuner_plan(path, config, args + ["--disable-shared-experts-fusion"])
        argv = moe.tuner_argv("python3", "t.py", path, 4, plan, "B")
        assert argv[argv.index("--ep-size") + 1] == "2" and "--disable-shared-experts-fusion" in argv
        down = moe.down_tuner_argv("python3", "d.py", path, 4, plan, "/w/up.json", "/w/down", 8)
        assert down[down.index("--ep-size") + 1] == "2" and down[down.index("--batch-sizes") + 1] == "8"
    with pytest.raises(ValueError, match="--ep-size"):
        moe.serving_moe_args(["--ep-size", "two"])


def test_file_names_are_checked_against_the_plan(tmp_path):
    path, config = model(tmp_path, {"quant_method": "fp8", "weight_block_size": [128, 128]})
    plan = moe.tuner_plan(path, config, [])
    name = "E=8,N=256,device_name=NVIDIA_H200,dtype=fp8_w8a8,block_shape=[128, 128]"
    assert moe.file_matches_plan(name + ".json", plan)
    assert moe.file_matches_plan(name + "_down.json", plan, down=True)
    assert not moe.file_matches_plan(name + "_down.json", plan)
    assert not moe.file_matches_plan("E=8,N=256,device_name=NVIDIA_H200,block_shape=[128, 128].json", plan)


@pytest.mark.parametrize("config, experts", [
    (MIXTRAL, 8),
    ({"architectures": ["DbrxForCausalLM"], "ffn_config": {"moe_num_experts": 16, "moe_top_k": 4}}, 16),
    ({"text_config": {"num_experts": 128}}, 128),
    ({"architectures": ["LlamaForCausalLM"], "intermediate_size": 11008}, 0),
])
def test_expert_counts_top_level_and_nested(config, experts):
    assert moe.num_experts(config) == experts
    assert moe.is_moe_model(config) is (experts > 1)


def test_a_local_triton_version_suffix_is_dropped_from_the_directory():
    assert moe.triton_version_dir("3.4.0") == ("triton_3_4_0", None)
    name, note = moe.triton_version_dir("3.5.0+gitc3c476f3")
    assert name == "triton_3_5_0" and "fallback" in note

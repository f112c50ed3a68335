"""container/moe.py: the tuner inputs that make the tuned file the one SGLang 0.5.23 looks up (sglang-facts.md 10).

The mapping of each quantization method to the lookup's name parts is checked against the real code for the
bf16, FP8-block and W8A8-int8 test models in tests/contract/test_real_moe_names.py; here every branch is.
"""

import json

import pytest


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import moe

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
    ({"quant_method": "gptq", "bits": 4}, None, ["--quantization", "moe_wna16"], "int4_w4a16", False, [0, 0], False),
    ({"quant_method": "gptq", "bits": 8}, None, ["--quantization=moe_wna16"], "int8_w8a16", False, [0, 0], False),
    (None, None, ["--quantization", "fp8"], "fp8_w8a8", False, None, True),  # online FP8 of a bf16 checkpoint
])
def test_the_plan_follows_the_quantization(tmp_path, qconf, hf_quant, extra_args, dtype, per_channel, block, down):
    path, config = model(tmp_path, qconf, hf_quant)
    plan = moe.tuner_plan(path, config, extra_args)
    assert (plan["dtype"], plan["per_channel_quant"], plan["block_shape"]) == (dtype, per_channel, block)
    if plan["skip_reason"] is None:
        assert plan["tune_down"] is down
        argv = moe.tuner_argv("python3", "t.py", path, 1, plan, 8)
        assert argv[argv.index("--dtype") + 1] == (dtype or "auto")
        assert ("--per-channel-quant" in argv) is per_channel
        assert (plan["down_reason"] is None) is down


def test_an_unknown_method_is_refused_unless_the_dtype_is_given(tmp_path):
    path, config = model(tmp_path, {"quant_method": "quark"})
    with pytest.raises(ValueError, match="quark.*--moe-dtype"):
        moe.tuner_plan(path, config, [])
    assert moe.tuner_plan(path, config, [], moe_dtype="fp8_w8a8")["tuner_dtype"] == "fp8_w8a8"


def test_a_dtype_that_disagrees_with_the_checkpoint_is_refused(tmp_path):
    path, config = model(tmp_path)
    with pytest.raises(ValueError, match="never reads.*without dtype="):
        moe.tuner_plan(path, config, [], moe_dtype="fp8_w8a8")


def test_serving_args_that_change_the_shape(tmp_path):
    path, config = model(tmp_path)
    for args in (["--ep", "2"], ["--ep-size=2"], ["--expert-parallel-size", "2"], ["--ep-s", "2"]):
        plan = moe.tuner_plan(path, config, args + ["--disable-shared-experts-fusion"], tp=4)
        argv = moe.tuner_argv("python3", "t.py", path, 4, plan, "B")
        assert argv[argv.index("--ep-size") + 1] == "2" and "--disable-shared-experts-fusion" in argv
        down = moe.down_tuner_argv("python3", "d.py", path, 4, plan, "/w/up.json", "/w/down", 8)
        assert down[down.index("--ep-size") + 1] == "2" and down[down.index("--batch-sizes") + 1] == "8"
        assert (plan["E"], plan["N"]) == (4, 128)  # 8 experts over 2 EP ranks; 256 over tp/ep = 2
    with pytest.raises(ValueError, match="--ep-size"):
        moe.serving_moe_args(["--ep-size", "two"])


def test_file_names_are_checked_whole_against_the_plan(tmp_path):
    """Before: only the end of the name was compared, so an E=9 file passed for an E=8 lookup."""
    path, config = model(tmp_path, {"quant_method": "fp8", "weight_block_size": [128, 128]})
    plan = moe.tuner_plan(path, config, [], device_name="NVIDIA H200")
    name = "E=8,N=256,device_name=NVIDIA_H200,dtype=fp8_w8a8,block_shape=[128, 128]"
    assert plan["up_name"] == name + ".json" and plan["down_name"] == name + "_down.json"
    assert moe.file_matches_plan(name + ".json", plan)
    assert moe.file_matches_plan(name + "_down.json", plan, down=True)
    assert not moe.file_matches_plan(name + "_down.json", plan)
    assert not moe.file_matches_plan("E=9,N=256,device_name=NVIDIA_H200,dtype=fp8_w8a8,block_shape=[128, 128].json", plan)
    assert not moe.file_matches_plan("E=8,N=128,device_name=NVIDIA_H200,dtype=fp8_w8a8,block_shape=[128, 128].json", plan)
    assert not moe.file_matches_plan("E=8,N=256,device_name=NVIDIA_H100,dtype=fp8_w8a8,block_shape=[128, 128].json", plan)


DSV3 = {"architectures": ["DeepseekV3ForCausalLM"], "n_routed_experts": 256, "n_shared_experts": 1,
        "moe_intermediate_size": 2048, "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}


@pytest.mark.parametrize("config, args, fused, E", [
    (DSV3, [], 1, 257),
    (DSV3, ["--ep-size", "8"], 0, 32),       # SGLang does not fuse under expert parallelism on NVIDIA
    (DSV3, ["--ep-s", "8"], 0, 32),          # ... read as SGLang's parser reads it
    (dict(DSV3, n_routed_experts=384), [], 0, 384),  # Kimi-K2: 384 experts fuse only for Quark checkpoints
    (dict(DSV3, n_routed_experts=64, n_shared_experts=2, quantization_config=None), [], 0, 64),  # Moonlight
    (DSV3, ["--json-model-override-args", '{"n_shared_experts": 2}'], 0, 256),
    (DSV3, ["--moe-runner-backend", "flashinfer_trtllm"], 0, None),  # SGLang turns fusion off; no Triton lookup
])
def test_shared_expert_fusion_decides_E(tmp_path, config, args, fused, E):
    """Before: the tuner added one expert unless the serving args said --disable-shared-experts-fusion, so the
    tuned file was E=33 (385, 65) while SGLang read E=32 (384, 64)."""
    config = dict((k, v) for k, v in config.items() if v is not None)
    (tmp_path / "config.json").write_text(json.dumps(config))
    plan = moe.tuner_plan(str(tmp_path), config, args, tp=8, device_name="NVIDIA H200")
    assert plan["fused_shared_experts"] == fused
    if E is None:
        assert plan["skip_reason"] and "flashinfer_trtllm" in plan["skip_reason"]
        return
    assert plan["E"] == E and plan["up_name"].startswith("E=%d," % E)
    argv = moe.tuner_argv("python3", "t.py", str(tmp_path), 8, plan, "B")
    assert ("--disable-shared-experts-fusion" in argv) is (fused == 0)


def test_awq_and_gptq_are_served_by_marlin_so_moe_tune_skips(tmp_path):
    """Before: moe_tune failed on AWQ/GPTQ checkpoints (their method has no Triton config name)."""
    for qconf in ({"quant_method": "awq", "bits": 4, "group_size": 128}, {"quant_method": "gptq", "bits": 4}):
        path, config = model(tmp_path, qconf)
        plan = moe.tuner_plan(path, config, [])
        assert plan["runner"] == "marlin" and "Marlin" in plan["skip_reason"]


def test_moe_wna16_looks_up_the_packed_N(tmp_path):
    """Before: the plan named the unpacked N; SGLang looks up w2.shape[2], packed (moe_wna16.py)."""
    path, config = model(tmp_path, {"quant_method": "awq", "bits": 4, "group_size": 128})
    plan = moe.tuner_plan(path, config, ["--quantization", "moe_wna16"], device_name="NVIDIA H200")
    assert plan["N"] == 128 and plan["up_name"] == "E=8,N=128,device_name=NVIDIA_H200,dtype=int4_w4a16.json"
    assert "cannot write" in plan["skip_reason"]
    path, config = model(tmp_path, {"quant_method": "gptq", "bits": 4, "desc_act": True})
    with pytest.raises(ValueError, match="refuses --quantization moe_wna16"):
        moe.tuner_plan(path, config, ["--quantization", "moe_wna16"])


def ct(strategy, block=None):
    weights = {"num_bits": 8, "type": "float", "strategy": strategy, "block_structure": block}
    return {"quant_method": "compressed-tensors", "config_groups": {"group_0": {"weights": weights}}}


@pytest.mark.parametrize("qconf, tail", [
    (ct("channel"), ",dtype=fp8_w8a8,per_channel_quant=True.json"),
    (ct("block", [128, 128]), ",dtype=fp8_w8a8,block_shape=[128, 128].json"),
    (ct("tensor"), ",dtype=fp8_w8a8.json"),
])
def test_compressed_tensors_fp8_names(tmp_path, qconf, tail):
    """Before: the hint led to a name without per_channel_quant / block_shape."""
    path, config = model(tmp_path, qconf)
    plan = moe.tuner_plan(path, config, [], device_name="NVIDIA H200")
    assert plan["up_name"] == "E=8,N=256,device_name=NVIDIA_H200" + tail
    assert "cannot write" in plan["skip_reason"]  # the tuner crashes on config_groups checkpoints


@pytest.mark.parametrize("args, runner", [
    (["--moe-runner-backend", "flashinfer_cutlass"], "flashinfer_cutlass"),
    (["--moe-runner-b", "triton_kernel"], "triton_kernel"),
    (["--moe-runner-backend=marlin"], "marlin"),
])
def test_non_triton_runners_skip_moe_tune(tmp_path, args, runner):
    path, config = model(tmp_path)
    plan = moe.tuner_plan(path, config, args)
    assert plan["runner"] == runner and "reads no fused-MoE config" in plan["skip_reason"]


def test_dtype_float32_and_json_overrides_change_the_name(tmp_path):
    path, config = model(tmp_path)
    assert moe.tuner_plan(path, config, ["--dtype", "float32"], device_name="X")["up_name"] == "E=8,N=256,device_name=X,dtype=float32.json"
    plan = moe.tuner_plan(path, config, ["--json-model-override-args", '{"intermediate_size": 512}'], device_name="X")
    assert plan["up_name"] == "E=8,N=512,device_name=X.json"


def test_block_fp8_that_sglang_cannot_shard_is_bad_input(tmp_path):
    path, config = model(tmp_path, {"quant_method": "fp8", "weight_block_size": [128, 128]}, intermediate_size=1536)
    with pytest.raises(ValueError, match="refuses.*not divisible by weight quantization block_n = 128"):
        moe.tuner_plan(path, config, [], tp=8)  # 1536 / 8 = 192
    assert moe.tuner_plan(path, config, ["--ep-size", "8"], tp=8)["N"] == 1536


def test_a_down_config_is_checked_before_install():
    up = {"8": {"BLOCK_SIZE_M": 16, "BLOCK_SIZE_N": 64, "BLOCK_SIZE_K": 128, "GROUP_SIZE_M": 1, "num_warps": 4,
                "num_stages": 3}}
    assert moe.down_config_problem(up, up, 8) is None
    assert "no entry for batch size 8" in moe.down_config_problem(up, {}, 8)
    other = {"8": dict(up["8"], BLOCK_SIZE_M=64)}
    assert "overrides it" in moe.down_config_problem(up, other, 8)
    assert "lacks integer num_stages" in moe.down_config_problem(up, {"8": dict(up["8"], num_stages="3")}, 8)


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

"""Names the fused-MoE config file real sglang 0.5.23 looks up for a checkpoint, and the one its tuner writes.

Not a test module: tests/contract/test_real_moe_names.py runs it with the contract venv's python.

stdin: JSON {"device_name": "...", "E": int, "N": int, "items": [{"model": dir, "tuner_argv": [...]}]}.
For each model it builds the checkpoint's real quantization config (get_quantization_config(quant_method)
.from_config(quantization_config), or none), the real fused-MoE method of that config (the one class of its
module whose name ends in MoEMethod; UnquantizedFusedMoEMethod without quantization) and that method's
TritonMoeQuantInfo (get_triton_quant_info), then the server's lookup name exactly as fused_moe.py does:
get_config_dtype_str(hidden dtype, use_*=info.use_*) and get_config_file_name(E, N, dtype, info.block_shape,
info.per_channel_quant). The tuner's name is built as the tuner builds it (common_utils.get_config_filename):
get_config_dtype_str(dtype, use_X=(--dtype == X)), block_shape from quantization_config.weight_block_size,
per_channel_quant from --per-channel-quant. stdout: one line, RESULT_MARK + JSON list of results.
"""

import inspect
import json
import sys
import types
import warnings

RESULT_MARK = "MOE-NAME-PROBE-RESULT "
LAYER_ATTRS = ("w13_weight", "w2_weight", "w13_weight_scale", "w2_weight_scale", "w13_weight_scale_inv",
               "w2_weight_scale_inv", "w13_input_scale", "w2_input_scale", "w13_qweight", "w2_qweight",
               "w13_scales", "w2_scales", "w13_qzeros", "w2_qzeros")
FLAGS = ("use_fp8_w8a8", "use_int8_w8a8", "use_int8_w8a16", "use_int4_w4a16")


def moe_method(quant_config):
    from sglang.srt.layers.quantization.unquant import UnquantizedFusedMoEMethod
    if quant_config is None:
        method = UnquantizedFusedMoEMethod.__new__(UnquantizedFusedMoEMethod)
        method.w13_swiglu_interleaved = False
        return method
    module = inspect.getmodule(type(quant_config))
    classes = [c for name, c in vars(module).items()
               if inspect.isclass(c) and name.endswith("MoEMethod") and c.__module__ == module.__name__]
    assert len(classes) == 1, "%s defines %s" % (module.__name__, [c.__name__ for c in classes])
    return classes[0](quant_config)


def main():
    import torch
    from sglang.srt.layers.quantization import get_quantization_config
    import sglang.srt.layers.moe.moe_runner.triton_utils.fused_moe_triton_config as cfg

    request = json.load(sys.stdin)
    cfg.get_device_name = lambda: request["device_name"]  # no GPU here: the name the tests give
    E, N = request["E"], request["N"]
    out = []
    for item in request["items"]:
        with open(item["model"] + "/config.json") as handle:
            hf = json.load(handle)
        qconf = hf.get("quantization_config")
        quant_config = get_quantization_config(qconf["quant_method"]).from_config(qconf) if qconf else None
        layer = types.SimpleNamespace(**{name: None for name in LAYER_ATTRS})
        info = moe_method(quant_config).get_triton_quant_info(layer)
        hidden = getattr(torch, hf.get("torch_dtype") or "bfloat16")
        server_dtype = cfg.get_config_dtype_str(hidden, **{flag: getattr(info, flag) for flag in FLAGS})
        server_name = cfg.get_config_file_name(E, N, server_dtype, info.block_shape, info.per_channel_quant)
        argv = item["tuner_argv"]
        tuner_arg = argv[argv.index("--dtype") + 1]
        tuner_dtype = cfg.get_config_dtype_str(hidden, **{flag: tuner_arg == flag[len("use_"):] for flag in FLAGS})
        block = (qconf or {}).get("weight_block_size")
        tuner_name = cfg.get_config_file_name(E, N, tuner_dtype, block, "--per-channel-quant" in argv)
        out.append({"model": item["model"], "server_dtype": server_dtype, "server_name": server_name,
                    "per_channel_quant": bool(info.per_channel_quant), "block_shape": info.block_shape,
                    "tuner_dtype_arg": tuner_arg, "tuner_name": tuner_name,
                    "server_down_name": cfg.get_config_file_name(E, N, server_dtype, info.block_shape,
                                                                 info.per_channel_quant, down_moe=True)})
    print(RESULT_MARK + json.dumps(out))


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    main()

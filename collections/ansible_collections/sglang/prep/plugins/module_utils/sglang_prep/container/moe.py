# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What SGLang's fused-MoE config lookup and its tuners agree on, for one checkpoint and one set of serving args.

The server names the file it looks up from the MoE layer's quantization method
(sglang-facts.md 10: fused_moe.py -> get_config_dtype_str / get_config_file_name):
``E=..,N=..,device_name=..[,dtype=..][,block_shape=[bn, bk]][,per_channel_quant=True][_down].json``.
The tuner (benchmark/kernels/fused_moe_triton/tuning_fused_moe_triton.py) adds ``dtype=`` only from its
own ``--dtype`` and ``per_channel_quant=True`` only from ``--per-channel-quant``; E and N follow its
``--tp-size``, ``--ep-size`` and ``--disable-shared-experts-fusion``. So the tuner argv is derived here
from the checkpoint's quantization_config (and hf_quant_config.json) and the serving args, never from
the tuner's defaults. The down projection (``<name>_down.json``) is tuned by the sibling
tune_down_moe.py, which can name only unquantized and fp8_w8a8 files.
"""

from __future__ import annotations

import json
import os
import subprocess

# HF config keys that hold the routed-expert count (DBRX nests it: ffn_config.moe_num_experts).
MOE_EXPERT_KEYS = ("num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts")
NESTED_EXPERT_SECTIONS = ("text_config", "language_config", "ffn_config")
TUNER_DTYPES = ("auto", "fp8_w8a8", "int8_w8a16", "int8_w8a8", "int4_w4a16")
DOWN_TUNER_NAME = "tune_down_moe.py"
DOWN_SUFFIX = "_down.json"
# The plan fields recorded in moe_tune's signature: what the tuner is asked for, so a change re-tunes.
PLAN_SIGNATURE_KEYS = ("dtype", "per_channel_quant", "block_shape", "ep_size", "disable_shared_experts_fusion",
                       "tune_down")
# quant_method -> (dtype selector, per_channel_quant, block shape from weight_block_size), read from each
# method's get_triton_quant_info in sglang 0.5.23 (layers/quantization/*.py).
QUANT_METHODS = {
    "fp8": ("fp8_w8a8", False, True),             # fp8.py Fp8MoEMethod (block_shape=weight_block_size)
    "w8a8_fp8": ("fp8_w8a8", True, False),        # w8a8_fp8.py (per_channel_quant=True)
    "w8a8_int8": ("int8_w8a8", True, False),      # w8a8_int8.py (per_channel_quant=True)
    "blockwise_int8": ("int8_w8a8", False, True),  # blockwise_int8.py (block_shape=weight_block_size)
    "modelopt": ("fp8_w8a8", False, False),       # modelopt_quant.py ModelOptFp8MoEMethod
    "modelopt_fp8": ("fp8_w8a8", False, False),
}
# moe_wna16 (GPTQ/AWQ checkpoints served with --quantization moe_wna16): int4_w4a16 or int8_w8a16 by bits;
# its block_shape [0, group_size] has a zero, so the name carries no block_shape.
WNA16_DTYPES = {4: "int4_w4a16", 8: "int8_w8a16"}
# hf_quant_config.json (ModelOpt) quant_algo -> the method SGLang picks for it
MODELOPT_ALGOS = {"FP8": "modelopt_fp8"}
# Serving args that change the tuned file's name or shape (the real flag names and aliases of 0.5.23).
EP_FLAGS = ("--ep-size", "--expert-parallel-size", "--ep")
FUSION_FLAG = "--disable-shared-experts-fusion"
QUANT_FLAG = "--quantization"


def read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def model_config(model_path):
    """The checkpoint's config.json as a dict, None when it is missing or unreadable."""
    return read_json(os.path.join(model_path, "config.json"))


def num_experts(config):
    """The routed-expert count the HF config declares (top level or a nested section), 0 for none."""
    if not isinstance(config, dict):
        return 0
    for section in (config,) + tuple(config.get(name) for name in NESTED_EXPERT_SECTIONS):
        if not isinstance(section, dict):
            continue
        for key in MOE_EXPERT_KEYS:
            try:
                count = int(section.get(key) or 0)
            except (TypeError, ValueError):
                continue
            if count > 1:
                return count
    return 0


def is_moe_model(config):
    """True/False from the HF config, None when there is no config to read."""
    if config is None:
        return None
    return num_experts(config) > 1


def serving_moe_args(extra_args):
    """{ep_size, disable_shared_experts_fusion, quantization} as the serving args set them (exact flags)."""
    out = {"ep_size": 1, "disable_shared_experts_fusion": False, "quantization": None}
    args = list(extra_args or ())
    index = 0
    while index < len(args):
        arg = args[index]
        name, has_value, value = arg.partition("=")
        if not has_value and index + 1 < len(args):
            value = args[index + 1]
        if name in EP_FLAGS:
            try:
                out["ep_size"] = int(value)
            except ValueError:
                raise ValueError("extra server argument %s has no integer value (%r)" % (name, value))
        elif name == QUANT_FLAG:
            out["quantization"] = value
        elif arg == FUSION_FLAG:
            out["disable_shared_experts_fusion"] = True
        index += 1
    return out


def checkpoint_quant(model_path, config, quantization=None):
    """How SGLang quantizes the checkpoint's experts: {method, source, dtype, per_channel_quant, block_shape}.

    ``dtype`` is the lookup's dtype selector (None: no ``dtype=`` in the name). Raises ValueError for a
    method whose fused-MoE config name is not known here.
    """
    qconf = (config or {}).get("quantization_config")
    qconf = qconf if isinstance(qconf, dict) else {}
    method, source = None, None
    if quantization:
        method, source = str(quantization).lower(), "serving arg --quantization %s" % quantization
    elif qconf.get("quant_method"):
        method = str(qconf["quant_method"]).lower()
        source = "config.json quantization_config.quant_method %s" % method
    else:
        hf_quant = read_json(os.path.join(model_path, "hf_quant_config.json"))
        algo = ((hf_quant or {}).get("quantization") or {}).get("quant_algo")
        if algo:
            method = MODELOPT_ALGOS.get(str(algo).upper(), "modelopt:%s" % algo)
            source = "hf_quant_config.json quantization.quant_algo %s" % algo
    info = {"method": method, "source": source or "no quantization_config: unquantized weights",
            "dtype": None, "per_channel_quant": False, "block_shape": None}
    if method is None:
        dtype = (config or {}).get("torch_dtype") or (config or {}).get("dtype")
        info["dtype"] = "float32" if dtype == "float32" else None  # get_config_dtype_str: torch.float -> float32
        return info
    if method == "moe_wna16":
        bits = qconf.get("bits") or qconf.get("w_bit")
        try:
            info["dtype"] = WNA16_DTYPES[int(bits)]
        except (KeyError, TypeError, ValueError):
            raise ValueError("moe_wna16 with %r bits has no fused-MoE config name (4 or 8 bits only)" % bits)
        return info
    if method not in QUANT_METHODS:
        raise ValueError(
            "the checkpoint's experts are quantized with %r (%s), whose fused-MoE Triton config name is not "
            "known to moe_tune; pass the tuner dtype SGLang looks up for it with --moe-dtype (prime_moe_dtype), "
            "or skip moe_tune if that method does not run the Triton fused-MoE kernel" % (method, info["source"]))
    info["dtype"], info["per_channel_quant"], blocked = QUANT_METHODS[method]
    block = qconf.get("weight_block_size") if blocked else None
    if isinstance(block, list) and len(block) == 2 and all(block):
        info["block_shape"] = [int(b) for b in block]
    return info


def tuner_plan(model_path, config, extra_args, moe_dtype="auto"):
    """The tuner inputs that make its file the one the server reads, or raise ValueError (bad input).

    ``moe_dtype`` "auto" follows the checkpoint; an explicit value must agree with it (it may only name the
    dtype of a quantization method not known here).
    """
    serving = serving_moe_args(extra_args)
    try:
        quant = checkpoint_quant(model_path, config, serving["quantization"])
    except ValueError:
        if moe_dtype in (None, "auto"):
            raise
        quant = {"method": "unknown", "source": "--moe-dtype %s" % moe_dtype, "dtype": moe_dtype,
                 "per_channel_quant": False, "block_shape": None}
    wanted = quant["dtype"] if quant["dtype"] != "float32" else None
    if moe_dtype not in (None, "auto") and moe_dtype != wanted:
        raise ValueError(
            "--moe-dtype %s would make the tuner write a file SGLang never reads: for this checkpoint (%s) the "
            "server looks up %s; leave the MoE dtype at auto" % (
                moe_dtype, quant["source"], "dtype=%s" % wanted if wanted else "a name without dtype="))
    down = quant["dtype"] in (None, "float32", "fp8_w8a8") and not quant["per_channel_quant"]
    return {
        "dtype": quant["dtype"],
        "tuner_dtype": wanted or "auto",
        "per_channel_quant": quant["per_channel_quant"],
        "block_shape": quant["block_shape"],
        "quant_method": quant["method"],
        "quant_source": quant["source"],
        "ep_size": serving["ep_size"],
        "disable_shared_experts_fusion": serving["disable_shared_experts_fusion"],
        "tune_down": down,
        "down_reason": None if down else (
            "tune_down_moe.py names its file only for unquantized or fp8_w8a8 weights without per-channel "
            "quantization (use_fp8_w8a8 = args.dtype == 'fp8_w8a8'); for %s%s SGLang reuses the tuned "
            "up-projection config for the down projection (without TMA)" % (
                quant["dtype"], ", per_channel_quant" if quant["per_channel_quant"] else "")),
    }


def name_selectors(plan):
    """The parts of the config file name the plan fixes: ',dtype=..', ',block_shape=[..]', ',per_channel_quant=True'."""
    out = ""
    if plan["dtype"]:
        out += ",dtype=%s" % plan["dtype"]
    if plan["block_shape"]:
        out += ",block_shape=[%d, %d]" % tuple(plan["block_shape"])
    if plan["per_channel_quant"]:
        out += ",per_channel_quant=True"
    return out


def file_matches_plan(name, plan, down=False):
    """True when a tuner output's file name is the one SGLang's lookup builds for this plan."""
    suffix = name_selectors(plan) + ("_down" if down else "") + ".json"
    if not name.endswith(suffix):
        return False
    head = name[:-len(suffix)]
    return head.startswith("E=") and ",device_name=" in head and ",dtype=" not in head and ",block_shape" not in head


def tuner_argv(python, tuner, model, tp, plan, batch_size="B"):
    """The main tuner's argv for one batch size."""
    argv = [python, tuner, "--model", model, "--tp-size", str(tp), "--dtype", plan["tuner_dtype"]]
    if plan["per_channel_quant"]:
        argv.append("--per-channel-quant")
    if plan["ep_size"] != 1:
        argv += ["--ep-size", str(plan["ep_size"])]
    if plan["disable_shared_experts_fusion"]:
        argv.append(FUSION_FLAG)
    return argv + ["--batch-size", str(batch_size), "--tune"]


def down_tuner_argv(python, down_tuner, model, tp, plan, gate_up_config, out_dir, batch_size="B"):
    """tune_down_moe.py's argv for one batch size (its --dtype defaults to fp8_w8a8, so it is always given)."""
    argv = [python, down_tuner, "--model", model, "--tp-size", str(tp), "--ep-size", str(plan["ep_size"]),
            "--dtype", plan["tuner_dtype"], "--gate-up-config", gate_up_config, "--batch-sizes", str(batch_size),
            "--out-dir", out_dir]
    if plan["disable_shared_experts_fusion"]:
        argv.append(FUSION_FLAG)
    return argv


def down_tuner_path(tuner):
    """tune_down_moe.py beside the main tuner."""
    return os.path.join(os.path.dirname(tuner), DOWN_TUNER_NAME)


def triton_version_dir(triton_version):
    """The configs/triton_<X_Y_Z> directory to install tuned files in, and a note when it is not SGLang's exact name.

    SGLang reads configs/triton_<__version__ with dots as underscores> first, and on a miss sorts every
    configs/triton_* directory by ``tuple(int(x) for x in v.split("."))``: a directory named after a version
    with a local suffix (3.5.0+git...) makes that sort raise ValueError, i.e. every later miss crashes the
    server. The suffix is therefore dropped; SGLang reaches the files through its fallback to triton <X.Y.Z>.
    """
    public = triton_version.split("+", 1)[0]
    name = "triton_" + public.replace(".", "_")
    if public == triton_version:
        return name, None
    return name, ("triton %s has a local version suffix: SGLang's lookup cannot sort a configs/triton_%s "
                  "directory (it would crash on the next miss), so the tuned files go to %s, which SGLang "
                  "reads through its fallback (warning 'Fallback to triton version %s ...')"
                  % (triton_version, triton_version.replace(".", "_"), name, public))


def version_key(dir_name):
    """The sort key SGLang's fallback gives a configs/triton_<X_Y_Z> directory (ValueError for a local suffix)."""
    return tuple(int(x) for x in dir_name[len("triton_"):].split("_"))


def module_missing(python, module, env, timeout=60):
    """None when ``python`` finds ``module``; else why not (one line)."""
    code = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(%r) else 3)" % module
    try:
        proc = subprocess.Popen([python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                                stdin=subprocess.DEVNULL, env=env, close_fds=True)
    except OSError as exc:
        return "%s could not be run: %s" % (python, exc)
    try:
        _out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return "%s did not answer within %d s whether it can import %s" % (python, timeout, module)
    if proc.returncode == 0:
        return None
    if proc.returncode == 3:
        return "%s cannot import %s" % (python, module)
    return "%s failed looking for %s: %s" % (python, module, err.decode("utf-8", "replace").strip()[-300:])

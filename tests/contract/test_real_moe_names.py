"""Contract tier: the MoE tuner argv moe_tune builds against the REAL sglang 0.5.23 config lookup.

For the stand-in test models (tests/standins/models: bf16, FP8-block, W8A8-int8), the tuner argv from
`python3 -m sglang_prep argv moe_tune` must make the tuner write exactly the file name the real server looks
up: the real quantization config and fused-MoE method of each checkpoint give the server's dtype
(get_config_dtype_str) and name (get_config_file_name), in the contract venv (tests/contract/moe_name_probe.py).
A missing venv is a failure, not a skip.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from contract_probe import REPO, VENV_PYTHON, clean_env, require_venv, runtime_argv

MODELS = REPO / "tests" / "standins" / "models"
PROBE = Path(__file__).with_name("moe_name_probe.py")
RESULT_MARK = "MOE-NAME-PROBE-RESULT "
TEST_MODELS = ("tiny-moe", "tiny-moe-fp8-block", "tiny-moe-int8")
EXPECTED_DTYPE = {"tiny-moe": None, "tiny-moe-fp8-block": "fp8_w8a8", "tiny-moe-int8": "int8_w8a8"}


def tuner_argv(model):
    return runtime_argv("moe_tune", "--model", model, "--tp", "1")


@pytest.fixture(scope="module")
def names(tmp_path_factory):
    require_venv()
    items = [{"model": str(MODELS / name), "tuner_argv": tuner_argv(MODELS / name)} for name in TEST_MODELS]
    request = {"device_name": "NVIDIA H200", "E": 8, "N": 256, "items": items}
    cwd = tmp_path_factory.mktemp("moe-names")
    proc = subprocess.run([str(VENV_PYTHON), str(PROBE)], input=json.dumps(request), capture_output=True, text=True,
                          env=clean_env(SGLANG_CACHE_DIR=str(cwd)), timeout=600, cwd=str(cwd))
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    assert proc.returncode == 0 and lines, "moe name probe failed (rc=%s):\n%s" % (proc.returncode, proc.stderr[-4000:])
    return dict((os.path.basename(r["model"]), r) for r in json.loads(lines[-1][len(RESULT_MARK):]))


@pytest.mark.parametrize("model", TEST_MODELS)
def test_tuner_dtype_is_the_real_lookup_dtype(names, model):
    result = names[model]
    assert result["server_dtype"] == EXPECTED_DTYPE[model]  # the real quant method's dtype, as the issue states
    assert result["tuner_dtype_arg"] == (result["server_dtype"] or "auto")


@pytest.mark.parametrize("model", TEST_MODELS)
def test_tuner_writes_the_file_the_real_server_looks_up(names, model):
    result = names[model]
    assert result["tuner_name"] == result["server_name"]
    assert result["server_down_name"] == result["server_name"][:-len(".json")] + "_down.json"


def test_the_names_carry_the_quantization(names):
    assert names["tiny-moe-fp8-block"]["server_name"] == (
        "E=8,N=256,device_name=NVIDIA_H200,dtype=fp8_w8a8,block_shape=[128, 128].json")
    assert names["tiny-moe-int8"]["server_name"] == (
        "E=8,N=256,device_name=NVIDIA_H200,dtype=int8_w8a8,per_channel_quant=True.json")
    assert names["tiny-moe"]["server_name"] == "E=8,N=256,device_name=NVIDIA_H200.json"

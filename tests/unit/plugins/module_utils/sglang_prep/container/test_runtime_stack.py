"""The pinned stack: the image recipe's default base is the SGLang release the tables were checked against, and the
plan names every probed version that differs from contract.FIDELITY_STACK (a warning, or stack_unpinned on request).
"""

import json
import os
import re
import subprocess
import sys

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import stack
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError
from unit_support.paths import COLLECTION, RUNTIME
from unit_support.runtime import make_plan

DOCKERFILE = os.path.join(COLLECTION, "images", "Dockerfile")
PINNED = {"sglang_version": "0.5.23", "torch_version": "2.14.1+cu130", "triton_version": "3.8.0",
          "flashinfer_version": "0.7.2", "deep_gemm_version": "0.2.3.post2"}


class Facts(dict):
    """What a Probe answers (get)."""


def test_the_image_recipe_builds_on_the_pinned_sglang_release():
    with open(DOCKERFILE) as handle:
        text = handle.read()
    [default] = re.findall(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert default == contract.SGLANG_BASE_IMAGE == "lmsysorg/sglang:v0.5.23-cu130"
    assert ":latest" not in default


def test_a_pinned_stack_has_no_difference_and_a_local_build_label_is_no_difference():
    assert stack.differences(PINNED) == []
    assert stack.check(Facts(PINNED)) == []


def test_every_differing_version_is_named_by_default_and_refused_on_request():
    facts = dict(PINNED, sglang_version="0.5.24", triton_version="3.6.0", deep_gemm_version=None)
    diffs = stack.differences(facts)
    assert diffs == [{"package": "sglang", "pinned": "0.5.23", "found": "0.5.24"},
                     {"package": "triton", "pinned": "3.8.0", "found": "3.6.0"},
                     {"package": "deep_gemm", "pinned": "0.2.3.post2", "found": None}]
    [warning] = stack.check(Facts(facts))
    assert "sglang 0.5.24 (checked against 0.5.23)" in warning and "triton 3.6.0 (checked against 3.8.0)" in warning
    assert "deep_gemm not found (checked against 0.2.3.post2)" in warning and "torch" not in warning
    with pytest.raises(PrepError) as caught:
        stack.check(Facts(facts), require=True)
    assert caught.value.error_type == "stack_unpinned" and "lmsysorg/sglang:v0.5.23-cu130" in caught.value.message
    assert caught.value.details["differences"] == diffs


def test_the_plan_warns_about_the_stand_in_stack_and_refuses_it_when_asked(run):
    """The stand-in image's stack (triton 3.4.0, no torch) is not the pinned one."""
    out = make_plan(run)
    [warning] = [w for w in out["warnings"] if "priming tables were checked against" in w]
    assert "triton 3.4.0 (checked against 3.8.0)" in warning and "torch not found" in warning
    with pytest.raises(PrepError) as caught:
        make_plan(run, require_pinned_stack=True)
    assert caught.value.error_type == "stack_unpinned"
    env = dict(run.env, PYTHONPATH=RUNTIME + os.pathsep + run.env["PYTHONPATH"])
    cli = subprocess.run([sys.executable, "-m", "sglang_prep", "prime", "--model", run.model, "--pointer", run.pointer,
                          "--port", str(run.port), "--require-pinned-stack"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=120)
    assert cli.returncode == 1, cli.stderr
    result = json.loads(cli.stdout.strip().splitlines()[-1][len(contract.RESULT_PREFIX):])
    assert result["error_type"] == "stack_unpinned" and "triton 3.4.0" in result["message"]
    assert not os.path.exists(run.p(contract.signature_path("deep_gemm", run.model)))  # nothing ran

"""The priming state as metrics, end to end: init and a stage write the node_exporter textfile, node_exporter
serves it, and the container's own Prometheus has the series (with the run's run_id label).

Also the shipped alert rules: `promtool check rules` and `promtool test rules` on
examples/prometheus/, and `promtool check metrics` on the textfile a real stage wrote. promtool is the one
of the test image (the Debian prometheus package), run with `docker run`, so nothing is installed here.
"""

import json
import os
import subprocess

import pytest

import init_harness as h

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract

RULES_DIR = os.path.join(h.REPO, "collections", "ansible_collections", "sglang", "prep", "examples", "prometheus")
FAST = {"SGLANG_STANDIN_START_DELAY_S": "0.05", "SGLANG_STANDIN_COMPILE_S": "0.01"}
MODEL = "/models/tiny-moe-fp8-block"  # FP8 block-quantized: the deep_gemm stage has work


@pytest.fixture(scope="module")
def box():
    with h.model_container("tiny-moe-fp8-block", FAST) as container:
        _ptr, manifest, _elapsed = container.wait_pointer()
        container.run_id = manifest["container_run_id"]
        yield container


def promtool(*args, stdin=None, mounts=()):
    argv = ["run", "--rm", "-i", "--entrypoint", "promtool"]
    for source, target in mounts:
        argv += ["-v", "%s:%s:ro" % (source, target)]
    return subprocess.run(["docker"] + argv + [h.IMAGE] + list(args), input=stdin, capture_output=True, text=True,
                          timeout=120, check=False)


def test_init_publishes_the_runs_metrics_before_any_stage(box):
    path = box.root.path("telemetry", "metrics", contract.METRICS_NAME)
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    for stage in contract.STAGE_ORDER:
        assert 'sglang_prep_stage_status{stage="%s",model="",status="not_run"} 1' % stage in text
    assert os.stat(path).st_uid == h.TEST_UID, "written by devuser, never by root"
    found = box.series('sglang_prep_cache_bytes{job="node",run_id="%s"}' % box.run_id)
    assert sorted(item["metric"]["cache"] for item in found) == sorted(contract.CACHES)


def test_a_stage_shows_up_in_the_containers_prometheus(box):
    proc = box.exec("python3", "-m", "sglang_prep", "stage", "deep_gemm", "--model", MODEL, "--disk-headroom-mb", "1",
                    timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1][len(contract.RESULT_PREFIX):])
    assert result["status"] == "ok", result
    labels = 'stage="deep_gemm",model="tiny-moe-fp8-block",run_id="%s",job="node"' % box.run_id
    status = box.series('sglang_prep_stage_status{%s,status="ok"} == 1' % labels)
    assert status[0]["metric"]["instance"].endswith(":9100")
    assert float(box.series("sglang_prep_stage_signature_match{%s}" % labels)[0]["value"][1]) == 1
    assert float(box.series("sglang_prep_stage_duration_seconds{%s}" % labels)[0]["value"][1]) > 0
    assert float(box.series('sglang_prep_cache_bytes{cache="deep_gemm",run_id="%s"} > 0' % box.run_id)[0]["value"][1]) > 0
    # the textfile a real stage wrote passes promtool's own lint
    with open(box.root.path("telemetry", "metrics", contract.METRICS_NAME), encoding="utf-8") as handle:
        lint = promtool("check", "metrics", stdin=handle.read())
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_shipped_alert_rules_are_valid():
    checked = promtool("check", "rules", "/rules/sglang-prep.rules.yml", mounts=[(RULES_DIR, "/rules")])
    assert checked.returncode == 0 and "SUCCESS: 7 rules found" in checked.stdout, checked.stdout + checked.stderr


def test_the_shipped_alert_rules_pass_their_unit_tests():
    tested = promtool("test", "rules", "/rules/sglang-prep.rules.test.yml", mounts=[(RULES_DIR, "/rules")])
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr

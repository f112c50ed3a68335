"""The priming state as Prometheus metrics (container/metrics.py): the node_exporter textfile.

The text is checked with a strict parser of the text exposition format (prometheus_client is not in the
virtualenv): one HELP and one TYPE line per family before its samples, valid metric and label names,
escaped label values, no duplicate series, numeric values. promtool's own lint runs in
tests/integration/test_prometheus_rules.py. The stages run on the fake container run of test_runtime_engine.
"""

import datetime
import os
import re
import time

import pytest


from unit_support.runtime import do_prime

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import __version__, contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import metrics, state

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def unescape(text):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], text)


def parse(text):
    """{family: {"type", "help", "samples": {frozenset(labels.items()): value}}}; AssertionError on any format error."""
    assert text.endswith("\n"), "the exposition ends with a newline"
    families = {}
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        where = "line %d: %r" % (number, line)
        assert line.strip(), "no blank lines: " + where
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _hash, kind, name, rest = (line.split(" ", 3) + [""])[:4]
            assert METRIC_NAME.match(name), where
            family = families.setdefault(name, {"type": None, "help": None, "samples": {}})
            assert not family["samples"], "HELP/TYPE after the samples of %s: %s" % (name, where)
            key = kind.lower()
            assert family[key] is None, "a second %s line: %s" % (kind, where)
            family[key] = rest
            if key == "type":
                assert rest in ("gauge", "counter", "untyped", "summary", "histogram"), where
            current = name
            continue
        assert not line.startswith("#"), "only HELP and TYPE comments: " + where
        match = SAMPLE.match(line)
        assert match, "not a sample: " + where
        assert match.group("name") == current, "a sample outside its family: " + where
        labels = {}
        raw = match.group("labels") or ""
        pos = 0
        while pos < len(raw):
            label = LABEL.match(raw, pos)
            assert label, "bad labels: " + where
            assert LABEL_NAME.match(label.group(1)) and label.group(1) not in labels, where
            labels[label.group(1)] = unescape(label.group(2))
            pos = label.end()
        float(match.group("value"))
        key = frozenset(labels.items())
        assert key not in families[current]["samples"], "a duplicate series: " + where
        families[current]["samples"][key] = float(match.group("value"))
    for name, family in families.items():
        assert family["type"] == "gauge" and family["help"], name
        assert name.startswith("sglang_prep_"), name
    return families


def value(families, name, **labels):
    return families[name]["samples"].get(frozenset(labels.items()))


def textfile(run):
    with open(os.path.join(run.tel, "metrics", contract.METRICS_NAME), encoding="utf-8") as handle:
        return handle.read()


def test_a_stage_writes_the_metrics_of_the_run_from_its_priming_state(run):
    before = time.time()
    result = run.stage("deep_gemm")
    assert result["status"] == "ok" and not [w for w in result["warnings"] if "metrics" in w], result["warnings"]
    families = parse(textfile(run))
    assert set(families) == {"sglang_prep_stage_status", "sglang_prep_stage_duration_seconds",
                             "sglang_prep_stage_last_success_timestamp_seconds", "sglang_prep_stage_signature_match",
                             "sglang_prep_cache_bytes", "sglang_prep_cache_files", "sglang_prep_info"}
    ((info_labels, info_value),) = families["sglang_prep_info"]["samples"].items()
    info = dict(info_labels)
    assert info_value == 1 and info["version"] == __version__ and info["model"]
    assert info["gpu"] and info["signature_group"], "the GPU and signature group of the stage's signature"
    # an enum: one series per status, 1 for the stage's own
    for status in state.ROW_STATUSES:
        assert value(families, "sglang_prep_stage_status", stage="deep_gemm", model="tiny-moe-fp8-block", status=status) == (
            1 if status == "ok" else 0)
    # every stage of the registry has its status; the ones this run has no record of are not_run, for no model yet
    for stage in contract.STAGE_ORDER[1:]:
        assert value(families, "sglang_prep_stage_status", stage=stage, model="", status="not_run") == 1
    assert value(families, "sglang_prep_stage_duration_seconds", stage="deep_gemm", model="tiny-moe-fp8-block") == pytest.approx(
        result["duration_s"])
    success = value(families, "sglang_prep_stage_last_success_timestamp_seconds", stage="deep_gemm", model="tiny-moe-fp8-block")
    assert before - 1 <= success <= time.time() + 1
    assert value(families, "sglang_prep_stage_signature_match", stage="deep_gemm", model="tiny-moe-fp8-block") == 1
    # an unknown answer is no series at all (never a made-up 0 or 1)
    assert value(families, "sglang_prep_stage_signature_match", stage="moe_tune", model="") is None
    assert value(families, "sglang_prep_cache_bytes", cache="deep_gemm") > 0
    assert value(families, "sglang_prep_cache_files", cache="deep_gemm") >= 1
    assert value(families, "sglang_prep_cache_bytes", cache="torchinductor") == 0
    assert sorted(dict(k)["cache"] for k in families["sglang_prep_cache_bytes"]["samples"]) == sorted(contract.CACHES)


def test_a_failed_job_says_which_stage_failed_and_what_was_not_primed(run):
    model = do_prime(run, env={"SGLANG_STANDIN_FAULT": "oom"}, stages=["moe_tune", "flashinfer", "inductor"])
    assert model["status"] == "error" and model["failed_stage"] == "flashinfer"
    families = parse(textfile(run))
    assert value(families, "sglang_prep_stage_status", stage="moe_tune", model="tiny-moe-fp8-block", status="ok") == 1
    assert value(families, "sglang_prep_stage_status", stage="flashinfer", model="tiny-moe-fp8-block", status="error") == 1
    assert value(families, "sglang_prep_stage_signature_match", stage="flashinfer", model="tiny-moe-fp8-block") == 0
    # the stage the job did not reach keeps its plan answer: it would run, so it is not primed
    assert value(families, "sglang_prep_stage_status", stage="inductor", model="tiny-moe-fp8-block", status="not_run") == 1
    assert value(families, "sglang_prep_stage_signature_match", stage="inductor", model="tiny-moe-fp8-block") == 0
    assert value(families, "sglang_prep_stage_last_success_timestamp_seconds", stage="inductor", model="tiny-moe-fp8-block") is None


def test_a_noop_in_a_new_run_keeps_the_time_its_cache_was_primed(run):
    assert run.stage("deep_gemm")["status"] == "ok"
    written_at = state.RunView(run.pointer).primed_at("deep_gemm", run.model)
    row = {"stage": "deep_gemm", "status": "not_run", "model": run.model, "primed_at": written_at}
    assert metrics.last_success(row) == metrics._epoch(written_at)  # pylint: disable=protected-access
    assert metrics.signature_match(row) is None


def test_rows_become_samples_with_escaped_labels_and_a_serve_check_only_when_one_exists():
    model_state = {
        "order": ["deep_gemm", "serve_check"],
        "stages": {
            "deep_gemm": {"status": "would_run", "model": '/models/odd"name\\x',
                          "reprime_reasons": [{"field": "mode", "old": None, "new": "rebuild"}], "duration_s": 0.5},
            "serve_check": {"status": "ok", "model": "/models/m", "zero_jit": False, "duration_s": 2,
                            "finished_at": "2026-11-29T16:07:40.250Z"},
        },
        "caches": {"caches": {"deep_gemm": {"size": 10, "count": 2}}},
    }
    text = metrics.render(model_state)
    families = parse(text)
    odd = contract.model_slug('/models/odd"name\\x')
    assert value(families, "sglang_prep_stage_status", stage="deep_gemm", model=odd, status="would_run") == 1
    # a rebuild alone is not drift
    assert value(families, "sglang_prep_stage_signature_match", stage="deep_gemm", model=odd) == 1
    assert value(families, "sglang_prep_serve_zero_jit", stage="serve_check", model="m") == 0
    assert value(families, "sglang_prep_stage_last_success_timestamp_seconds", stage="serve_check", model="m") == (
        datetime.datetime(2026, 11, 29, 16, 7, 40, 250000, tzinfo=datetime.timezone.utc).timestamp())
    assert "sglang_prep_serve_zero_jit" not in parse(metrics.render({"order": ["deep_gemm"],
                                                                      "stages": {"deep_gemm": {"status": "ok"}}}))
    assert metrics.escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert parse('x_total{a="a\\"b\\\\c\\nd"} 1\n'.replace("x_total", "# TYPE sglang_prep_x gauge\n# HELP sglang_prep_x h\nsglang_prep_x"))


def test_the_textfile_is_replaced_atomically_and_never_read_half_written(run, monkeypatch):
    run.stage("deep_gemm")
    seen = []
    real = os.replace

    def spy(src, dst):
        if dst.endswith(".prom"):
            seen.append(os.path.basename(src))
            assert parse(open(src, encoding="utf-8").read())  # complete before it is renamed into place
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    run.stage("deep_gemm")
    assert seen and all(not name.endswith(".prom") for name in seen), seen  # node_exporter reads only *.prom
    assert sorted(os.listdir(os.path.join(run.tel, "metrics"))) == [contract.METRICS_NAME]


def test_a_write_failure_is_a_warning_and_never_fails_the_stage(run):
    os.makedirs(os.path.join(run.tel, "metrics", contract.METRICS_NAME))  # a directory where the file goes
    result = run.stage("deep_gemm")
    assert result["status"] == "ok"
    assert [w for w in result["warnings"] if "metrics textfile" in w], result["warnings"]
    assert run.stage_json("deep_gemm")["status"] == "ok"


def test_check_mode_writes_no_metrics(run):
    assert run.stage("deep_gemm", mode="check")["status"] == "would_run"
    assert not os.path.exists(os.path.join(run.tel, "metrics"))

"""The shipped alert rules (examples/prometheus/): every alert has a promtool unit test that expects it to fire,
and the alert texts use only labels a central Prometheus has (the target's instance and job, and the labels the
sglang_prep_* and node_textfile_* series carry themselves): never the container Prometheus' run_id. promtool itself
runs the tests in tests/integration/test_metrics.py."""

import os
import re

import yaml

from unit_support.paths import REPO
RULES_DIR = os.path.join(REPO, "collections", "ansible_collections", "sglang", "prep", "examples", "prometheus")
CENTRAL_LABELS = {"instance", "job", "stage", "model", "status", "cache", "version", "image", "gpu", "signature_group"}


def load(name):
    with open(os.path.join(RULES_DIR, name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def alerts():
    return [rule for group in load("sglang-prep.rules.yml")["groups"] for rule in group["rules"] if "alert" in rule]


def test_every_alert_has_a_promtool_test_that_makes_it_fire():
    tests = load("sglang-prep.rules.test.yml")["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test") or [] if case["exp_alerts"]}
    assert sorted(rule["alert"] for rule in alerts() if rule["alert"] not in fired) == []


def test_alert_texts_use_only_labels_a_central_prometheus_has():
    for rule in alerts():
        used = set(re.findall(r"\$labels\.(\w+)", " ".join(rule["annotations"].values())))
        assert used <= CENTRAL_LABELS, (rule["alert"], sorted(used - CENTRAL_LABELS))


def test_staleness_and_absence_are_alerted():
    exprs = " ".join(rule["expr"] for rule in alerts())
    assert "absent(sglang_prep_info)" in exprs and "node_textfile_scrape_error" in exprs
    assert "sglang_prep_stage_last_success_timestamp_seconds" in exprs

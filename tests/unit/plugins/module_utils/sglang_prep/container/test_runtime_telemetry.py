"""Telemetry probe against a fake Prometheus API: only a sample scraped after the warm-up counts."""

import threading
import time
from urllib.parse import parse_qs

import pytest
from unit_support.prometheus_api import prometheus_api

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import telemetry_probe

RUN = "container-run-20260101T000000Z-00000001"


@pytest.fixture
def prom():
    """state: targets (scrape URLs) and samples [(labels, scrape time, value)]."""
    state = {"targets": ["http://127.0.0.1:30000/metrics"], "samples": [], "queries": []}

    def answer(url):
        if url.path == "/api/v1/targets":
            return {"activeTargets": [{"scrapeUrl": t} for t in state["targets"]], "droppedTargets": []}
        query = parse_qs(url.query)["query"][0]
        state["queries"].append(query)
        stamp = query.startswith("timestamp(")
        return {"resultType": "vector", "result": [
            {"metric": labels, "value": [time.time(), str(at if stamp else value)]}
            for labels, at, value in state["samples"] if labels["run_id"] in query]}

    with prometheus_api(answer) as url:
        state["url"] = url
        yield state


def test_a_fresh_sample_of_this_run_is_ok(prom):
    since = time.time()
    prom["samples"].append(({"run_id": RUN, "job": "sglang"}, since + 0.5, 12.0))
    out = telemetry_probe.prometheus(prom["url"], RUN, 30000, 2, since)
    assert out["ok"] is True and out["sample_count"] == 1 and out["value"] == 12.0
    assert 'run_id="%s"' % RUN in out["query"]


def test_a_sample_from_before_the_warm_up_does_not_count(prom):
    since = time.time()
    prom["samples"].append(({"run_id": RUN, "job": "sglang"}, since - 5, 12.0))  # the previous stage's server
    start = time.monotonic()
    out = telemetry_probe.prometheus(prom["url"], RUN, 30000, 1.0, since)
    assert out["ok"] is False and "scraped since the warm-up request" in out["error"]
    assert 0.5 <= time.monotonic() - start < 2.0  # waited up to the deadline, then gave up


def test_the_sample_is_waited_for(prom):
    since = time.time()
    threading.Timer(0.6, lambda: prom["samples"].append(({"run_id": RUN}, time.time(), 4.0))).start()
    out = telemetry_probe.prometheus(prom["url"], RUN, 30000, 5, since)
    assert out["ok"] is True and 0.5 <= out["waited_s"] < 2.0


def test_other_runs_and_missing_targets_and_no_prometheus(prom):
    since = time.time()
    prom["samples"].append(({"run_id": "container-run-other"}, since + 1, 99.0))
    assert telemetry_probe.prometheus(prom["url"], RUN, 30000, 0.3, since)["ok"] is False
    prom["targets"] = []
    out = telemetry_probe.prometheus(prom["url"], RUN, 30000, 0.3, since)
    assert out["ok"] is False and "no active scrape target on port 30000" in out["error"]
    gone = telemetry_probe.prometheus("http://127.0.0.1:9", RUN, 30000, 5, since)
    assert gone["ok"] is False and "not reachable" in gone["error"]
    none = telemetry_probe.prometheus(None, RUN, 30000, 5, since)
    assert "not running" in none["error"]
    assert telemetry_probe.prometheus_url({"telemetry_surfaces": {"prometheus": "http://127.0.0.1:9090/"}}) == \
        "http://127.0.0.1:9090"

"""The Grafana dashboard (examples/grafana/sglang-prep.json) against a real Prometheus: the container's own
Prometheus (the test image's Debian package) scrapes node_exporter, which reads the textfile of a host primed
here with every stage (the serve check included). Every panel's query, and the host variable's query, must
return series, with $instance at Grafana's "All" value."""

import json
import os

import pytest

import init_harness as h

DASHBOARD = os.path.join(h.REPO, "collections", "ansible_collections", "sglang", "prep", "examples", "grafana",
                         "sglang-prep.json")
FAST = {"SGLANG_STANDIN_START_DELAY_S": "0.05", "SGLANG_STANDIN_COMPILE_S": "0.01",
        "SGLANG_STANDIN_WARMUP_S": "0.05", "SGLANG_STANDIN_TUNER_S": "0.05"}
MODEL = "/models/tiny-moe-fp8-block"


def load_dashboard():
    with open(DASHBOARD, encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def primed():
    with h.model_container("tiny-moe-fp8-block", FAST) as box:
        box.wait_pointer()
        proc = box.exec("python3", "-m", "sglang_prep", "prime", "--model", MODEL, "--disk-headroom-mb", "1",
                        "--moe-batch-sizes", "1", timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        yield box


def panel_queries():
    return [(panel["title"], target["expr"]) for panel in load_dashboard()["panels"] for target in panel["targets"]]


def test_the_dashboard_covers_what_an_operator_asks():
    titles = " ".join(title for title, _expr in panel_queries()).lower()
    for topic in ("primed", "duration", "signature drift", "zero jit", "cache bytes", "fan-out", "sglang_prep_info"):
        assert topic in titles, topic


def test_every_panel_query_returns_series(primed):
    # the serve check's verdict must be on the page first: it is the last stage the prime wrote
    primed.series("sglang_prep_serve_zero_jit == 1")
    for title, expr in panel_queries():
        found = primed.series(expr.replace("$instance", ".*"))
        assert found, title
    variable = next(v for v in load_dashboard()["templating"]["list"] if v["name"] == "instance")
    assert variable["query"]["query"] == "label_values(sglang_prep_info, instance)"
    assert primed.series("sglang_prep_info")[0]["metric"]["instance"].endswith(":9100")


def test_the_primed_host_shows_primed_with_zero_jit(primed):
    primed_rows = primed.series('min by (instance, model) (sglang_prep_stage_signature_match{model!=""})')
    assert [float(row["value"][1]) for row in primed_rows] == [1.0]
    assert float(primed.series("min(sglang_prep_serve_zero_jit)")[0]["value"][1]) == 1.0

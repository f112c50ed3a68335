"""The container mode: caching leaves the SGLang servers out of the run's Prometheus configuration, a switch reloads
Prometheus (SIGHUP) and is proven by its loaded configuration, the warm-ups' Prometheus proof says why it was skipped,
and the plan and prime states carry the serve-spec hand-off."""

import json
import os
import signal

import pytest
import yaml

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import container_mode, prometheus_config
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import serve
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError
from unit_support.prometheus_api import prometheus_api
from unit_support.runtime import RUN_ID, do_prime, make_plan

RUN = "container-run-20260101T000000Z-00000001"


def job_names(text):
    return [job["job_name"] for job in yaml.safe_load(text)["scrape_configs"]]


def test_caching_mode_scrapes_only_the_exporters_and_names_its_mode():
    caching = prometheus_config.render(RUN, "127.0.0.1", ["node_exporter", "dcgm_exporter"], mode="caching")
    serving = prometheus_config.render(RUN, "127.0.0.1", ["node_exporter", "dcgm_exporter"])
    assert job_names(caching) == ["node", "dcgm"]
    assert job_names(serving) == ["node", "dcgm", "sglang"]  # the default is what every earlier run had
    assert prometheus_config.mode_of(caching) == "caching" and prometheus_config.mode_of(serving) == "serving"
    assert caching.startswith("# container mode: caching")
    # a configuration written before modes existed scrapes the servers; no configuration, no mode
    assert prometheus_config.mode_of("global:\n  scrape_interval: 5s\n") == "serving"
    assert prometheus_config.mode_of(None) is None
    with pytest.raises(ValueError):
        prometheus_config.render(RUN, "127.0.0.1", [], mode="idle")


def test_loaded_configuration_is_read_for_the_servers_job():
    # Prometheus marshals its configuration without comments and quotes: what /api/v1/status/config gives
    assert container_mode.scrapes_servers("scrape_configs:\n- job_name: node\n  honor_timestamps: true\n- job_name: sglang\n")
    assert not container_mode.scrapes_servers("scrape_configs:\n- job_name: node\n- job_name: sglang_other\n")


def _with_config(run, prometheus=None):
    """Give the fake run a Prometheus configuration (serving, as init writes it) and, optionally, a running
    Prometheus (pid, url) in its manifest."""
    manifest_path = os.path.join(run.tel, "container_runs", RUN_ID + ".json")
    with open(manifest_path) as handle:
        data = json.load(handle)
    path = os.path.join(run.tel, "prometheus", RUN_ID, "prometheus.yml")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as handle:
        handle.write(prometheus_config.render(RUN_ID, "127.0.0.1", ["node_exporter"]))
    data["storage"]["prometheus_config"] = path
    data["listen"] = "127.0.0.1"
    data["server_port"] = 30000
    data["services"] = {"node_exporter": {"status": "running"}}
    if prometheus:
        data["services"]["prometheus"] = {"status": "running", "pid": prometheus[0]}
        data["telemetry_surfaces"]["prometheus"] = prometheus[1]
    with open(manifest_path, "w") as handle:
        json.dump(data, handle)
    return path


def test_a_switch_without_prometheus_rewrites_the_configuration_and_a_second_changes_nothing(run):
    path = _with_config(run)
    would = container_mode.switch("caching", run.pointer, check=True)
    assert would["changed"] and would["status"] == "would_run" and would["previous"] == "serving"
    assert prometheus_config.mode_of(open(path).read()) == "serving"  # --check writes nothing
    done = container_mode.switch("caching", run.pointer)
    assert done["changed"] and not done["reloaded"] and "does not run" in done["message"]
    assert job_names(open(path).read()) == ["node"]
    again = container_mode.switch("caching", run.pointer)
    assert not again["changed"] and again["previous"] == "caching"
    with pytest.raises(PrepError) as caught:
        container_mode.switch("idle", run.pointer)
    assert caught.value.error_type == "bad_input"


@pytest.fixture
def fake_prometheus():
    """A Prometheus stand-in in this process: SIGHUP (to this pid) loads the configuration file named in ``state``
    unless ``state['deaf']``; /api/v1/status/config answers the loaded jobs, marshalled as Prometheus does."""
    state = {"loaded": "scrape_configs:\n- job_name: node\n- job_name: sglang\n", "path": None, "deaf": False, "hups": 0}

    def on_hup(_signum, _frame):
        state["hups"] += 1
        if not state["deaf"]:
            names = job_names(open(state["path"]).read())
            state["loaded"] = "scrape_configs:\n" + "".join("- job_name: %s\n  honor_labels: false\n" % n for n in names)

    previous = signal.signal(signal.SIGHUP, on_hup)
    try:
        with prometheus_api(lambda _url: {"yaml": state["loaded"]}) as url:
            state["url"] = url
            yield state
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_switch_reloads_prometheus_and_waits_until_it_loaded_the_mode(run, fake_prometheus):
    fake_prometheus["path"] = _with_config(run, prometheus=(os.getpid(), fake_prometheus["url"]))
    done = container_mode.switch("caching", run.pointer)
    assert done["changed"] and done["reloaded"] and fake_prometheus["hups"] == 1, done
    assert not container_mode.scrapes_servers(fake_prometheus["loaded"])
    back = container_mode.switch("serving", run.pointer)
    assert back["reloaded"] and container_mode.scrapes_servers(fake_prometheus["loaded"])
    assert container_mode.switch("serving", run.pointer)["changed"] is False and fake_prometheus["hups"] == 2


def test_a_prometheus_that_does_not_reload_is_telemetry_reload_failed(run, fake_prometheus):
    fake_prometheus["path"] = _with_config(run, prometheus=(os.getpid(), fake_prometheus["url"]))
    fake_prometheus["deaf"] = True
    with pytest.raises(PrepError) as caught:
        container_mode.switch("caching", run.pointer, timeout_s=0.3)
    assert caught.value.error_type == "telemetry_reload_failed"
    assert "still scrapes the SGLang servers" in caught.value.message
    # the file is rewritten, so the next container start applies it
    assert container_mode.current(json.load(open(os.path.join(run.tel, "container_runs", RUN_ID + ".json")))) == "caching"


def test_warmups_in_caching_mode_record_why_the_prometheus_proof_was_skipped(run):
    _with_config(run)
    container_mode.switch("caching", run.pointer)
    result = run.stage("flashinfer")
    assert result["status"] == "ok", result
    probe = result["telemetry_probe"]
    assert probe["skipped"] is True and probe["ok"] is None and probe["container_mode"] == "caching", probe
    assert "does not scrape the SGLang servers" in probe["reason"]
    assert "server_metrics" in probe
    assert "skipped: container mode caching" in run.stderr.getvalue()


def test_the_plan_and_prime_states_carry_the_serve_spec_hand_off_once_the_serve_check_passed(run):
    options, env = run.options({})
    before = serve.serving_keys(run.model, options, run.pointer, env=env)
    assert before["serving"] is None and "serve check has not passed" in before["serving_problem"]
    assert do_prime(run)["status"] in ("ok", "changed")
    keys = serve.serving_keys(run.model, options, run.pointer, env=env)
    assert keys["serving_problem"] is None
    assert keys["serving"] == serve.spec(run.model, options, env=env)  # one home: the serve-spec JSON itself
    assert make_plan(run)["to_run"] == []

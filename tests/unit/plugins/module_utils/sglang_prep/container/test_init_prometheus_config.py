"""The per-run Prometheus configuration: scrape jobs, targets, intervals, run_id labels."""


import pytest
import yaml


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import jaeger_config
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import prometheus_config

RUN = "container-run-20251010T183737Z-e37a089d"


def jobs(text):
    return {job["job_name"]: job for job in yaml.safe_load(text)["scrape_configs"]}


def test_jobs_targets_and_labels():
    config = yaml.safe_load(prometheus_config.render(RUN, "127.0.0.1", ["node_exporter", "dcgm_exporter"]))
    assert config["global"]["external_labels"] == {"run_id": RUN}
    by_name = {job["job_name"]: job for job in config["scrape_configs"]}
    assert list(by_name) == ["node", "dcgm", "sglang"]
    assert by_name["node"]["static_configs"] == [{"targets": ["127.0.0.1:9100"], "labels": {"run_id": RUN}}]
    assert by_name["dcgm"]["static_configs"] == [{"targets": ["127.0.0.1:9400"], "labels": {"run_id": RUN}}]
    assert by_name["sglang"]["static_configs"] == [{"targets": ["127.0.0.1:30000"], "labels": {"run_id": RUN}}]


def test_stage_servers_are_scraped_every_quarter_second():
    """Warm-up servers live for seconds, and each warm-up stage waits for the next scrape after its warm-up (its
    telemetry probe): a 15 s default interval would miss them entirely, and 1 s cost every stage half a second."""
    by_name = jobs(prometheus_config.render(RUN, "127.0.0.1", ["node_exporter"]))
    assert by_name["sglang"]["scrape_interval"] == "250ms"
    assert by_name["sglang"]["scrape_timeout"] == "250ms"
    assert by_name["node"]["scrape_interval"] == "5s"


def test_missing_exporter_has_no_job():
    assert list(jobs(prometheus_config.render(RUN, "127.0.0.1", ["node_exporter"]))) == ["node", "sglang"]


@pytest.mark.parametrize("listen,expected", [("0.0.0.0", "127.0.0.1:9100"), ("::", "127.0.0.1:9100"),
                                             ("10.1.2.3", "10.1.2.3:9100"), ("fd00::5", "[fd00::5]:9100")])
def test_targets_follow_the_listen_address(listen, expected):
    by_name = jobs(prometheus_config.render(RUN, listen, ["node_exporter"]))
    assert by_name["node"]["static_configs"][0]["targets"] == [expected]
    # stage servers bind 127.0.0.1 whatever the telemetry listeners do
    assert by_name["sglang"]["static_configs"][0]["targets"] == ["127.0.0.1:30000"]


def test_jaeger_v2_config_binds_listen_address_and_badger_under_the_run():
    text = jaeger_config.render_v2("/telemetry/jaeger/" + RUN, "127.0.0.1")
    config = yaml.safe_load(text)
    badger = config["extensions"]["jaeger_storage"]["backends"]["run_store"]["badger"]
    assert badger["directories"] == {"keys": "/telemetry/jaeger/%s/keys" % RUN, "values": "/telemetry/jaeger/%s/values" % RUN}
    assert badger["ephemeral"] is False
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "127.0.0.1:4317"
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "127.0.0.1:4318"
    assert config["extensions"]["jaeger_query"]["http"]["endpoint"] == "127.0.0.1:16686"
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] == "run_store"
    endpoints = [line for line in text.splitlines() if "endpoint:" in line]
    assert endpoints and all("127.0.0.1:" in line for line in endpoints)


def test_jaeger_v1_flags_and_badger_env():
    args, env = jaeger_config.v1_args_env("/telemetry/jaeger/" + RUN, "127.0.0.1")
    assert "--collector.otlp.grpc.host-port=127.0.0.1:4317" in args
    assert "--query.http-server.host-port=127.0.0.1:16686" in args
    assert env["SPAN_STORAGE_TYPE"] == "badger" and env["BADGER_EPHEMERAL"] == "false"
    assert env["BADGER_DIRECTORY_KEY"].startswith("/telemetry/jaeger/" + RUN)


def test_the_stage_server_port_is_scraped_where_the_servers_listen():
    """A non-default server port (SGLANG_PREP_SERVER_PORT) moves the sglang target; nothing else changes."""
    by_name = jobs(prometheus_config.render(RUN, "127.0.0.1", ["node_exporter"], server_port=31234))
    assert by_name["sglang"]["static_configs"] == [{"targets": ["127.0.0.1:31234"], "labels": {"run_id": RUN}}]
    assert by_name["node"]["static_configs"][0]["targets"] == ["127.0.0.1:9100"]
    assert jobs(prometheus_config.render(RUN, "127.0.0.1", []))["sglang"]["static_configs"][0]["targets"] == [
        "127.0.0.1:30000"]

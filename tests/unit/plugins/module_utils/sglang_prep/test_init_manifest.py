"""The run manifest built by the container init: schema, paths, surfaces, caches."""

import json

import pytest


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, manifest
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import services

RUN = "container-run-20251010T183737Z-e37a089d"
HOST = "/home/ubuntu/sglang-observability"
HOST_ROOTS = {"telemetry": HOST + "/telemetry", "profiles": HOST + "/profiles", "models": HOST + "/models",
              "huggingface": HOST + "/huggingface"}


def entries(statuses):
    found = {name: ("/usr/bin/" + name if status != "missing" else None) for name, status in statuses.items()}
    out = {}
    for name, status in statuses.items():
        svc = None
        if status != "missing":
            svc = services.Service(name, found[name], [found[name]], 123, "/telemetry/logs/%s.log" % RUN)
            svc.status = status
            svc.error = None if status == "running" else "exited with code 1 during start-up"
        out[name] = services.record(name, found, svc, "1.0", "127.0.0.1")
    return out


def build(statuses=None, host_roots=None, **kwargs):
    statuses = statuses or {"prometheus": "running", "node_exporter": "running", "dcgm_exporter": "running",
                            "jaeger": "missing", "nv_hostengine": "missing"}
    return manifest.build_manifest(
        RUN, "2025-10-10T18:37:37Z", "sglang-prep:test", "abc123", "gpu-host-1",
        {"name": "devuser", "uid": 4242, "gid": 4242}, entries(statuses), "127.0.0.1", "127.0.0.1",
        HOST_ROOTS if host_roots is None else host_roots, {"deep_gemm": {"exists": False}},
        services.storage(RUN), **kwargs)


def test_manifest_passes_the_reader_schema(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(build()))
    data = manifest.read_manifest(str(path))
    assert set(manifest.REQUIRED_FIELDS) <= set(data)
    assert data["schema_version"] == contract.SCHEMA_VERSION
    assert data["container_run_id"] == RUN and data["image"] == "sglang-prep:test" and data["git_revision"] == "abc123"


def test_container_and_host_paths():
    data = build()
    cpaths, hpaths = data["paths"]["container"], data["paths"]["host"]
    assert cpaths["manifest"] == "/telemetry/container_runs/%s.json" % RUN
    assert cpaths["log_file"] == "/telemetry/logs/%s.log" % RUN
    assert cpaths["pointer"] == "/telemetry/container_run_meta.env"
    assert hpaths["telemetry_root"] == HOST + "/telemetry"  # a root maps to itself, not "<root>/."
    assert hpaths["manifest"] == HOST + "/telemetry/container_runs/%s.json" % RUN
    assert hpaths["hf_root"] == HOST + "/huggingface"
    assert set(cpaths) == set(hpaths)
    assert data["storage"]["log_file"] == cpaths["log_file"]
    assert data["storage"]["prep_result"] == "/telemetry/container_runs/%s/prep_result.json" % RUN
    assert data["storage"]["prometheus_tsdb"] == "/telemetry/prometheus/%s/tsdb" % RUN


def test_host_paths_are_null_where_the_role_passed_none():
    data = build(host_roots={"telemetry": None, "profiles": HOST + "/profiles", "models": None, "huggingface": None})
    assert data["paths"]["host"]["manifest"] is None
    assert data["paths"]["host"]["models_root"] is None
    assert data["paths"]["host"]["profiles_root"] == HOST + "/profiles"
    assert data["caches"]["deep_gemm"]["host_path"] == HOST + "/profiles/deep_gemm"


def test_every_cache_is_listed_with_its_env_name():
    data = build()
    assert set(data["caches"]) == set(contract.CACHES)
    for name, (path, env) in contract.CACHES.items():
        assert data["caches"][name]["path"] == path
        assert data["caches"][name]["env"] == env
        assert data["caches"][name]["host_path"] == HOST + path


def test_surfaces_are_null_for_services_that_do_not_run():
    data = build({"prometheus": "running", "node_exporter": "failed", "dcgm_exporter": "missing",
                  "jaeger": "missing", "nv_hostengine": "missing"})
    surfaces = data["telemetry_surfaces"]
    assert surfaces["prometheus"] == "http://127.0.0.1:9090"
    assert surfaces["node_exporter"] is None and surfaces["dcgm_exporter"] is None
    assert surfaces["jaeger_ui"] is None and surfaces["jaeger_otlp_grpc"] is None
    assert surfaces["sglang_metrics"] == "http://127.0.0.1:30000/metrics"
    assert data["storage"]["jaeger_storage"] is None


def test_service_entries_tell_status_and_warnings():
    data = build({"prometheus": "running", "node_exporter": "failed", "dcgm_exporter": "missing",
                  "jaeger": "missing", "nv_hostengine": "missing"})
    svc = data["services"]
    assert svc["prometheus"]["status"] == "running" and svc["prometheus"]["pid"] == 123
    assert svc["prometheus"]["port"] == 9090 and svc["prometheus"]["version"] == "1.0"
    assert svc["prometheus"]["warnings"] == []
    assert svc["node_exporter"]["status"] == "failed" and "exited with code 1" in svc["node_exporter"]["warnings"][0]
    assert svc["dcgm_exporter"]["status"] == "missing" and svc["dcgm_exporter"]["pid"] is None
    assert "dcgm-exporter is not installed" in svc["dcgm_exporter"]["warnings"][0]
    assert svc["jaeger"]["ports"] == {"otlp_grpc": 4317, "otlp_http": 4318, "ui": 16686, "admin": 14269}
    assert svc["nv_hostengine"]["status"] == "missing" and svc["nv_hostengine"]["user"] == "root"


def test_manifest_is_plain_json():
    data = build(warnings=["w1"], init_info={"pid": 1})
    assert json.loads(json.dumps(data)) == data
    assert data["warnings"] == ["w1"] and data["init"] == {"pid": 1}


@pytest.mark.parametrize("container_path,expected", [
    ("/telemetry", HOST + "/telemetry"),
    ("/telemetry/logs/x.log", HOST + "/telemetry/logs/x.log"),
    ("/profiles/nv", HOST + "/profiles/nv"),
    ("/opt/elsewhere", None),
    ("/telemetryx/a", None),
])
def test_host_path_mapping(container_path, expected):
    assert manifest.host_path({"paths": {"host": {"telemetry_root": HOST + "/telemetry",
                                                  "profiles_root": HOST + "/profiles"}}}, container_path) == expected


def test_the_server_port_is_recorded_once_and_used_by_the_metrics_surface():
    assert build()["server_port"] == contract.SERVER_PORT
    data = build(server_port=31234)
    assert data["server_port"] == 31234
    assert data["telemetry_surfaces"]["sglang_metrics"] == "http://127.0.0.1:31234/metrics"

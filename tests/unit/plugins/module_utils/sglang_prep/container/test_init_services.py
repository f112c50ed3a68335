"""Telemetry services: commands, start as a new session, readiness, early exit, stop, versions."""

import json
import os
import sys
import textwrap
import time

import pytest


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import identity, services
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError
from harness import free_port

RUN = "container-run-20251010T183737Z-e37a089d"


@pytest.mark.parametrize("text,expected", [
    ("prometheus, version 2.42.0+ds (branch: debian/sid, revision: 2.42.0+ds-5+deb12u1)\n  build user: x\n", "2.42.0+ds"),
    ("node_exporter, version 1.5.0 (branch: debian/sid, revision: 1.5.0-1+b6)\n", "1.5.0"),
    ("dcgm-exporter version 3.3.5-3.4.0\n", "3.3.5-3.4.0"),
    ("jaeger version: v2.1.0\n", "2.1.0"),
    ("nv-hostengine build info: something\n", "nv-hostengine build info: something"),
    ("", None),
])
def test_version_from_first_line(text, expected):
    assert services.parse_version(text) == expected


def test_commands_bind_the_listen_address_and_use_per_run_storage():
    argv, _env = services.command("prometheus", "/usr/bin/prometheus", RUN, "127.0.0.1")
    assert "--config.file=/telemetry/prometheus/%s/prometheus.yml" % RUN in argv
    assert "--storage.tsdb.path=/telemetry/prometheus/%s/tsdb" % RUN in argv
    assert "--web.listen-address=127.0.0.1:9090" in argv
    argv, _env = services.command("node_exporter", "/usr/bin/prometheus-node-exporter", RUN, "0.0.0.0")
    assert "--web.listen-address=0.0.0.0:9100" in argv
    # the priming state's metrics: a directory devuser writes (the package default is root's)
    assert "--collector.textfile.directory=/telemetry/metrics" in argv
    argv, _env = services.command("dcgm_exporter", "/usr/local/bin/dcgm-exporter", RUN, "127.0.0.1")
    assert argv[1:] == ["-a", "127.0.0.1:9400"]
    argv, _env = services.command("jaeger", "/usr/local/bin/jaeger", RUN, "127.0.0.1")
    assert argv[1:] == ["--config", "/telemetry/jaeger/%s/config.yaml" % RUN]
    argv, env = services.command("jaeger", "/usr/local/bin/jaeger-all-in-one", RUN, "127.0.0.1")
    assert env["SPAN_STORAGE_TYPE"] == "badger"
    argv, _env = services.command("nv_hostengine", "/usr/bin/nv-hostengine", RUN, "127.0.0.1")
    assert all(not arg.startswith("/telemetry") for arg in argv)  # root service: nothing under a bind mount


def test_discover_finds_binaries_on_path(tmp_path):
    for name in ("prometheus", "jaeger-all-in-one"):
        path = tmp_path / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    found = services.discover(str(tmp_path))
    assert found["prometheus"] == str(tmp_path / "prometheus")
    assert found["jaeger"] == str(tmp_path / "jaeger-all-in-one")
    assert found["node_exporter"] is None and found["dcgm_exporter"] is None


# ---------------------------------------------------------------- real processes (as the current user)
def me():
    return identity.Devuser("devuser", os.getuid(), os.getgid(), "/home/devuser")


@pytest.fixture
def fake_service(monkeypatch, tmp_path):
    """A service spec named 'node_exporter' whose probe points at a free port; returns (port, log)."""
    port = free_port()
    monkeypatch.setenv(contract.ENV_TELEMETRY_PORTS, json.dumps({"node_exporter": port}))
    spec = services.SPEC_BY_NAME["node_exporter"]._replace(probe=("http", "/metrics"))
    monkeypatch.setitem(services.SPEC_BY_NAME, "node_exporter", spec)
    return port, str(tmp_path / "session.log")


def start_script(code, log):
    script = textwrap.dedent(code)
    return services.Service("node_exporter", sys.executable, [sys.executable, "-c", script],
                            services.spawn([sys.executable, "-c", script], me(), log, dict(os.environ)), log)


HTTP_SERVER = """
    import http.server, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a):
            pass
    print("serving", flush=True)
    http.server.HTTPServer(("127.0.0.1", %d), H).serve_forever()
"""


def test_ready_service_is_running_with_output_in_the_log(fake_service):
    port, log = fake_service
    svc = start_script(HTTP_SERVER % port, log)
    try:
        services.wait_ready([svc], "127.0.0.1", timeout_s=10)
        assert svc.status == "running" and svc.ready_s < 10
        assert os.getpgid(svc.pid) == svc.pid  # its own process group, so PID 1 can signal it whole
        assert "serving" in open(log).read()
    finally:
        assert services.stop([svc], grace_s=2) == []
    assert svc.exit_code is not None


def test_early_exit_is_detected_at_once_not_after_the_timeout(fake_service):
    _port, log = fake_service
    svc = start_script("import sys; print('bad flag'); sys.exit(3)", log)
    began = time.monotonic()
    services.wait_ready([svc], "127.0.0.1", timeout_s=20)
    assert time.monotonic() - began < 5
    assert svc.status == "failed" and svc.exit_code == 3
    assert "exited with code 3" in svc.error and log in svc.error
    assert "bad flag" in open(log).read()


def test_silent_service_fails_at_the_deadline_and_is_stopped(fake_service):
    _port, log = fake_service
    svc = start_script("import time; time.sleep(60)", log)
    began = time.monotonic()
    services.wait_ready([svc], "127.0.0.1", timeout_s=0.5)
    assert 0.5 <= time.monotonic() - began < 5
    assert svc.status == "failed" and "did not answer" in svc.error
    assert svc.exit_code is not None  # not left running


def test_stop_kills_what_ignores_sigterm_after_the_grace(fake_service):
    _port, log = fake_service
    svc = start_script("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
                       "time.sleep(60)", log)
    deadline = time.monotonic() + 5
    while "up" not in open(log).read() and time.monotonic() < deadline:
        time.sleep(0.02)
    began = time.monotonic()
    assert services.stop([svc], grace_s=0.3) == ["node_exporter"]
    assert time.monotonic() - began < 2
    assert svc.exit_code == -9 and services.describe_exit(svc.exit_code) == "signal SIGKILL"


def test_exec_failure_is_reported_not_hidden(tmp_path):
    with pytest.raises(PrepError) as err:
        services.spawn([str(tmp_path / "no-such-binary")], me(), str(tmp_path / "log"), {})
    assert "no-such-binary" in err.value.message


def test_versions_are_collected_concurrently(tmp_path):
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nsleep 0.5\necho 'slow, version 9.9.9 (x)'\n")
    slow.chmod(0o755)
    found = {"prometheus": str(slow), "node_exporter": str(slow), "dcgm_exporter": str(slow), "jaeger": None}
    began = time.monotonic()
    versions = services.collect_versions(services.start_version_probes(found, me(), dict(os.environ)))
    assert versions == {"prometheus": "9.9.9", "node_exporter": "9.9.9", "dcgm_exporter": "9.9.9"}
    assert time.monotonic() - began < 1.4  # three 0.5 s probes side by side, not one after another


def test_the_port_variables_move_every_service(monkeypatch):
    monkeypatch.setenv(contract.ENV_TELEMETRY_PORTS, json.dumps({"node_exporter": 9101, "prometheus": 9091,
                                                                 "dcgm_exporter": 9401, "nv_hostengine": 5556}))
    assert "--web.listen-address=127.0.0.1:9101" in services.command("node_exporter", "/bin/ne", RUN, "127.0.0.1")[0]
    assert "--web.listen-address=127.0.0.1:9091" in services.command("prometheus", "/bin/p", RUN, "127.0.0.1")[0]
    assert services.command("dcgm_exporter", "/bin/d", RUN, "127.0.0.1")[0][-1] == "127.0.0.1:9401"
    assert services.command("nv_hostengine", "/bin/nv", RUN, "127.0.0.1")[0][4:6] == ["--port", "5556"]
    entry = services.record("node_exporter", {"node_exporter": "/bin/ne"}, None, None, "127.0.0.1")
    assert entry["port"] == 9101 and entry["ports"] == {"http": 9101}


def test_a_service_left_out_is_not_looked_for_and_recorded_disabled_without_a_warning():
    found = services.discover("/usr/bin:/bin", chosen=("prometheus",))
    assert found["node_exporter"] is None
    entry = services.record("node_exporter", found, None, None, "127.0.0.1", chosen=False)
    assert entry["status"] == "disabled" and entry["warnings"] == []


@pytest.mark.parametrize("env, words", [
    ({contract.ENV_TELEMETRY_SERVICES: "prometheus,node-exporter"}, "node-exporter, which is not a telemetry service"),
    ({contract.ENV_TELEMETRY_PORTS: "9101"}, "is not a JSON object of ports"),
    ({contract.ENV_TELEMETRY_PORTS: '{"node": 9101}'}, "'node', which is not a telemetry port"),
    ({contract.ENV_TELEMETRY_PORTS: '{"node_exporter": 70000}'}, "node_exporter=70000, which is not a TCP port"),
])
def test_bad_service_settings_are_bad_input(env, words):
    with pytest.raises(PrepError) as caught:
        contract.telemetry_services(env)
        contract.service_ports(env)
    assert caught.value.error_type == "bad_input" and words in caught.value.message


def test_the_default_is_every_service_on_its_usual_port():
    assert contract.telemetry_services({}) == contract.TELEMETRY_SERVICES
    assert contract.service_ports({}) == contract.SERVICE_PORTS
    assert contract.telemetry_services({contract.ENV_TELEMETRY_SERVICES: "none"}) == ()

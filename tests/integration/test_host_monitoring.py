"""Fitting the host's own monitoring: a real node_exporter of the host (the test image's Debian package, run in
the host's network namespace as the unprivileged user nobody, as a system exporter runs) listens on the default
port 9100 and reads a textfile directory that root owns and the host user's group may write.

1. A prime with the default services and host networking fails before anything starts: port_busy, naming
   node_exporter and prime_node_exporter_port; no container was created (no second copy that fails).
2. With node_exporter left out of prime_telemetry_services and prime_metrics_textfile_dir set, the prime
   succeeds, the container records node_exporter as disabled, and the host's own exporter serves the
   sglang_prep_* series of the stage just primed, from a file the host user owns with mode 0644.
"""

import os
import shutil
import stat
import tempfile
import urllib.request

import pytest

import role_harness as rh
from docker_util import docker, pinned_image, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates a host user and runs Docker as root, like molecule")

HOST_USER = "sglang-monitor-it"
HOST_UID = 48341
EXPORTER_PORT = 9100  # the host exporter's default, the one the container's copy would take
# the container's other services move off their defaults, so this test never meets another listener of this machine
MOVED_PORTS = {"prime_prometheus_port": 19090, "prime_dcgm_exporter_port": 19400, "prime_jaeger_otlp_grpc_port": 14317,
               "prime_jaeger_otlp_http_port": 14318, "prime_jaeger_ui_port": 16687, "prime_jaeger_admin_port": 14270,
               "prime_nv_hostengine_port": 15555, "prime_server_port": 30310}


def scrape(port=EXPORTER_PORT):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as response:
            return response.read().decode("utf-8")
    except OSError:
        return None


@pytest.fixture(scope="module")
def host():
    host = rh.RoleHost(HOST_USER, HOST_UID, "sglang-prep-monitor-it",
                       extra_vars=dict(MOVED_PORTS, prime_network_mode="host"))
    textfile_dir = tempfile.mkdtemp(prefix="sglang-prep-textfile-", dir="/var/tmp")
    # as a packaged node_exporter's textfile directory: root's, writable by a group the host user is in
    os.chown(textfile_dir, 0, host.user.pw_gid)
    os.chmod(textfile_dir, 0o2775)
    exporter = "sglang-prep-host-node-exporter-%d" % os.getpid()
    assert scrape() is None, "something on this machine already listens on 9100: the test needs it free"
    docker("run", "-d", "--rm", "--name", exporter, "--network", "host", "--user", "65534:65534",
           "-v", "%s:/textfile:ro" % textfile_dir, "--entrypoint", "prometheus-node-exporter", pinned_image(),
           "--web.listen-address=127.0.0.1:%d" % EXPORTER_PORT, "--collector.textfile.directory=/textfile",
           "--no-collector.systemd", "--log.level=warn")
    try:
        wait_for(scrape, 30, "the host's node_exporter to serve /metrics", poll_s=0.1)
        host.textfile_dir = textfile_dir
        yield host
    finally:
        docker("rm", "-f", exporter, check=False)
        host.remove()
        shutil.rmtree(textfile_dir, ignore_errors=True)


def test_a_taken_port_fails_the_host_before_a_second_copy_starts(host):
    play = host.prime()
    assert play.rc != 0 and play.recap["failed"] == 1, play
    assert "status: failed (port_busy)" in play.text, play
    assert "node_exporter: port 9100 is taken" in play.text, play
    assert "set prime_node_exporter_port to a free port, or leave node_exporter out of prime_telemetry_services" \
        in play.text, play
    assert host.container_state() is None, "no container was started"


def test_the_hosts_exporter_serves_the_priming_metrics(host):
    services = ["prometheus", "dcgm_exporter", "jaeger", "nv_hostengine"]
    play = host.prime(prime_telemetry_services=services, prime_metrics_textfile_dir=host.textfile_dir)
    assert play.rc == 0 and play.recap["failed"] == 0, play
    _run_id, manifest = host.run()
    assert manifest["services"]["node_exporter"]["status"] == "disabled"
    assert manifest["services"]["prometheus"]["port"] == MOVED_PORTS["prime_prometheus_port"]
    assert not [w for w in manifest["warnings"] if "node_exporter" in w], manifest["warnings"]
    textfile = os.path.join(host.textfile_dir, "sglang_prep.prom")
    info = os.stat(textfile)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (HOST_UID, 0o644), "the host user's, readable by the exporter"
    assert sorted(os.listdir(host.textfile_dir)) == ["sglang_prep.prom"], "no temporary file is left"
    wanted = 'sglang_prep_stage_status{model="%s",stage="deep_gemm",status="ok"} 1' % rh.MODEL_NAME
    text = wait_for(lambda: (scrape() or "") if wanted in (scrape() or "") else None, 30,
                    "the host's node_exporter to serve deep_gemm ok")
    assert "sglang_prep_info{" in text
    assert 'node_textfile_scrape_error 0' in text, "the exporter (user nobody) read the file"
    # nothing root-owned was left in the host user's tree
    for top, dirs, files in os.walk(host.root):
        for name in dirs + files:
            assert os.lstat(os.path.join(top, name)).st_uid != 0, os.path.join(top, name)

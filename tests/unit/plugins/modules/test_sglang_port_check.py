"""sglang_port_check: a port a real listener holds is busy (with the service and variable to change and the
process holding it), a free one is free; nothing changes."""

import json
import os
import socket

import pytest


from ansible.module_utils.testing import patch_module_args
from ansible_collections.sglang.prep.plugins.modules import sglang_port_check


def run(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            sglang_port_check.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture
def listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("0.0.0.0", 0))  # as a host's node_exporter binds :9100
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("listen", ["127.0.0.1", "0.0.0.0"])
def test_a_taken_port_is_busy_with_its_service_variable_and_holder(listener, capsys, listen):
    other = free_port()
    rc, out = run({"listen": listen, "ports": [
        {"service": "node_exporter", "port": listener, "variable": "prime_node_exporter_port"},
        {"service": "prometheus", "port": other, "variable": "prime_prometheus_port"}]}, capsys)
    assert rc == 0 and out["changed"] is False
    (busy,) = out["busy"]
    assert busy["service"] == "node_exporter" and busy["variable"] == "prime_node_exporter_port"
    assert busy["port"] == listener and "pid %d" % os.getpid() in busy["holders"]
    assert out["free"] == [{"service": "prometheus", "port": other, "variable": "prime_prometheus_port"}]

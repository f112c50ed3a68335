"""sglang_port_check: a port a real listener holds is busy (with the service and variable to change and the
process holding it), a free one is free; nothing changes. A table: module args in, result out."""

import os
import socket

import pytest

from ansible_collections.sglang.prep.plugins.modules import sglang_port_check
from unit_support.modules import Case, Has, cases


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


NODE_EXPORTER = {"service": "node_exporter", "port": "{taken}", "variable": "prime_node_exporter_port"}
PROMETHEUS = {"service": "prometheus", "port": "{free}", "variable": "prime_prometheus_port"}


@cases(*[
    Case("a taken port is busy with its service, variable and holder on %s" % listen,
         {"listen": listen, "ports": [NODE_EXPORTER, PROMETHEUS]},
         result={"changed": False, "busy": [dict(NODE_EXPORTER, holders=Has("pid {pid}"))], "free": [PROMETHEUS]})
    for listen in ("127.0.0.1", "0.0.0.0")
] + [
    Case("free ports are free", {"ports": [PROMETHEUS]}, result={"changed": False, "busy": [], "free": [PROMETHEUS]}),
])
def test_port_check(case, capsys, listener):
    case.check(sglang_port_check, capsys, taken=listener, free=free_port(), pid=os.getpid())

"""Filter sglang.prep.port_checks: each port of the chosen telemetry services, with its service and variable."""

from ansible_collections.sglang.prep.plugins.filter.port_checks import port_checks
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract


def test_every_port_of_each_chosen_service_with_the_variable_that_sets_it():
    checks = port_checks(["prometheus", "jaeger"], dict(contract.SERVICE_PORTS, prometheus="9091"))
    assert checks[0] == {"service": "prometheus", "port": 9091, "variable": "prime_prometheus_port"}
    assert [c["variable"] for c in checks[1:]] == ["prime_%s_port" % key for key in contract.SERVICE_PORT_KEYS["jaeger"]]


def test_an_unknown_service_has_no_ports_here():
    assert port_checks(["warp"], contract.SERVICE_PORTS) == []

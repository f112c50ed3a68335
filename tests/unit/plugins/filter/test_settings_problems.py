"""Filter sglang.prep.settings_problems: every role value that cannot work, one line naming variable, value, what works.

The end-to-end check (the role refuses with bad_input before any change) is tests/unit/roles/prime/test_prime_bad_input.py."""

import os

import pytest

from ansible_collections.sglang.prep.plugins.filter.settings_problems import settings_problems
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract

DEFAULTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "collections", "ansible_collections", "sglang",
                        "prep", "roles", "prime", "defaults", "main.yml")


def good():
    settings = {"prime_tp": 1, "prime_server_port": 30000, "prime_stage_timeout": 3600, "prime_stage_poll": 5,
                "prime_pointer_timeout": 120, "prime_lock_timeout": None, "prime_ready_timeout": None,
                "prime_disk_headroom_mb": None, "prime_moe_batch_sizes": [], "prime_stage_modes": {},
                "prime_stages": list(contract.STAGE_ORDER), "prime_extra_env": {}, "prime_stage_env": {},
                "prime_host_root": "", "prime_telemetry_services": list(contract.TELEMETRY_SERVICES),
                "prime_metrics_textfile_dir": "", "prime_env_file_src": "", "prime_registry_login": {}}
    settings.update(("prime_%s_port" % key, port) for key, port in contract.SERVICE_PORTS.items())
    return settings


def test_settings_that_work_have_no_problem():
    assert settings_problems(good()) == []


@pytest.mark.parametrize("change, line", [
    ({"prime_tp": "0"}, 'prime_tp="0": a tensor-parallel size of 1 or more'),
    ({"prime_server_port": 70000}, "prime_server_port=70000: a TCP port, 1 to 65535"),
    ({"prime_stage_poll": 0}, "prime_stage_poll=0: a number of seconds above 0"),
    ({"prime_ready_timeout": -1}, "prime_ready_timeout=-1: unset (null) or a number of seconds above 0"),
    ({"prime_disk_headroom_mb": -1}, "prime_disk_headroom_mb=-1: unset (null) or 0 MiB or more"),
    ({"prime_moe_batch_sizes": [8, True]}, "prime_moe_batch_sizes=[8, true]: batch sizes of 1 or more (empty: the runtime default)"),
    ({"prime_stage_modes": {"moe_tune": "often"}}, 'prime_stage_modes={"moe_tune": "often"}: each stage mapped to ensure or rebuild'),
    ({"prime_stages": []}, "prime_stages=[]: one or more of " + ", ".join(contract.STAGE_ORDER)),
    ({"prime_extra_env": {"X": 5}}, "prime_extra_env.X=5: a string (quote it in YAML)"),
    ({"prime_stage_env": {"HOME": "/root"}}, 'prime_stage_env.HOME="/root": not settable: the role and the runtime set HOME themselves'),
    ({"prime_host_root": "rel/dir"}, 'prime_host_root="rel/dir": empty ($HOME/sglang-observability of the host user) or an absolute path'),
    ({"prime_telemetry_services": ["warp"]}, 'prime_telemetry_services=["warp"]: names from %s (warp is not one)'
     % ", ".join(contract.TELEMETRY_SERVICES)),
    ({"prime_jaeger_ui_port": "http"}, 'prime_jaeger_ui_port="http": a TCP port, 1 to 65535'),
    ({"prime_env_file_src": "/nonexistent/env"}, 'prime_env_file_src="/nonexistent/env": not a file on the controller'),
    ({"prime_registry_login": {"registry": "r"}}, "prime_registry_login (keys registry): the keys registry, username and password"),
])
def test_each_value_that_cannot_work_is_named(change, line):
    settings = good()
    settings.update(change)
    problems = settings_problems(settings)
    assert len(problems) == 1 and problems[0].startswith(line), problems


def test_a_port_two_services_share_is_named_for_each():
    settings = dict(good(), prime_node_exporter_port=9090)
    assert settings_problems(settings) == [
        "prime_prometheus_port=9090: a port no other telemetry service (nor prime_server_port) uses",
        "prime_node_exporter_port=9090: a port no other telemetry service (nor prime_server_port) uses"]


def test_every_problem_is_listed_at_once():
    settings = dict(good(), prime_tp=0, prime_server_port=0, prime_host_root="x")
    assert len(settings_problems(settings)) == 3


def test_the_role_defaults_have_no_problem():
    """The defaults of roles/prime as shipped (templated ones rendered the way the role renders them) all work."""
    yaml = pytest.importorskip("yaml")
    with open(DEFAULTS) as handle:
        defaults = yaml.safe_load(handle)
    defaults["prime_stages"] = list(contract.STAGE_ORDER)
    defaults["prime_telemetry_services"] = list(contract.TELEMETRY_SERVICES)
    assert settings_problems(dict((k, v) for k, v in defaults.items() if not (isinstance(v, str) and "{{" in v))) == []

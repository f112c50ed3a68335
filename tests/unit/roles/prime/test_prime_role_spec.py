"""Role sglang.prep.prime: every default is documented in meta/argument_specs.yml, with the same value.

Ansible validates role arguments against argument_specs.yml before the role runs, so a default that
is missing there (or documented with another value) is a variable users cannot discover or trust.
"""

import os

import pytest
import yaml

from unit_support.paths import REPO

from ansible_collections.sglang.prep.plugins.lookup import contract as contract_lookup
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract

ROLE = os.path.join(REPO, "collections", "ansible_collections", "sglang", "prep", "roles", "prime")


def load(*parts):
    with open(os.path.join(ROLE, *parts)) as handle:
        return yaml.safe_load(handle)


DEFAULTS = load("defaults", "main.yml")
SPECS = load("meta", "argument_specs.yml")["argument_specs"]


@pytest.mark.parametrize("entry_point", sorted(SPECS))
def test_every_default_is_documented_in_every_entry_point(entry_point):
    options = SPECS[entry_point]["options"]
    assert sorted(set(DEFAULTS) - set(options)) == []


def test_every_documented_option_has_a_default_except_the_required_model():
    options = SPECS["main"]["options"]
    undocumented_defaults = sorted(set(options) - set(DEFAULTS))
    assert undocumented_defaults == ["prime_model"]
    assert options["prime_model"]["required"] is True


# Defaults taken from the runtime's contract (one home), documented in words instead of restated.
FROM_CONTRACT = {"prime_stages": "{{ lookup('sglang.prep.contract', 'STAGE_ORDER') }}",
                 "prime_telemetry_services": "{{ lookup('sglang.prep.contract', 'TELEMETRY_SERVICES') }}"}


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_documented_default_is_the_real_default(name):
    option = SPECS["main"]["options"][name]
    if name in FROM_CONTRACT:
        assert DEFAULTS[name] == FROM_CONTRACT[name] and "default" not in option
        assert "sglang.prep.contract" in " ".join(option["description"])
    elif DEFAULTS[name] is None:
        assert "default" not in option, "%s: unset defaults are documented without a default" % name
    else:
        assert option.get("default") == DEFAULTS[name]


def test_role_variables_carry_the_role_prefix():
    assert [name for name in DEFAULTS if not name.startswith("prime_")] == []


def test_stage_names_live_in_the_registry_only():
    """Adding a stage is a registry row and a runner: the role and the module restate no stage list."""
    stages = SPECS["main"]["options"]["prime_stages"]
    assert "choices" not in stages and "default" not in stages
    assert DEFAULTS["prime_stages"] == FROM_CONTRACT["prime_stages"]
    with open(os.path.join(ROLE, "tasks", "main.yml")) as handle:
        main = handle.read()
    assert not [stage for stage in contract.STAGE_ORDER if stage in main]
    from ansible_collections.sglang.prep.plugins.modules import sglang_stage
    doc = yaml.safe_load(sglang_stage.DOCUMENTATION)["options"]
    assert "choices" not in doc["stage"] and "choices" not in doc["stages"]
    assert DEFAULTS["prime_server_port"] == contract.SERVER_PORT
    assert DEFAULTS["prime_telemetry_listen"] == contract.DEFAULT_LISTEN


def test_the_contract_lookup_returns_the_contract_values():
    lookup = contract_lookup.LookupModule()
    assert lookup.run(["HOST_SUBDIRS", "STAGE_ORDER"]) == [dict(contract.HOST_SUBDIRS), list(contract.STAGE_ORDER)]
    with pytest.raises(Exception, match="no constant"):
        lookup.run(["NOT_A_CONSTANT"])
    with pytest.raises(Exception, match="no constant"):
        lookup.run(["cache_env"])  # functions are not constants


def test_every_variable_is_in_the_usage_guide():
    with open(os.path.join(ROLE, "..", "..", "docs", "usage.md")) as handle:
        guide = handle.read()
    assert [name for name in list(DEFAULTS) + ["prime_model"] if "| `%s` |" % name not in guide] == []


def test_every_telemetry_port_has_its_variable_with_the_contracts_default():
    assert {name[len("prime_"):-len("_port")]: DEFAULTS[name] for name in DEFAULTS
            if name.endswith("_port") and name != "prime_server_port"} == contract.SERVICE_PORTS
    for service, keys in contract.SERVICE_PORT_KEYS.items():
        assert service in contract.TELEMETRY_SERVICES and all(key in contract.SERVICE_PORTS for key in keys)

"""The collection's examples/inventory/fleet.example.yml stays usable: it parses, targets the group the playbooks target, and every
prime_* value it sets passes the prime role's argument spec (no root, no SSH needed)."""

import os

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.dataloader import DataLoader
from ansible.vars.manager import VariableManager

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTION = os.path.join(REPO, "collections", "ansible_collections", "sglang", "prep")
EXAMPLE = os.path.join(COLLECTION, "examples", "inventory", "fleet.example.yml")
ROLE_SPEC = os.path.join(COLLECTION, "roles", "prime", "meta", "argument_specs.yml")
FLEET_REPORT_SPEC = os.path.join(COLLECTION, "roles", "fleet_report", "meta", "argument_specs.yml")


def role_options(path):
    with open(path) as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    spec = {}
    for name, option in options.items():
        entry = {k: option[k] for k in ("type", "elements", "choices") if k in option}
        spec[name] = entry
    return spec


@pytest.fixture(scope="module")
def example_hosts():
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[EXAMPLE])
    variables = VariableManager(loader=loader, inventory=inventory)
    hosts = inventory.get_hosts("sglang_nodes")
    return {h.name: variables.get_vars(host=h, include_hostvars=False) for h in hosts}


def test_every_example_host_is_in_the_group_the_playbooks_target(example_hosts):
    assert len(example_hosts) >= 3
    for name, hostvars in example_hosts.items():
        assert hostvars.get("ansible_user"), name
        assert hostvars.get("ansible_user") != "root" or hostvars.get("prime_host_user"), (
            "%s logs in as root, so it must name the owner of the host directories (prime_host_user)" % name)


def test_example_values_pass_the_prime_role_argument_spec(example_hosts):
    spec = role_options(ROLE_SPEC)
    validator = ArgumentSpecValidator(spec)
    for name, hostvars in example_hosts.items():
        params = {k: v for k, v in hostvars.items() if k.startswith("prime_")}
        assert set(params) <= set(spec), (name, sorted(set(params) - set(spec)))
        result = validator.validate(params)
        assert not result.error_messages, (name, result.error_messages)


def test_fleet_report_spec_documents_every_default():
    with open(os.path.join(os.path.dirname(os.path.dirname(FLEET_REPORT_SPEC)), "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    assert set(defaults) == set(role_options(FLEET_REPORT_SPEC))

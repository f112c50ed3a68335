"""Every collection playbook fails, naming its host pattern and how to set it, when no host matches it.

Ansible alone prints "no hosts matched" and exits 0 (also with --check). These runs need no Docker and
no SSH: the check runs on the controller before any host work.
"""

import glob
import os
import subprocess
import sys

import pytest

from unit_support.paths import COLLECTIONS, REPO
PLAYBOOKS = os.path.join(COLLECTIONS, "ansible_collections", "sglang", "prep", "playbooks")
NAMES = sorted(os.path.basename(p)[:-len(".yml")] for p in glob.glob(os.path.join(PLAYBOOKS, "*.yml")))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


@pytest.fixture()
def run(tmp_path):
    """ansible-playbook in an empty directory, with only the collections path configured."""
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\ncollections_path = %s\nretry_files_enabled = False\n" % COLLECTIONS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(config), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))

    def _run(*argv):
        proc = subprocess.run([ANSIBLE_PLAYBOOK] + list(argv), cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=120, check=False)
        return proc.returncode, " ".join(proc.stdout.split())

    return _run


def inventory(tmp_path, text):
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    return str(path)


def test_every_collection_playbook_is_covered():
    assert NAMES == ["bundle_prune", "inspect", "preflight", "prime", "serve", "stop", "validate"]


@pytest.mark.parametrize("name", NAMES)
def test_empty_inventory_fails_naming_the_pattern_and_the_fix(run, name):
    code, out = run("-i", ",", "sglang.prep." + name, "--check")
    assert code != 0, out
    assert "sglang.prep.%s has no host to run on" % name in out, out
    assert "targets the host pattern 'sglang_nodes'" in out, out
    assert "no host of the inventory matches it" in out, out
    assert "-e sglang_prep_target=localhost" in out and "pass it with -i" in out, out


def test_no_inventory_at_all_fails_too(run):
    """Only the implicit localhost: the situation of 'ansible-playbook sglang.prep.prime --check'."""
    code, out = run("sglang.prep.prime", "--check")
    assert code != 0 and "sglang.prep.prime has no host to run on" in out, out


def test_an_inventory_without_the_group_fails(run, tmp_path):
    inv = inventory(tmp_path, "all:\n  hosts:\n    gpu-1: {ansible_host: 192.0.2.1}\n")
    code, out = run("-i", inv, "sglang.prep.validate", "-e", "model=/models/m")
    assert code != 0 and "no host of the inventory matches it" in out, out
    assert "UNREACHABLE" not in out, out  # no host was contacted


def test_the_message_names_a_pattern_given_with_sglang_prep_target(run):
    code, out = run("-i", ",", "sglang.prep.stop", "-e", "sglang_prep_target=gpu_fleet")
    assert code != 0 and "targets the host pattern 'gpu_fleet' (from sglang_prep_target)" in out, out


def test_a_limit_that_leaves_no_target_host_fails(run, tmp_path):
    inv = inventory(tmp_path, "all:\n  hosts:\n    other: {ansible_host: 192.0.2.1}\n"
                              "  children:\n    sglang_nodes:\n      hosts:\n        gpu-1: {ansible_host: 192.0.2.2}\n")
    code, out = run("-i", inv, "--limit", "other", "sglang.prep.stop", "--check")
    assert code != 0 and "--limit other leaves none of its 1 host(s)" in out, out


def test_tags_do_not_skip_the_check(run):
    code, out = run("-i", ",", "sglang.prep.inspect", "--tags", "some_tag")
    assert code != 0 and "has no host to run on" in out, out


def test_the_repo_wrapper_playbook_fails_the_same_way(run):
    code, out = run("-i", ",", os.path.join(REPO, "playbooks", "prime.yml"), "--check")
    assert code != 0 and "sglang.prep.prime has no host to run on" in out, out


def test_a_matching_host_passes_the_check(run, tmp_path):
    # --tags: only the check (tagged always) runs, so nothing touches the host
    inv = inventory(tmp_path, "all:\n  children:\n    sglang_nodes:\n      hosts:\n"
                              "        gpu-1: {ansible_host: 192.0.2.2}\n")
    code, out = run("-i", inv, "sglang.prep.stop", "--check", "--tags", "sglang_prep_nothing")
    assert code == 0, out
    assert "has no host to run on" not in out and "gpu-1 : ok=1" in out, out


def test_localhost_given_as_the_target_passes_the_check(run):
    code, out = run("-i", ",", "-e", "sglang_prep_target=localhost", "sglang.prep.stop", "--check", "--tags", "sglang_prep_nothing")
    assert code == 0 and "localhost : ok=1" in out, out


PRIME_NODE = ("all:\n  children:\n    sglang_nodes:\n      hosts:\n"
              "        gpu-1: {ansible_host: 192.0.2.2%s}\n")


@pytest.mark.parametrize("model", [None, ""])
def test_prime_without_a_model_asks_for_one_before_touching_the_host(run, tmp_path, model):
    inv = inventory(tmp_path, PRIME_NODE % "")
    code, out = run("-i", inv, "sglang.prep.prime", "--check", *(["-e", "model="] if model == "" else []))
    assert code != 0 and "Which model? Pass it as a path inside the container" in out, out
    assert "UNREACHABLE" not in out and "failed=1" in out, out


def test_prime_takes_prime_model_from_the_inventory_without_e_model(run, tmp_path):
    # --tags: the model check (tagged always) runs, the role's host work does not
    inv = inventory(tmp_path, PRIME_NODE % ", prime_model: /models/m")
    code, out = run("-i", inv, "sglang.prep.prime", "--check", "--tags", "sglang_prep_nothing")
    assert "Which model?" not in out, out
    assert code == 0 and "UNREACHABLE" not in out, out


@pytest.mark.parametrize("given, model", [((), "/models/inv"), (("-e", "model=/models/cli"), "/models/cli")])
def test_prime_e_model_wins_over_the_inventory_prime_model(run, tmp_path, given, model):
    # prime_report (printed by -v) carries the model the role primed for
    inv = inventory(tmp_path, PRIME_NODE % ", prime_model: /models/inv")
    code, out = run("-i", inv, "sglang.prep.prime", "--check", "--tags", "sglang_prep_nothing", "-v", *given)
    assert code == 0 and '"model": "%s"' % model in out, out
    assert '"model": "/models/%s"' % ("inv" if model == "/models/cli" else "cli") not in out, out

"""Bad input fails the host before anything on it changes, with bad_input naming the variable, the value
and what is accepted; rollout settings that ansible-core itself reads are refused with a message, never
a traceback. These runs need no Docker: every check comes before the first host task.
"""

import os
import subprocess
import sys

import pytest

import yaml

from unit_support.paths import COLLECTIONS, REPO

PLAYBOOK = os.path.join(REPO, "playbooks", "prime.yml")
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
INVENTORY = """
sglang_nodes:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""

# the bad values and what names them: data, shared with the fault tier (tests/faults/test_faults.py)
BAD_INPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad_input.yaml")


def rows(table):
    with open(BAD_INPUT, encoding="utf-8") as handle:
        return [pytest.param(row["extra"], row["named"], id=row["named"][:60]) for row in yaml.safe_load(handle)[table]]


@pytest.fixture()
def prime(tmp_path):
    """ansible-playbook playbooks/prime.yml on this machine, for a host root that does not exist yet."""
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    root = tmp_path / "host-root"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))

    def _run(*extra):
        argv = [ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "inventory.yml"), PLAYBOOK, "-e", "model=/models/tiny-moe",
                "-e", "prime_host_root=%s" % root, "-e", "prime_host_user=nobody", "-e", "sglang_prep_fleet_report=false"]
        proc = subprocess.run(argv + list(extra), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=120, check=False)
        return proc.returncode, proc.stdout, root

    return _run


@pytest.mark.parametrize("extra, named", rows("values"))
def test_a_value_that_cannot_work_is_bad_input_and_changes_nothing(prime, extra, named):
    rc, out, root = prime(*extra)
    assert rc != 0
    assert named in out, out[-3000:]
    assert "status: failed (bad_input)" in out
    assert "nothing was changed" in out
    assert not os.path.exists(root)


def test_every_bad_value_is_listed_at_once(prime):
    rc, out, _root = prime("-e", "prime_server_port=0", "-e", "prime_tp=0", "-e", "prime_stage_poll=0")
    assert rc != 0 and "3 setting(s) cannot work" in out


@pytest.mark.parametrize("extra, named", rows("rollout"))
def test_a_rollout_setting_ansible_cannot_use_is_bad_input_without_a_traceback(prime, extra, named):
    rc, out, root = prime(*extra)
    assert rc != 0
    assert named in out, out[-3000:]
    assert "status: failed (bad_input)" in out and "nothing was changed" in out
    assert "Traceback" not in out
    assert not os.path.exists(root)


def test_rollout_settings_that_work_pass():
    import importlib.util
    spec = importlib.util.spec_from_file_location("rollout", os.path.join(
        COLLECTIONS, "ansible_collections", "sglang", "prep", "plugins", "lookup", "rollout.py"))
    rollout = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rollout)
    for serial in (None, 1, "3", "25%", "100%", [1, "50%"]):
        assert rollout.problems(serial, None) == [], serial
    for fail in (None, 0, "10", 100, "12.5"):
        assert rollout.problems(None, fail) == [], fail
    assert len(rollout.problems("0", "101")) == 2
    assert rollout.problems([], None) and rollout.problems(True, None) and rollout.problems(None, False)


def test_a_missing_env_file_is_bad_input(prime, tmp_path):
    rc, out, root = prime("-e", "prime_env_file=%s" % (tmp_path / "missing.env"))
    assert rc != 0
    assert "missing.env does not exist" in out and "status: failed (bad_input)" in out
    assert not os.path.exists(root)



def test_a_port_given_on_the_command_line_is_a_port(prime):
    # -e passes strings: a port variable given as "9101" is accepted (only prime_tp is wrong here)
    rc, out, _root = prime("-e", "prime_node_exporter_port=9101", "-e", "prime_tp=0")
    assert rc != 0 and "1 setting(s) cannot work" in out and "prime_tp" in out, out[-3000:]


@pytest.mark.skipif(os.geteuid() != 0, reason="gives the host root to the unprivileged user nobody")
def test_a_model_symlink_the_container_cannot_follow_is_model_invalid_before_any_change(prime, tmp_path):
    outside = tmp_path / "outside-model"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    root = tmp_path / "host-root"
    (root / "models").mkdir(parents=True)
    (root / "models" / "elsewhere").symlink_to(outside)
    for path in (root, root / "models", outside, outside / "config.json"):
        os.lchown(path, 65534, 65534)
    rc, out, _root = prime("-e", "model=/models/elsewhere", "-e", "prime_host_user=nobody")
    assert rc != 0 and "status: failed (model_invalid)" in out, out[-3000:]
    text = " ".join(out.split())
    assert "%s is a symlink to %s" % (root / "models" / "elsewhere", outside) in text
    assert "cannot see the model through this link" in text and "Nothing was changed" in text
    assert sorted(os.listdir(root)) == ["models"]  # no directory was created

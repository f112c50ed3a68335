"""Bad input fails the host before anything on it changes, with bad_input naming the variable, the value
and what is accepted; rollout settings that ansible-core itself reads are refused with a message, never
a traceback. These runs need no Docker: every check comes before the first host task.
"""

import os
import subprocess
import sys

import pytest

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


@pytest.mark.parametrize("extra, named", [
    (["-e", "prime_server_port=70000"], 'prime_server_port="70000": a TCP port, 1 to 65535'),
    (["-e", "prime_stage_poll=0"], 'prime_stage_poll="0": a number of seconds above 0'),
    (["-e", "prime_stage_timeout=0"], 'prime_stage_timeout="0": a number of seconds above 0'),
    (["-e", "prime_tp=-1"], 'prime_tp="-1": a tensor-parallel size of 1 or more'),
    (["-e", '{"prime_moe_batch_sizes": [0, 8]}'], "prime_moe_batch_sizes=[0, 8]: batch sizes of 1 or more"),
    (["-e", '{"prime_disk_headroom_mb": -1}'], "prime_disk_headroom_mb=-1: unset (null) or 0 MiB or more"),
    (["-e", '{"prime_stages": []}'], "prime_stages=[]: one or more of deep_gemm"),
    (["-e", '{"prime_stages": ["deep_gemm", "warp"]}'], 'prime_stages=["deep_gemm", "warp"]: one or more of'),
    (["-e", '{"prime_stage_modes": {"warp": "rebuild"}}'], 'prime_stage_modes={"warp": "rebuild"}: keys from'),
    (["-e", '{"prime_stage_modes": {"moe_tune": "often"}}'], "each stage mapped to ensure or rebuild"),
    (["-e", '{"prime_stage_env": {"HF_TOKEN_LEN": 5}}'], "prime_stage_env.HF_TOKEN_LEN=5: a string (quote it in YAML)"),
    (["-e", '{"prime_extra_env": {"SGLANG_PREP_UID": "0"}}'],
     'prime_extra_env.SGLANG_PREP_UID="0": not settable: the role and the runtime set SGLANG_PREP_UID themselves'),
    (["-e", '{"prime_extra_env": {"TRITON_CACHE_DIR": "/tmp/x"}}'], "not settable"),
    (["-e", '{"prime_extra_env": {"PYTHONPATH": "/tmp/x"}}'], 'prime_extra_env.PYTHONPATH="/tmp/x": not settable'),
    (["-e", '{"prime_stage_env": {"SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN": "0"}}'], "not settable"),
    (["-e", "prime_host_root=relative/dir"], 'prime_host_root="relative/dir": empty'),
    (["-e", '{"prime_extra_server_args": ["--mem-fraction", "0.5"]}'],
     "prime_extra_server_args: extra server argument '--mem-fraction' abbreviates --mem-fraction-static"),
    (["-e", '{"prime_extra_server_args": ["--cuda-graph-backend-d=disabled"]}'], "abbreviates --cuda-graph-backend-decode"),
    (["-e", '{"prime_extra_server_args": ["--config", "/models/serve.yaml"]}'], "'--config' is refused: --config merges"),
    (["-e", '{"prime_extra_server_args": ["--cuda-graph-config={}"]}'], "--cuda-graph-config replaces the per-phase"),
    (["-e", "prime_node_exporter_port=70000"], 'prime_node_exporter_port="70000": a TCP port, 1 to 65535'),
    (["-e", '{"prime_telemetry_services": ["prometheus", "node-exporter"]}'], "(node-exporter is not one)"),
    (["-e", "prime_dcgm_exporter_port=9090"],
     "prime_dcgm_exporter_port=9090: a port no other telemetry service (nor prime_server_port) uses"),
    (["-e", "prime_metrics_textfile_dir=textfile"], 'prime_metrics_textfile_dir="textfile": empty, or the absolute path'),
    (["-e", '{"prime_registry_login": {"registry": "r.example.com", "username": "u"}}'],
     "prime_registry_login (keys registry, username): the keys registry, username and password"),
    (["-e", "prime_env_file_src=/nonexistent/container.env"], 'prime_env_file_src="/nonexistent/container.env": not a file'),
])
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


@pytest.mark.parametrize("extra, named", [
    (["-e", "sglang_prep_serial=abc"], 'sglang_prep_serial="abc": serial takes a number of hosts per batch'),
    (["-e", "sglang_prep_serial=-1"], 'sglang_prep_serial="-1": serial takes'),
    (["-e", "sglang_prep_serial=0%"], 'sglang_prep_serial="0%": serial takes'),
    (["-e", '{"sglang_prep_serial": [1, "x"]}'], 'sglang_prep_serial=[1, "x"]: serial takes'),
    (["-e", "sglang_prep_max_fail_percentage=150"], 'sglang_prep_max_fail_percentage="150": max_fail_percentage takes'),
    (["-e", "sglang_prep_max_fail_percentage=-5"], 'sglang_prep_max_fail_percentage="-5": max_fail_percentage takes'),
])
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

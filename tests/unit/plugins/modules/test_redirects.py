"""Renamed modules keep working under their old names (meta/runtime.yml plugin_routing), with a deprecation that
names the new one; the module names the collection was specified with stay as they are.

An old playbook runs through ansible-playbook as a user runs it: the collection from the checkout (ansible.cfg)."""

import json
import os
import subprocess
import sys

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), *([os.pardir] * 4)))
COLLECTION = os.path.join(REPO, "collections", "ansible_collections", "sglang", "prep")
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

with open(os.path.join(COLLECTION, "meta", "runtime.yml")) as handle:
    _ROUTES = yaml.safe_load(handle).get("plugin_routing") or {}
ROUTING = _ROUTES.get("modules") or {}
ACTIONS = _ROUTES.get("action") or {}
RENAMED = {"sglang_host_facts": "sglang_host_info", "sglang_stage_wait": "sglang_prime_wait"}


def play(tmp_path, tasks):
    """ansible-playbook on localhost with ``tasks``; (its JSON result per task name, its stderr)."""
    path = tmp_path / "play.yml"
    path.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="1")
    proc = subprocess.run([PLAYBOOK, "-i", "localhost,", "-c", "local", "-e",
                           "ansible_python_interpreter=%s" % sys.executable, str(path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    return dict((task["task"]["name"], task["hosts"]["localhost"]) for task in tasks), proc.stderr


def test_every_rename_is_a_deprecated_redirect_to_a_module_that_exists():
    assert {old: route["redirect"] for old, route in ROUTING.items()} == {
        old: "sglang.prep." + new for old, new in RENAMED.items()}
    for old, new in RENAMED.items():
        assert ROUTING[old]["deprecation"]["removal_version"] and new in ROUTING[old]["deprecation"]["warning_text"]
        assert os.path.isfile(os.path.join(COLLECTION, "plugins", "modules", new + ".py"))
        assert not os.path.exists(os.path.join(COLLECTION, "plugins", "modules", old + ".py"))
    # an action plugin moves with its module
    assert ACTIONS == {"sglang_stage_wait": dict(ROUTING["sglang_stage_wait"])}
    assert os.path.isfile(os.path.join(COLLECTION, "plugins", "action", "sglang_prime_wait.py"))


def test_the_specified_module_names_are_unchanged():
    for name in ("sglang_stage", "sglang_pointer_wait", "sglang_cache_inspect"):
        assert os.path.isfile(os.path.join(COLLECTION, "plugins", "modules", name + ".py")) and name not in ROUTING


def same_answer(old, new):
    """The result under the old name is the one under the new name (but for the task's own action name)."""
    drop = ("invocation", "_ansible_no_log", "action", "waited_s", "deprecations")
    assert dict((k, v) for k, v in old.items() if k not in drop) == dict((k, v) for k, v in new.items() if k not in drop)


@pytest.mark.parametrize("old, new", sorted(RENAMED.items()))
def test_an_old_playbook_still_runs_the_renamed_module_and_is_told_the_new_name(tmp_path, old, new):
    # sglang_stage_wait is an action plugin: a job that does not exist is its answer under either name
    args = {"jid": "j000000000000.1", "timeout": 0.5} if old == "sglang_stage_wait" else {
        "host_root": str(tmp_path / "root"), "host_user": "nobody"}
    tasks = [{"name": name, "sglang.prep." + module: args, "ignore_errors": True} for name, module in
             (("old", old), ("new", new))]
    results, stderr = play(tmp_path, tasks)
    same_answer(results["old"], results["new"])
    if old == "sglang_stage_wait":
        assert results["old"]["failed"] and results["old"]["msg"] == "could not find job" and "waited_s" in results["old"]
    else:
        assert results["old"].get("failed") is not True and results["old"]["host_user"]["name"] == "nobody"
    assert "sglang.prep.%s has been deprecated" % old in " ".join(stderr.split())
    assert "Use sglang.prep.%s instead" % new in " ".join(stderr.split())

"""One primed stand-in host for every fault: the container CLI as the role runs it, the module, the role.

The container is the integration stage harness's (tests/integration/stage_harness.py): the test image as a
non-root UID on bind-mounted host directories. FaultBox adds the models an operator keeps side by side
(/models/tiny-moe, /models/dense, /models/orgA/m, /models/orgB/m), the ``prime`` job, the module
``sglang.prep.sglang_stage`` and ``sglang.prep.sglang_prime`` run by ansible-playbook, and a snapshot of the records a fault must not touch.
"""

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

import stage_harness as h
from docker_util import REPO, docker, wait_for  # noqa: F401
from role_harness import ANSIBLE_PLAYBOOK, ensure_user
from stage_harness import GID, MODEL, RUN_ID, UID, contract

MODELS = ("dense", "orgA/m", "orgB/m")
PRIMED = ("deep_gemm", "moe_tune", "flashinfer", "inductor")

# Runs inside the container: SIGKILL the runtime job (python3 -m sglang_prep prime), as `kill -9` would.
KILL_JOB = r"""
import os, signal, sys
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != os.getpid():
        try:
            cmd = open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0")
        except OSError:
            continue
        if b"sglang_prep" in cmd and b"prime" in cmd:
            os.kill(int(pid), signal.SIGKILL)
            print(pid)
"""


class FaultBox(h.StageContainer):
    """The stage harness's container, with several models and the commands an operator uses."""

    def __init__(self):
        super().__init__()
        for name in MODELS:
            target = self.host("models", name)
            shutil.copytree(h.STANDIN_MODEL, target)
            for top, dirs, files in os.walk(os.path.dirname(target)):  # test setup: the host user owns them
                for entry in [top] + [os.path.join(top, n) for n in dirs + files]:
                    os.lchown(entry, UID, GID)

    def prime(self, *args, model=MODEL, env=None, timeout=300):
        cmd = ["python3", "-m", "sglang_prep", "prime", "--model", model, "--disk-headroom-mb", "1",
               "--telemetry-timeout", "1", "--moe-batch-sizes", "1"] + list(args)
        return h.StageResult(self.exec(*cmd, env=env, timeout=timeout))

    def plan(self, *args, model=MODEL):
        cmd = ["python3", "-m", "sglang_prep", "plan", "--model", model, "--disk-headroom-mb", "1",
               "--moe-batch-sizes", "1"] + list(args)
        return h.StageResult(self.exec(*cmd))

    def kill_job(self):
        return self.exec("python3", "-c", KILL_JOB, check=True).stdout.split()

    # ------------------------------------------------------------ records
    def records(self):
        """{host path: text} of every record: stage JSONs (attempts and last successes), aggregates, signatures."""
        out = {}
        for sub in ("telemetry", "profiles"):
            for top, _dirs, files in os.walk(self.host(sub)):
                for name in files:
                    if name.endswith(".json") and (name == "signature.json" or "/models/" in top + "/"):
                        path = os.path.join(top, name)
                        with open(path) as handle:
                            out[path] = handle.read()
        return out

    def assert_intact(self, before, may_change=()):
        """Every record in ``before`` is still there, unchanged, except the attempt files named in may_change
        (and the aggregates, which are rebuilt from the stage files): successes are never erased."""
        after = self.records()
        allowed = set(may_change)
        for path, text in before.items():
            if path in allowed or path.endswith("prep_result.json"):
                continue
            assert after.get(path) == text, "record changed or lost: %s" % path
        for path in before:
            if path.endswith("prep_result.json"):
                json.loads(after[path])  # rebuilt, never lost or damaged

    def attempt_path(self, stage, model=MODEL):
        return self.telemetry(contract.stage_json_path(RUN_ID, stage, model))

    # ------------------------------------------------------------ the module, as the role runs it
    def module(self, args, detach=False, task=None, verbose=False, async_dir=None, then=()):
        """ansible-playbook running sglang.prep.sglang_stage (or, with ``stages`` in ``args``, sglang.prep.sglang_prime)
        with ``args`` against this container; the task result,
        or (with detach) the Popen whose result comes from module_result(). ``task``: more task keywords (async),
        ``async_dir``: where the async job files go (ANSIBLE_ASYNC_DIR); ``then``: tasks after it; ``verbose``: -vvv,
        the raw output back."""
        base = tempfile.mkdtemp(prefix="sglang-prep-fault-play-", dir="/var/tmp")
        play = [{"hosts": "localhost", "gather_facts": False, "tasks": [dict(
            {"name": "fault", module_name(args): dict(
                {"container": self.name, "model": MODEL, "user": "%d:%d" % (UID, GID)}, **args)}, **(task or {}))]
            + list(then)}]
        with open(os.path.join(base, "play.yml"), "w") as handle:
            json.dump(play, handle)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCAL_TEMP=os.path.join(base, "tmp"))
        if not verbose:
            env["ANSIBLE_STDOUT_CALLBACK"] = "json"
        if async_dir:
            env["ANSIBLE_ASYNC_DIR"] = async_dir
        argv = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e",
                "ansible_python_interpreter=%s" % sys.executable, os.path.join(base, "play.yml")]
        proc = subprocess.Popen(argv + (["-vvv"] if verbose else []), cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        proc.play_dir = base
        if verbose:
            try:
                return proc.communicate(timeout=300)[0]
            finally:
                shutil.rmtree(base, ignore_errors=True)
        return proc if detach else module_result(proc)


def module_name(args):
    """The module a task with ``args`` runs: sglang_prime for several stages, else the single-stage sglang_stage."""
    return "sglang.prep.sglang_prime" if "stages" in args else "sglang.prep.sglang_stage"


def module_result(proc, timeout=300):
    try:
        out, _err = proc.communicate(timeout=timeout)
    finally:
        shutil.rmtree(proc.play_dir, ignore_errors=True)
    start = out.find("{")
    data = json.loads(out[start:])
    return data["plays"][0]["tasks"][0]["hosts"]["localhost"]


# ---------------------------------------------------------------- the role, for bad input
def host_user():
    """The unprivileged host user of the container's UID (created when missing, as the operator would)."""
    try:
        return pwd.getpwuid(UID)
    except KeyError:
        return ensure_user("sglang-prep-fault", UID)[0]


def role_prime(box, *extra):
    """ansible-playbook playbooks/prime.yml for this host root (the fault box's), as an operator runs it."""
    user = host_user()
    base = tempfile.mkdtemp(prefix="sglang-prep-fault-role-", dir="/var/tmp")
    inventory = os.path.join(base, "inventory.yml")
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "model": MODEL,
            "prime_host_user": user.pw_name, "prime_host_root": box.base, "prime_image": h.IMAGE,
            "prime_image_pull": "never", "prime_container_name": box.name, "prime_gpus": "none",
            "sglang_prep_fleet_report": False}
    with open(inventory, "w") as handle:
        json.dump({"all": {"children": {"sglang_nodes": {"hosts": {"localhost": host}}}}}, handle)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCAL_TEMP=os.path.join(base, "tmp"))
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", inventory, os.path.join(REPO, "playbooks", "prime.yml")] + list(extra),
                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                          check=False)
    shutil.rmtree(base, ignore_errors=True)
    return proc.returncode, proc.stdout

"""Run the collection's playbooks against this machine, as molecule does, for a dedicated host user.

Used by test_rollout.py. The host user is a real unprivileged account (created here when missing, as the
operator would), the host root a fresh directory it owns, the model the tiny stand-in model, the image the
test image; ansible-playbook runs from the repository root with its ansible.cfg, as a user would run it.
"""

import contextlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from docker_util import REPO, docker, pinned_image  # noqa: F401

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, pointer

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
# FP8 block-quantized MoE: the deep_gemm stage has work (SGLang runs DeepGEMM only for such weights).
MODEL_NAME = "tiny-moe-fp8-block"
STANDIN_MODEL = os.path.join(REPO, "tests", "standins", "models", MODEL_NAME)
MODEL = "/models/" + MODEL_NAME
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
FAST_STANDINS = {"SGLANG_STANDIN_START_DELAY_S": "0.05", "SGLANG_STANDIN_WARMUP_S": "0.05",
                 "SGLANG_STANDIN_COMPILE_S": "0.01", "SGLANG_STANDIN_TUNER_S": "0.05"}


class Play(object):
    """One ansible-playbook run: exit code, output, the recap line of localhost."""

    def __init__(self, argv, proc):
        self.argv = argv
        self.rc = proc.returncode
        self.output = proc.stdout
        self.text = " ".join(proc.stdout.split())  # messages wrapped by the YAML callback, on one line
        self.recap = None
        for line in self.output.splitlines():
            match = RECAP.match(line)
            if match and match.group(1) == "localhost":
                self.recap = dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups()[1:])))

    def __repr__(self):
        return "ansible-playbook %s (exit %s):\n%s" % (" ".join(self.argv), self.rc,
                                                      "\n".join(self.output.splitlines()[-60:]))


def ensure_user(name, uid):
    """(the unprivileged host user, whether it was created here): created with a home when missing, the
    operator's job on a real host."""
    try:
        return pwd.getpwnam(name), False
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--uid", str(uid), "--shell", "/bin/bash", name], check=True)
        return pwd.getpwnam(name), True


class RoleHost(object):
    """This machine as a one-host fleet for the prime role: a host user, its host root, a container name."""

    def __init__(self, user, uid, prefix, stages=("deep_gemm",), extra_vars=None):
        self.user, self.created_user = ensure_user(user, uid)
        self.base = tempfile.mkdtemp(prefix=prefix + "-", dir="/var/tmp")
        os.chmod(self.base, 0o755)  # test setup: the host user must reach its host root
        self.root = os.path.join(self.base, "sglang-observability")
        self.container = "%s-%s" % (prefix, uuid.uuid4().hex[:8])
        shutil.copytree(STANDIN_MODEL, os.path.join(self.root, "models", MODEL_NAME))
        for top, dirs, files in os.walk(self.root):  # test setup: the host user owns its host root
            for entry in [top] + [os.path.join(top, n) for n in dirs + files]:
                os.lchown(entry, self.user.pw_uid, self.user.pw_gid)
        self.vars = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "model": MODEL,
            "prime_host_user": self.user.pw_name,
            "prime_host_root": self.root,
            "prime_image": pinned_image(),
            "prime_image_pull": "never",
            "prime_container_name": self.container,
            "prime_network_mode": "bridge",
            "prime_gpus": "none",
            "prime_stages": list(stages),
            "prime_pointer_timeout": 60,
            "prime_stage_timeout": 300,
            "prime_stage_poll": 1,
            "prime_ready_timeout": 60,
            "prime_moe_batch_sizes": [1],
            "prime_extra_env": dict(FAST_STANDINS),
            "sglang_prep_fleet_report": False,
        }
        self.vars.update(extra_vars or {})
        self.inventory = os.path.join(self.base, "inventory.yml")
        with open(self.inventory, "w", encoding="utf-8") as handle:
            json.dump({"all": {"children": {"sglang_nodes": {"hosts": {"localhost": self.vars}}}}}, handle)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    @property
    def pointer_file(self):
        return self.path("telemetry", contract.POINTER_NAME)

    def playbook(self, name, *args, timeout=600):
        argv = ["-i", self.inventory, os.path.join(REPO, "playbooks", name)] + list(args)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0")
        proc = subprocess.run([ANSIBLE_PLAYBOOK] + argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
        return Play(argv, proc)

    def serve(self, *args, **extra_vars):
        if extra_vars:
            args = args + ("-e", json.dumps(extra_vars))
        return self.playbook("serve.yml", *args)

    def prime(self, *args, **extra_vars):
        if extra_vars:
            args = args + ("-e", json.dumps(extra_vars))
        return self.playbook("prime.yml", *args)

    # ------------------------------------------------------------ what is on the host
    def pointer_text(self):
        try:
            with open(self.pointer_file, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def run(self):
        """The current run: (run_id, manifest) named by the pointer."""
        with open(pointer.parse_pointer(self.pointer_text())["host"], encoding="utf-8") as handle:
            data = json.load(handle)
        return data["container_run_id"], data

    def stage_json(self, run_id, stage, model=MODEL):
        path = os.path.relpath(contract.stage_json_path(run_id, stage, model), contract.TELEMETRY_ROOT)
        with open(self.path("telemetry", path), encoding="utf-8") as handle:
            return json.load(handle)

    def container_state(self, name=None):
        """(id, running, image) of the container, or None when there is none."""
        proc = docker("inspect", "--format", "{{json .}}", name or self.container, check=False)
        if proc.returncode != 0:
            return None
        data = json.loads(proc.stdout)
        return data["Id"], data["State"]["Running"], data["Config"]["Image"]

    def wait_running(self, timeout_s=30):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.container_state()
            if state and state[1]:
                return state
            time.sleep(0.2)
        raise AssertionError("container %s is not running" % self.container)

    def remove(self):
        for name in (self.container, self.container + "-trial"):
            docker("rm", "-f", name, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        if self.created_user:
            subprocess.run(["userdel", "--remove", self.user.pw_name], capture_output=True, check=False)


@contextlib.contextmanager
def primed_host(user, uid, container, **kwargs):
    """A RoleHost the role primed (the prime must pass), removed afterwards: a module fixture's host (``kwargs``:
    RoleHost's, e.g. stages=contract.STAGE_ORDER for a fully primed host)."""
    host = RoleHost(user, uid, container, **kwargs)
    try:
        play = host.prime()
        assert play.rc == 0 and play.recap["failed"] == 0, play
        yield host
    finally:
        host.remove()

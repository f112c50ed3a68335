"""Fleet scenario fixtures: SSH test hosts on this machine and a way to prime them with ansible-playbook."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fleet_hosts

# the stand-in image: SGLANG_PREP_TEST_IMAGE names it (as for tests/integration and molecule), so parallel
# checkouts on one Docker engine each test their own build
IMAGE = os.environ.get("SGLANG_PREP_TEST_IMAGE") or "sglang-prep/standin:test"
MODEL_DIR = os.path.join(REPO, "tests", "standins", "models", "tiny-moe")
MODEL = "/models/tiny-moe"
PLAYBOOK = os.path.join(REPO, "playbooks", "prime.yml")
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)")
RECAP_KEYS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")


class Run:
    """One ansible-playbook run: exit code, output, PLAY RECAP per host, wall time."""

    def __init__(self, argv, proc, seconds, log_path, started_at):
        self.argv = argv
        self.started_at = started_at  # wall clock (time.time()) when ansible-playbook started
        self.rc = proc.returncode
        self.output = proc.stdout
        self.seconds = seconds
        self.log_path = log_path
        self.recap = {}
        in_recap = False
        for line in self.output.splitlines():
            if line.startswith("PLAY RECAP"):
                in_recap = True
                continue
            match = RECAP.match(line) if in_recap else None
            if match:
                self.recap[match.group(1)] = dict(zip(RECAP_KEYS, (int(g) for g in match.groups()[1:])))

    def tail(self, lines=60):
        return "ansible-playbook %s (exit %d, log %s):\n%s" % (
            " ".join(self.argv), self.rc, self.log_path, "\n".join(self.output.splitlines()[-lines:]))


class Fleet:
    def __init__(self, status, report_dir, log_dir):
        self.status = status
        self.inventory = status["inventory"]
        self.hosts = {h["name"]: h for h in status["hosts"]}
        self.report_dir = report_dir
        self.log_dir = log_dir
        self.runs = 0

    def prime(self, *extra, inventories=(), playbook=PLAYBOOK):
        self.runs += 1
        argv = ["-i", self.inventory]
        for inventory in inventories:
            argv += ["-i", inventory]
        argv += [playbook, "-e", "model=" + MODEL] + list(extra)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_FORCE_COLOR="0", SGLANG_PREP_REPORT_DIR=self.report_dir)
        started_at = time.time()
        started = time.monotonic()
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook")] + argv, cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900, check=False)
        log_path = os.path.join(self.log_dir, "run-%d.log" % self.runs)
        with open(log_path, "w") as handle:
            handle.write(proc.stdout)
        return Run(argv, proc, time.monotonic() - started, log_path, started_at)

    def serve(self, *extra):
        """serve.yml on the fleet (the same settings as prime)."""
        return self.prime(*extra, playbook=os.path.join(REPO, "playbooks", "serve.yml"))

    def latest_report(self):
        with open(os.path.join(self.report_dir, "fleet-report-latest.json")) as handle:
            return json.load(handle)

    def stamped_reports(self):
        """Names of the time-stamped JSON reports written so far (one per run of the prime play)."""
        if not os.path.isdir(self.report_dir):
            return []
        return sorted(n for n in os.listdir(self.report_dir) if n.startswith("fleet-report-2") and n.endswith(".json"))

    def host_root(self, name):
        return os.path.join(self.hosts[name]["home"], "sglang-observability")

    def fresh(self, names=None):
        """Every host (or the hosts named) fresh again (no container, no caches, its model staged) and no fleet
        report yet: what a test module that starts from unprimed hosts needs, whatever the modules before it left."""
        for name, host in self.hosts.items():
            if names is not None and name not in names:
                continue
            fleet_hosts.clean_host(host)
            fleet_hosts.stage_model(host, MODEL_DIR)
        shutil.rmtree(self.report_dir, ignore_errors=True)


def docker(*args):
    return subprocess.run(["docker"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the fleet tier creates local users and an sshd: run it as root (make test-fleet in CI)")
    if docker("image", "inspect", IMAGE).returncode != 0:
        subprocess.run([os.path.join(REPO, "scripts", "build-images.sh")], check=True, env=dict(os.environ, SGLANG_PREP_TEST_IMAGE=IMAGE))
    with fleet_hosts.session("the fleet tests"):
        status = fleet_hosts.up(count=3, clean=True, model_dir=MODEL_DIR, image=fleet_hosts.pinned_image(IMAGE))
        base = tmp_path_factory.mktemp("fleet")
        report_dir = str(base / "reports")
        log_dir = str(base / "logs")
        os.makedirs(log_dir)
        try:
            yield Fleet(status, report_dir, log_dir)
        finally:
            fleet_hosts.down(count=3)

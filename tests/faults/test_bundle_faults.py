"""The fault tier for cache bundles: installs killed at each phase, installs at once, who owns what.

Two stand-in containers (the integration stage harness's: the test image as a non-root UID on bind-mounted
host directories): a builder that primes deep_gemm for several copies of the FP8-block model and packs one
bundle per model, and a receiver that primed two models of its own. What a user relies on: an install killed at
any phase (a real SIGKILL of the runtime in the container), followed by a prime and another model's install,
loses nothing the receiver had or primed after the kill, and leaves each model with old or new caches, never a
mix; two installs at once both finish complete; everything an install writes belongs to the host user and is
never world-writable, whatever the umask.
"""

import hashlib
import json
import os
import shutil
import threading

import pytest

import fault_harness as fh
import stage_harness as h
from stage_harness import GID, UID, contract

BUILT = ("k1", "k2", "k3", "k4", "l1", "l2", "l3", "l4", "c1", "c2")  # killed, installed later, installed at once
OWN = ("r1", "r2")  # the receiver primes these itself
STAGE = "deep_gemm"
OPTIONS = ("--disk-headroom-mb", "1", "--telemetry-timeout", "1", "--moe-batch-sizes", "1")

# Runs inside the container as the host user: the runtime's `bundle install`, SIGKILLed by itself at one phase
# (KILL_PHASE: unpack = after the first member is unpacked; apply = before the KILL_AT-th live change;
# finish = after every change, before the markers go; cleanup = after the markers went, before the staging goes).
KILLED_INSTALL = r"""
import os, shutil, sys
from sglang_prep.container import bundle, cli, locks

phase, at = os.environ["KILL_PHASE"], int(os.environ.get("KILL_AT", "1"))

def die(*_args, **_kwargs):
    os.kill(os.getpid(), 9)

if phase == "unpack":
    real_member = bundle._unpack_member
    seen = []
    def member(*args):
        real_member(*args)
        seen.append(1)
        if len(seen) == at:
            die()
    bundle._unpack_member = member
elif phase == "apply":
    real_apply = bundle._apply
    def apply(profiles_root, staged, plan, _before):
        count = []
        def before(_rel):
            count.append(1)
            if len(count) == at:
                die()
        return real_apply(profiles_root, staged, plan, before)
    bundle._apply = apply
elif phase == "finish":
    locks.remove_marker = die
elif phase == "cleanup":
    real_rmtree = shutil.rmtree
    def rmtree(path, *args, **kwargs):
        if "/.bundle-staging/" in str(path):
            die()
        return real_rmtree(path, *args, **kwargs)
    bundle.shutil.rmtree = rmtree
sys.exit(cli.main(sys.argv[1:]))
"""


def model_path(name):
    return "/models/" + name


def add_models(box, names):
    for name in names:
        target = box.host("models", name)
        shutil.copytree(h.STANDIN_MODEL, target)
        for top, dirs, files in os.walk(target):  # test setup: the host user owns them
            for entry in [top] + [os.path.join(top, n) for n in dirs + files]:
                os.lchown(entry, UID, GID)


def plant(box, rel, data):
    """A cache entry of the builder's own (as a compile would leave it), owned by the host user."""
    path = box.host("profiles", rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    for top, _dirs, _files in os.walk(box.host("profiles")):
        os.lchown(top, UID, GID)
    os.lchown(path, UID, GID)


def caches(box):
    """{path under profiles/: sha256 or link target} of every cache entry (bookkeeping directories aside)."""
    out = {}
    root = box.host("profiles")
    for top, dirs, files in os.walk(root):
        rel_top = os.path.relpath(top, root)
        if rel_top.split(os.sep)[0] in (".bundles", ".bundle-staging", ".locks", ".in_progress"):
            dirs[:] = []
            continue
        for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            path = os.path.join(top, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = "-> " + os.readlink(path)
            else:
                with open(path, "rb") as handle:
                    out[rel] = hashlib.sha256(handle.read()).hexdigest()
    return out


def assert_kept(before, after, what):
    """Every entry of ``before`` is in ``after`` with the same bytes (logs aside: every run appends to them)."""
    lost = sorted(rel for rel, digest in before.items() if after.get(rel) != digest and not rel.endswith(".log"))
    assert not lost, "%s lost or changed %d entries: %s" % (what, len(lost), lost[:10])


class Fleet(object):
    def __init__(self):
        self.builder = fh.FaultBox()
        self.receiver = fh.FaultBox()
        add_models(self.builder, BUILT)
        add_models(self.receiver, BUILT + OWN)
        self.bundles = {}
        for name in BUILT:
            primed = self.builder.prime("--stages", STAGE, model=model_path(name))
            assert primed.rc == 0 and primed["stages"][STAGE]["status"] == "ok", primed
            plant(self.builder, "triton/%s/kernel.cubin" % name.upper(), ("a kernel only %s compiles" % name).encode())
            made = h.StageResult(self.builder.exec("python3", "-m", "sglang_prep", "bundle", "create", "--model",
                                                   model_path(name), "--stages", STAGE, *OPTIONS))
            assert made.rc == 0 and made["status"] == "ok", made
            self.bundles[name] = made.json
            target = self.receiver.host("profiles", ".bundles")
            os.makedirs(target, exist_ok=True)
            os.lchown(target, UID, GID)
            copy = os.path.join(target, made["digest"] + ".tar.gz")
            shutil.copyfile(made["path"].replace(contract.PROFILES_ROOT, self.builder.host("profiles"), 1), copy)
            os.lchown(copy, UID, GID)  # what the role's transfer leaves (tests/fleet checks the transfer itself)
            shutil.rmtree(self.builder.host("profiles", "triton", name.upper()))  # the next bundle carries its own only
        for name in OWN:
            primed = self.receiver.prime("--stages", STAGE, model=model_path(name))
            assert primed.rc == 0 and primed["stages"][STAGE]["status"] == "ok", primed
            plant(self.receiver, "triton/%s/kernel.cubin" % name.upper(), ("the receiver's own kernel for %s" % name).encode())

    def install_argv(self, name):
        digest = self.bundles[name]["digest"]
        return ["bundle", "install", "--model", model_path(name), "--bundle", "/profiles/.bundles/%s.tar.gz" % digest,
                "--sha256", digest] + list(OPTIONS)

    def install(self, name, umask=None):
        argv = ["python3", "-m", "sglang_prep"] + self.install_argv(name)
        if umask is not None:
            argv = ["sh", "-c", 'umask %s && exec "$@"' % umask, "sh"] + argv
        return h.StageResult(self.receiver.exec(*argv))

    def killed_install(self, name, phase, at=1):
        proc = self.receiver.exec("python3", "-c", KILLED_INSTALL, *self.install_argv(name),
                                  env={"KILL_PHASE": phase, "KILL_AT": str(at)})
        assert proc.returncode == 137, "the install was not killed at %s: rc %s\n%s" % (phase, proc.returncode, proc.stderr[-2000:])

    def remove(self):
        for box in (self.builder, self.receiver):
            h.docker("rm", "-f", box.name, check=False)
            shutil.rmtree(box.base, ignore_errors=True)


@pytest.fixture(scope="module")
def fleet():
    h.ensure_image()
    made = Fleet()
    try:
        yield made
    finally:
        made.remove()


def signature_of(box, name):
    path = box.profiles(contract.signature_path(STAGE, model_path(name)))
    with open(path) as handle:
        return json.load(handle)


@pytest.mark.parametrize("phase, at, killed, later, holds", [
    ("unpack", 1, "k1", "l1", "old"),
    ("apply", 2, "k2", "l2", "old"),
    ("finish", 1, "k3", "l3", "old"),
    ("cleanup", 1, "k4", "l4", "new"),
])
def test_a_kill_at_each_phase_then_a_prime_and_another_install_lose_nothing(fleet, phase, at, killed, later, holds):
    box = fleet.receiver
    before = caches(box)
    fleet.killed_install(killed, phase, at)
    staging = box.host("profiles", ".bundle-staging")
    assert os.listdir(staging), "a killed install leaves its staging (until the next stage run or install clears it)"
    # the prime after the kill: its stage run clears the staging first and says which caches the model holds
    primed = box.prime("--stages", STAGE, model=model_path(killed))
    assert primed.rc == 0, primed
    assert os.listdir(staging) == []
    outcome = {"old": "the model holds its old caches", "new": "the model holds its new or re-primed caches"}[holds]
    assert "%s: %s" % (model_path(killed), outcome) in box.session_log()
    status = primed["stages"][STAGE]["status"]
    assert status == ("noop" if holds == "new" else "ok"), primed  # new caches are complete; old ones re-prime
    kernel = "triton/%s/kernel.cubin" % killed.upper()
    if holds == "old":
        assert kernel not in caches(box), "a rolled-back install left %s behind" % kernel
    assert_kept(before, caches(box), "a killed install and the prime after it")
    after_prime = caches(box)
    installed = fleet.install(later)
    assert installed.rc == 0 and installed["status"] == "installed", installed
    assert_kept(after_prime, caches(box), "another model's install after the kill")
    for name in OWN + (killed,):
        assert signature_of(box, name)["fields"]["model_slug"] == name
    assert box.foreign_owned() == []


def test_two_installs_at_once_both_finish_complete_and_a_stage_run_between_touches_neither(fleet):
    box = fleet.receiver
    before = caches(box)
    results = {}
    threads = [threading.Thread(target=lambda n=name: results.update({n: fleet.install(n)})) for name in ("c1", "c2")]
    for thread in threads:
        thread.start()
    noop = box.prime("--stages", STAGE, model=model_path("r1"))  # a stage run while the installs run
    for thread in threads:
        thread.join(180)
    assert noop.rc == 0 and noop["stages"][STAGE]["status"] == "noop", noop
    for name in ("c1", "c2"):
        assert results[name].rc == 0 and results[name]["status"] == "installed", results[name]
        assert "triton/%s/kernel.cubin" % name.upper() in caches(box)
        again = box.plan("--stages", STAGE, model=model_path(name))
        assert again.rc == 0 and again["to_run"] == [], again
    assert_kept(before, caches(box), "two installs at once")
    assert os.listdir(box.host("profiles", ".bundle-staging")) == []


def test_an_install_under_umask_000_leaves_nothing_world_writable_and_everything_the_host_users(fleet):
    box = fleet.receiver
    for name in ("c1",):  # installed above: forget it (as a host that lost its signatures would), then install again
        os.unlink(box.profiles(contract.signature_path(STAGE, model_path(name))))
    shutil.rmtree(box.host("profiles", "triton", "C1"))
    installed = fleet.install("c1", umask="000")
    assert installed.rc == 0 and installed["status"] == "installed", installed
    writable = []
    for top, dirs, files in os.walk(box.host("profiles")):
        for entry in dirs + files:
            path = os.path.join(top, entry)
            st = os.lstat(path)
            if not os.path.islink(path) and st.st_mode & 0o002 and not entry.endswith(".lock"):
                writable.append(os.path.relpath(path, box.host("profiles")))
    assert writable == []
    assert box.foreign_owned() == []

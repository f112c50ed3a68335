"""sglang_pointer_wait: waits for the run pointer, reads the run it names, never changes anything.

Pointer and manifest are written exactly as the container init writes them (unit_support.modules.write_run);
the docker CLI is the recording fake of conftest.py. Most cases are a table: what the host holds (given) and
the module args in; exit code and result out. The waits themselves are timed below it.
"""

import json
import os
import threading
import time

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.modules import sglang_pointer_wait
from unit_support.modules import (EXITED, RUNNING, RUN_ID, Case, Has, cases, host_root, pointer_path, run_module,
                                  write_run)


def garbage_pointer(root):
    with open(pointer_path(root), "w") as handle:
        handle.write("not a pointer\n")


def incomplete_manifest(root):
    with open(write_run(root), "w") as handle:
        json.dump({"container_run_id": RUN_ID}, handle)


GIVEN = {
    "nothing": lambda root: None,
    "a run": write_run,
    "a garbage pointer": garbage_pointer,
    "a pointer without the host path": lambda root: write_run(root, host_key=False),
    "a pointer to a missing manifest": lambda root: os.remove(write_run(root)),
    "an incomplete manifest": incomplete_manifest,
}
POINTER = {"path": "{pointer}"}
OTHER_UID = os.getuid() + 4242


@cases(
    Case("reads the run the pointer names", POINTER, given="a run",
         result={"changed": False, "found": True, "run_id": RUN_ID,
                 "manifest": "{root}/telemetry/container_runs/%s.json" % RUN_ID,
                 "manifest_container": "/telemetry/container_runs/%s.json" % RUN_ID,
                 "log_file": "{root}/telemetry/logs/%s.log" % RUN_ID,
                 "paths": {"host": {"profiles_root": "{root}/profiles"}, "container": {"profiles_root": "/profiles"}}}),
    Case("times out with pointer_timeout", dict(POINTER, timeout=0.5, sleep=0.05), given="nothing", rc=1,
         result={"error_type": "pointer_timeout", "msg": Has("did not appear within 0.5 s")}),
    Case("a stopped container fails at once with its logs",
         dict(POINTER, timeout=60, container="sglang-prep", docker_cli="{docker}"), given="nothing", rc=1,
         docker={"state": EXITED, "logs": "permissions_unexpected: /profiles is owned by root (uid 0), expected uid 4242\n"},
         result={"error_type": "container_not_running", "msg": Has("owned by root"), "log_tail": Has("owned by root")}),
    Case("a garbage pointer is bad_pointer", POINTER, given="a garbage pointer", rc=1,
         result={"error_type": "bad_pointer", "msg": Has("not KEY=VALUE")}),
    Case("a pointer without the host path is bad_pointer", POINTER, given="a pointer without the host path", rc=1,
         result={"error_type": "bad_pointer", "msg": Has(contract.POINTER_HOST_KEY)}),
    Case("a pointer to a missing manifest is bad_manifest", POINTER, given="a pointer to a missing manifest", rc=1,
         result={"error_type": "bad_manifest", "msg": Has("does not exist")}),
    Case("an incomplete manifest is bad_manifest", POINTER, given="an incomplete manifest", rc=1,
         result={"error_type": "bad_manifest", "msg": Has("lacks")}),
    Case("files of another owner are refused, naming both owners", dict(POINTER, expected_uid=OTHER_UID), given="a run",
         rc=1, result={"error_type": "permissions_unexpected",
                       "msg": Has("uid %d" % os.getuid(), "uid %d" % OTHER_UID, "chown")}),
    Case("check mode does not wait for a missing pointer", dict(POINTER, timeout=60), given="nothing", check_mode=True,
         result={"found": False, "changed": False, "msg": Has("does not wait")}),
    Case("check mode reads an existing pointer", POINTER, given="a run", check_mode=True, result={"run_id": RUN_ID}),
)
def test_pointer_wait(case, capsys, tmp_path, docker):
    root = host_root(tmp_path)
    GIVEN[case.given](root)
    started = time.monotonic()
    case.check(sglang_pointer_wait, capsys, docker, root=root, pointer=pointer_path(root))
    assert time.monotonic() - started < 10  # no case waits out a 60 s timeout


def wait_while_the_run_appears(args, root, delay, capsys):
    timer = threading.Timer(delay, write_run, args=(root,))
    timer.start()
    try:
        started = time.monotonic()
        rc, out = run_module(sglang_pointer_wait, args, capsys)
    finally:
        timer.join()
    return rc, out, time.monotonic() - started


def test_waits_until_the_pointer_appears(tmp_path, capsys):
    root = host_root(tmp_path)
    rc, out, waited = wait_while_the_run_appears({"path": pointer_path(root), "timeout": 20, "sleep": 0.05}, root, 0.6,
                                                 capsys)
    assert rc == 0 and out["run_id"] == RUN_ID
    assert 0.5 < waited < 5


def test_a_running_container_is_waited_for(tmp_path, capsys, docker):
    path, configure, calls = docker
    configure(state=RUNNING)
    root = host_root(tmp_path)
    rc, out, _waited = wait_while_the_run_appears(
        {"path": pointer_path(root), "timeout": 20, "container": "sglang-prep", "docker_cli": path}, root, 0.4, capsys)
    assert rc == 0 and out["run_id"] == RUN_ID
    assert any(c[0] == "inspect" for c in calls())

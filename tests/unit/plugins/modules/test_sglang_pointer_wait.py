"""sglang_pointer_wait: waits for the run pointer, reads the run it names, never changes anything.

Pointer and manifest are written exactly as the container init writes them (pointer.write_pointer,
the manifest's required fields); the docker CLI is a recording fake.
"""

import json
import os
import threading
import time

import pytest


from ansible.module_utils.testing import patch_module_args
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, manifest, pointer
from ansible_collections.sglang.prep.plugins.modules import sglang_pointer_wait
from unit_support.modules import EXITED, RUNNING

RUN_ID = "container-run-20261129T160740Z-339c4104"


def host_root(tmp_path):
    root = tmp_path / "sglang-observability"
    for name in contract.HOST_SUBDIRS:
        (root / name).mkdir(parents=True)
    (root / "telemetry" / "container_runs").mkdir()
    return root


def write_run(root, run_id=RUN_ID, host_key=True):
    """Manifest first, then the pointer (as the init does). Returns the host manifest path."""
    telemetry = str(root / "telemetry")
    cpaths = manifest.container_paths(run_id)
    hroots = {name: str(root / name) for name in contract.HOST_SUBDIRS}
    data = {field: None for field in manifest.REQUIRED_FIELDS}
    data.update(schema_version=contract.SCHEMA_VERSION, container_run_id=run_id,
                paths={"container": cpaths, "host": manifest.host_paths(cpaths, hroots)})
    host_manifest = os.path.join(telemetry, "container_runs", run_id + ".json")
    with open(host_manifest, "w") as handle:
        json.dump(data, handle)
    pointer.write_pointer(cpaths["manifest"], host_manifest if host_key else None, telemetry_root=telemetry)
    return host_manifest


def run(args, capsys, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            sglang_pointer_wait.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def pointer_path(root):
    return str(root / "telemetry" / contract.POINTER_NAME)


def test_reads_the_run_the_pointer_names(tmp_path, capsys):
    root = host_root(tmp_path)
    host_manifest = write_run(root)
    rc, out = run({"path": pointer_path(root)}, capsys)
    assert rc == 0 and out["changed"] is False and out["found"] is True
    assert out["run_id"] == RUN_ID
    assert out["manifest"] == host_manifest
    assert out["manifest_container"] == "/telemetry/container_runs/%s.json" % RUN_ID
    assert out["log_file"] == str(root / "telemetry" / "logs" / (RUN_ID + ".log"))
    assert out["paths"]["host"]["profiles_root"] == str(root / "profiles")
    assert out["paths"]["container"]["profiles_root"] == "/profiles"


def test_waits_until_the_pointer_appears(tmp_path, capsys):
    root = host_root(tmp_path)
    timer = threading.Timer(0.6, write_run, args=(root,))
    timer.start()
    try:
        started = time.monotonic()
        rc, out = run({"path": pointer_path(root), "timeout": 20, "sleep": 0.05}, capsys)
    finally:
        timer.join()
    assert rc == 0 and out["run_id"] == RUN_ID
    assert 0.5 < time.monotonic() - started < 5


def test_times_out_with_pointer_timeout(tmp_path, capsys):
    root = host_root(tmp_path)
    started = time.monotonic()
    rc, out = run({"path": pointer_path(root), "timeout": 0.5, "sleep": 0.05}, capsys)
    assert rc == 1 and out["error_type"] == "pointer_timeout"
    assert "did not appear within 0.5 s" in out["msg"]
    assert time.monotonic() - started < 5


def test_a_stopped_container_fails_at_once_with_its_logs(tmp_path, capsys, docker):
    path, configure, calls = docker
    configure(state=EXITED, logs="permissions_unexpected: /profiles is owned by root (uid 0), expected uid 4242\n")
    root = host_root(tmp_path)
    started = time.monotonic()
    rc, out = run({"path": pointer_path(root), "timeout": 60, "container": "sglang-prep", "docker_cli": path}, capsys)
    assert rc == 1 and out["error_type"] == "container_not_running"
    assert "owned by root" in out["msg"] and out["log_tail"]
    assert time.monotonic() - started < 10  # not the 60 s timeout


def test_a_running_container_is_waited_for(tmp_path, capsys, docker):
    path, configure, calls = docker
    configure(state=RUNNING)
    root = host_root(tmp_path)
    timer = threading.Timer(0.4, write_run, args=(root,))
    timer.start()
    try:
        rc, out = run({"path": pointer_path(root), "timeout": 20, "container": "sglang-prep", "docker_cli": path}, capsys)
    finally:
        timer.join()
    assert rc == 0 and out["run_id"] == RUN_ID
    assert any(c[0] == "inspect" for c in calls())


def test_garbage_pointer_is_bad_pointer(tmp_path, capsys):
    root = host_root(tmp_path)
    with open(pointer_path(root), "w") as handle:
        handle.write("not a pointer\n")
    rc, out = run({"path": pointer_path(root)}, capsys)
    assert rc == 1 and out["error_type"] == "bad_pointer" and "not KEY=VALUE" in out["msg"]


def test_pointer_without_host_path_is_bad_pointer(tmp_path, capsys):
    root = host_root(tmp_path)
    write_run(root, host_key=False)
    rc, out = run({"path": pointer_path(root)}, capsys)
    assert rc == 1 and out["error_type"] == "bad_pointer" and contract.POINTER_HOST_KEY in out["msg"]


def test_pointer_to_a_missing_manifest_is_bad_manifest(tmp_path, capsys):
    root = host_root(tmp_path)
    os.remove(write_run(root))
    rc, out = run({"path": pointer_path(root)}, capsys)
    assert rc == 1 and out["error_type"] == "bad_manifest" and "does not exist" in out["msg"]


def test_incomplete_manifest_is_bad_manifest(tmp_path, capsys):
    root = host_root(tmp_path)
    host_manifest = write_run(root)
    with open(host_manifest, "w") as handle:
        json.dump({"container_run_id": RUN_ID}, handle)
    rc, out = run({"path": pointer_path(root)}, capsys)
    assert rc == 1 and out["error_type"] == "bad_manifest" and "lacks" in out["msg"]


def test_files_of_another_owner_are_refused_with_both_owners(tmp_path, capsys):
    root = host_root(tmp_path)
    write_run(root)
    other = os.getuid() + 4242
    rc, out = run({"path": pointer_path(root), "expected_uid": other}, capsys)
    assert rc == 1 and out["error_type"] == "permissions_unexpected"
    assert "uid %d" % os.getuid() in out["msg"] and "uid %d" % other in out["msg"]
    assert "chown" in out["msg"]


def test_check_mode_does_not_wait_for_a_missing_pointer(tmp_path, capsys):
    root = host_root(tmp_path)
    started = time.monotonic()
    rc, out = run({"path": pointer_path(root), "timeout": 60}, capsys, check_mode=True)
    assert rc == 0 and out["found"] is False and out["changed"] is False
    assert "does not wait" in out["msg"]
    assert time.monotonic() - started < 5


def test_check_mode_reads_an_existing_pointer(tmp_path, capsys):
    root = host_root(tmp_path)
    write_run(root)
    rc, out = run({"path": pointer_path(root)}, capsys, check_mode=True)
    assert rc == 0 and out["run_id"] == RUN_ID


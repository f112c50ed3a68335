"""Stage locks (flock): waiting with heartbeats, lock_timeout naming the holder, no stale lock after kill -9."""

import signal
import subprocess
import sys
import time

import pytest

from unit_support.paths import collections_env

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import locks
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError

HOLDER = """
import sys, time
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import locks
lock = locks.StageLock(sys.argv[1], "deep_gemm", "run-holder", 5, lambda m: None).acquire()
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the lock (the way a concurrent stage run would)."""
    path = str(tmp_path / "deep_gemm.lock")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdout=subprocess.PIPE, env=collections_env())
    assert proc.stdout.readline().strip() == b"held"
    yield path, proc
    proc.kill()
    proc.wait()


def test_acquire_and_release(tmp_path):
    path = str(tmp_path / "x.lock")
    lock = locks.StageLock(path, "x", "run-1", 1, lambda m: None).acquire()
    assert locks.is_locked(path)
    lock.release()
    assert not locks.is_locked(path)


def test_timeout_names_the_live_holder_and_heartbeats(holder):
    path, proc = holder
    said = []
    start = time.monotonic()
    with pytest.raises(PrepError) as err:
        locks.StageLock(path, "deep_gemm", "run-2", 0.6, said.append, heartbeat_s=0.2).acquire()
    waited = time.monotonic() - start
    assert err.value.error_type == "lock_timeout"
    assert "pid %d" % proc.pid in err.value.message and "run-holder" in err.value.message
    assert err.value.details["holder_pid"] == proc.pid
    assert 0.5 < waited < 1.5
    assert len(said) >= 2 and all("pid %d" % proc.pid in line for line in said)


def test_kill_9_of_the_holder_frees_the_lock_at_once(holder):
    path, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    start = time.monotonic()
    lock = locks.StageLock(path, "deep_gemm", "run-3", 5, lambda m: None).acquire()
    assert time.monotonic() - start < 0.5
    lock.release()


def test_waiter_gets_the_lock_as_soon_as_it_is_released(holder):
    path, proc = holder
    start = time.monotonic()
    # release by ending the holder after 0.3 s, while we wait with a 5 s deadline
    killer = subprocess.Popen([sys.executable, "-c", "import os, time; time.sleep(0.3); os.kill(%d, 9)" % proc.pid])
    lock = locks.StageLock(path, "deep_gemm", "run-4", 5, lambda m: None).acquire()
    elapsed = time.monotonic() - start
    killer.wait()
    lock.release()
    assert elapsed < 1.0


def test_marker_roundtrip(tmp_path):
    path = str(tmp_path / "deep_gemm.json")
    assert locks.read_marker(path) is None
    locks.write_marker(path, {"owner_pid": 1, "started_at": "t", "run_id": "r"})
    assert locks.read_marker(path) == {"owner_pid": 1, "started_at": "t", "run_id": "r"}
    with open(path, "w") as handle:
        handle.write("garbage")
    assert locks.read_marker(path) == {}  # present but unreadable still counts as present
    locks.remove_marker(path)
    locks.remove_marker(path)
    assert locks.read_marker(path) is None

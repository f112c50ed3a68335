# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-stage locks (fcntl.flock, so a killed holder never leaves a stale lock) and in-progress markers.

The lock file holds a small JSON record of its current holder so a waiter can name it.
The marker profiles/.in_progress/<stage>.json is created when a stage starts working and removed
only when it finished successfully: a marker left behind means the cache may be partial.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time

from .. import jsonio
from . import procs
from ..errors import PrepError

POLL_S = 0.1
HEARTBEAT_S = 5.0
# The holder name of the long-lived serving server (serve.py): it keeps the server-port lock while it serves, so a
# stage server that needs the port is refused at once (port_busy) instead of waiting for a server that never ends.
SERVING_HOLDER = "serve"


def _read_holder(fd):
    try:
        raw = os.pread(fd, 4096, 0)
        return json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        return {}


def describe_holder(holder):
    pid = holder.get("pid")
    if not pid:
        return "an unknown process"
    text = "pid %s" % pid
    cmd = procs.cmdline(pid)
    if cmd:
        text += " (%s)" % " ".join(cmd)[:200]
    if holder.get("run_id"):
        text += ", run %s" % holder["run_id"]
    if holder.get("since"):
        text += ", holding since %s" % holder["since"]
    return text


class StageLock(object):
    """Exclusive flock on profiles/.locks/<stage>.lock, waited for with heartbeats and a deadline."""

    def __init__(self, path, stage, run_id, timeout_s, say, heartbeat_s=HEARTBEAT_S, what=None):
        """``what``: the shared thing the lock guards when it is not the stage itself (e.g. the server port)."""
        self.what = what
        self.path = path
        self.stage = stage
        self.run_id = run_id
        self.timeout_s = float(timeout_s)
        self.say = say
        self.heartbeat_s = heartbeat_s
        self.fd = None

    def acquire(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        start = time.monotonic()
        deadline = start + self.timeout_s
        next_beat = start
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                now = time.monotonic()
                holder = _read_holder(fd)
                if self.what and holder.get("stage") == SERVING_HOLDER and self.stage != SERVING_HOLDER:
                    raise PrepError(
                        "port_busy", "stage %s: %s is held by the serving server (%s), which serves until it is "
                        "stopped. Stop it first (ansible-playbook sglang.prep.stop), or prime through serve "
                        "(ansible-playbook sglang.prep.serve -e serve_prime=true), which stops it, primes and "
                        "starts it again" % (self.stage, self.what, describe_holder(holder)),
                        lock=self.path, holder_pid=holder.get("pid"), holder_stage=SERVING_HOLDER)
                if now >= deadline:
                    if self.what:
                        why = ("Another prime of this host is running a stage server (%s) on %s: wait for it to "
                               "finish (or stop it), or raise the lock timeout."
                               % (holder.get("stage") or "unknown stage", self.what))
                    else:
                        why = ("Another run of this stage is in progress: wait for it to finish (or stop it), or "
                               "raise the lock timeout.")
                    raise PrepError(
                        "lock_timeout", "stage %s: lock %s is still held by %s after waiting %.1f s. %s"
                        % (self.stage, self.path, describe_holder(holder), now - start, why),
                        lock=self.path, holder_pid=holder.get("pid"), holder_stage=holder.get("stage"),
                        waited_s=round(now - start, 3))
                if now >= next_beat:
                    self.say("waiting for lock %s held by %s (%.0f s of %.0f s)"
                             % (self.path, describe_holder(holder), now - start, self.timeout_s))
                    next_beat = now + self.heartbeat_s
                time.sleep(min(POLL_S, max(0.0, deadline - now)))
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.write_holder()
        return self

    def write_holder(self, pid=None):
        """Record who holds the lock (``pid``: a child that took it over, as the serving server's supervisor does)."""
        record = json.dumps({"pid": pid or os.getpid(), "run_id": self.run_id, "stage": self.stage,
                             "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, record.encode("utf-8"), 0)

    def release(self):
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def is_locked(path):
    """True when some process holds the flock on path (a probe that never blocks and never creates)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


# ---------------------------------------------------------------- in-progress markers

def read_marker(path):
    """The marker dict, {} for an unreadable marker, None when there is none."""
    try:
        data = jsonio.read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_marker(path, info):
    jsonio.write_json_atomic(path, info)


def remove_marker(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

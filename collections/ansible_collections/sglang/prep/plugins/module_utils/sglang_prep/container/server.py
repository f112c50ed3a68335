# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lifecycle of one short-lived stage process (an SGLang server or the MoE tuner).

Port check (fail fast, never another port) -> true subprocess in its own session and process
group, output appended line by line to the session log (and a stage log) -> readiness on /ready
(or /health) polled every 0.1 s while the process is watched, so an exit is noticed at once ->
POST /generate -> teardown of the whole process group: SIGTERM, 10 s, SIGKILL -> port verified free.
"""

from __future__ import annotations

import codecs
import ctypes
import errno
import json
import os
import signal
import subprocess
import threading
import time

from . import httpc, procs
from ..errors import PrepError
from ..server_flags import REDACTED
from .validate import split_lines

POLL_S = 0.1
TEARDOWN_POLL_S = 0.02
TERM_GRACE_S = 10.0
KILL_GRACE_S = 5.0
PORT_FREE_WAIT_S = 5.0
GENERATE_TIMEOUT_S = 600.0
GENERATE_BODY = {"input_ids": [0, 1, 2, 3], "sampling_params": {"max_new_tokens": 8, "temperature": 0}}
READY_PATHS = ("/ready", "/health")
PR_SET_PDEATHSIG = 1

try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
except (OSError, TypeError):
    _LIBC = None


def _die_with_parent():
    """In the child, before exec: get SIGKILL if the stage runner dies (kill -9 included)."""
    if _LIBC is not None:
        try:
            _LIBC.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except Exception:
            pass


class OutputPump(threading.Thread):
    """Copies a child's combined stdout/stderr to log files, line by line, and feeds a LogScan."""

    def __init__(self, fd, sinks, scan, secrets=()):
        super().__init__(name="sglang-prep-output", daemon=True)
        self.fd = fd
        self.sinks = sinks  # [(binary append handle, line prefix bytes)]
        self.scan = scan
        self.write_error = None  # (path, OSError) of the first log write the disk refused (ENOSPC, EDQUOT)
        self.secrets = [secret for secret in secrets if secret]  # shown as REDACTED in every line (logs, log tails)

    def _emit(self, line):
        for secret in self.secrets:  # SGLang logs its server_args, api_key included
            line = line.replace(secret, REDACTED)
        if self.scan is not None:
            self.scan.feed(line)
        data = line.encode("utf-8", "replace") + b"\n"
        for handle, prefix in self.sinks:
            try:
                handle.write(prefix + data)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT) and self.write_error is None:
                    self.write_error = (getattr(handle, "name", None), exc)
            except ValueError:
                pass

    def run(self):
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            lines, pending = split_lines(pending + decoder.decode(chunk))
            for line in lines:
                self._emit(line)
        pending += decoder.decode(b"", final=True)
        if pending:
            self._emit(pending)
        try:
            os.close(self.fd)
        except OSError:
            pass


class ManagedProcess(object):
    """A subprocess in its own process group with its output pumped to log sinks."""

    def __init__(self, argv, env, sinks, scan, say, cwd=None, secrets=()):
        self.argv = list(argv)
        self.secrets = list(secrets)
        self.env = env
        self.sinks = sinks
        self.scan = scan
        self.say = say
        self.cwd = cwd
        self.proc = None
        self.pump = None
        self.started = None
        self.teardown = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        read_fd, write_fd = os.pipe()
        try:
            self.proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
                self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=write_fd,
                stderr=write_fd, close_fds=True, start_new_session=True, preexec_fn=_die_with_parent)
        except OSError as exc:
            os.close(read_fd)
            raise PrepError("server_exited_early", "could not start %s: %s" % (self.argv[0], exc.strerror or exc))
        finally:
            os.close(write_fd)
        self.started = time.monotonic()
        self.pump = OutputPump(read_fd, self.sinks, self.scan, self.secrets)
        self.pump.start()
        return self.proc.pid

    def poll(self):
        return self.proc.poll() if self.proc else None

    def wait_exit(self, timeout=None):
        """Wait for the process (its exit code), or None at the deadline."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def drain(self, timeout=2.0):
        """Let the output pump catch up (after the process exited)."""
        if self.pump is not None:
            self.pump.join(timeout)

    def _group_alive(self):
        self.proc.poll()
        return bool(procs.group_members(self.proc.pid))

    def _wait_group(self, seconds):
        deadline = time.monotonic() + seconds
        while self._group_alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(TEARDOWN_POLL_S)
        return True

    def stop(self):
        """Tear down the whole process group: SIGTERM, up to 10 s, then SIGKILL. Idempotent."""
        if self.proc is None or self.teardown is not None:
            return self.teardown
        start = time.monotonic()
        sent = None
        if self._group_alive():
            sent = "SIGTERM"
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not self._wait_group(TERM_GRACE_S):
                sent = "SIGKILL"
                self.say("pid %d ignored SIGTERM for %.0f s; sending SIGKILL to its process group"
                         % (self.proc.pid, TERM_GRACE_S))
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._wait_group(KILL_GRACE_S)
        exit_code = self.wait_exit(KILL_GRACE_S)
        self.drain()
        self.teardown = {"signal": sent, "duration_s": round(time.monotonic() - start, 3),
                         "exit_code": exit_code, "group_left": procs.group_members(self.proc.pid)}
        return self.teardown


class StageServer(ManagedProcess):
    """An SGLang server on a strict port: readiness, one generate, teardown."""

    def __init__(self, argv, env, sinks, scan, say, host, port, secrets=(), api_key=None):
        super().__init__(argv, env, sinks, scan, say, secrets=secrets)
        # SGLang's --api-key guards every endpoint but /health*, /ready*, /metrics* (srt/utils/auth.py): each
        # request here presents it as a bearer token
        self.auth = httpc.bearer(api_key)
        self.host = host
        self.port = int(port)
        self.base = "http://%s:%d" % (host, self.port)
        self.ready_s = None
        self.ready_path = None

    def check_port(self):
        if not procs.port_is_free(self.port, self.host):
            raise PrepError(
                "port_busy",
                "port %d on %s is already in use by %s. Stage servers never fall back to another port: stop "
                "that process (or restart the container) and re-run." % (
                    self.port, self.host, procs.describe_port_holders(self.port)),
                port=self.port, holders=[{"pid": p, "cmdline": c} for p, c in procs.port_holders(self.port)])

    def _exited(self, phase):
        code = self.proc.returncode
        self.drain()
        raise PrepError(
            "server_exited_early",
            "the server exited with code %s %s (%.1f s after start); the reason is in the last log lines "
            "(log_tail) and in the session log" % (code, phase, time.monotonic() - self.started),
            exit_code=code)

    def wait_ready(self, timeout_s):
        """Poll /ready (then /health if /ready does not exist) until 200; watch the process meanwhile."""
        deadline = self.started + float(timeout_s)
        paths = list(READY_PATHS)
        last = None
        while True:
            if self.proc.poll() is not None:
                self._exited("before it was ready")
            now = time.monotonic()
            if now >= deadline:
                raise PrepError(
                    "readiness_timeout",
                    "the server did not become ready on %s within %.0f s (last answer: %s); it is alive but "
                    "stuck or slow: read the session log, or raise --ready-timeout if it is still compiling"
                    % (self.base + paths[0], float(timeout_s), last.describe() if last else "none"),
                    timeout_s=float(timeout_s))
            resp = httpc.call(self.base + paths[0], timeout=max(0.2, min(5.0, deadline - now)), headers=self.auth)
            if resp.status == 200:
                self.ready_s = round(time.monotonic() - self.started, 3)
                self.ready_path = paths[0]
                return self.ready_s
            if resp.status == 404 and len(paths) > 1:
                paths.pop(0)  # an older server without /ready
                continue
            last = resp
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def get_json(self, path, timeout=5.0):
        resp = httpc.call(self.base + path, timeout=timeout, headers=self.auth)
        return resp.json() if resp.status == 200 else None

    def generate(self, body=None, what=None, timeout_s=GENERATE_TIMEOUT_S):
        """POST /generate (the warm-up request unless ``body`` is given; ``what`` names it in a failure)."""
        body = GENERATE_BODY if body is None else body
        resp = httpc.call(self.base + "/generate", payload=body, timeout=timeout_s, headers=self.auth)
        if resp.status == 200:
            return resp.json()
        if self.proc.poll() is not None:
            self._exited("during POST /generate")
        shown = what or json.dumps(body)
        served = "this request" if what else "the warm-up request"
        raise PrepError(
            "generate_failed",
            "POST /generate %s failed: %s. The server came up but cannot serve %s; "
            "see log_tail and the session log" % (shown, resp.describe(), served),
            http_status=resp.status)

    def port_free_after(self):
        """True once the port can be bound again (waits briefly for the kernel to release it)."""
        deadline = time.monotonic() + PORT_FREE_WAIT_S
        while not procs.port_is_free(self.port, self.host):
            if time.monotonic() >= deadline:
                return False
            time.sleep(TEARDOWN_POLL_S)
        return True


def kill_orphan_group(pgid, hint, say):
    """Kill what is left of a stage process group from a runner that died; True if it had members."""
    members = procs.group_members(pgid) if pgid else []
    if not members:
        return False
    if hint and not any(hint in " ".join(procs.cmdline(pid)) for pid in members):
        return False  # the pgid was reused by something else
    say("killing process group %d left by a stage runner that died (%s)" % (
        pgid, "; ".join("%d %s" % (p, " ".join(procs.cmdline(p))[:120]) for p in members)))
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + KILL_GRACE_S
    while procs.group_members(pgid) and time.monotonic() < deadline:
        time.sleep(TEARDOWN_POLL_S)
    return True

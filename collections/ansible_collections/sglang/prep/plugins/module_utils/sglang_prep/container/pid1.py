# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PID 1 duties of the container init: signal forwarding, reaping, a prompt exit.

While init starts up, SIGTERM/SIGINT only set a flag that the start-up steps check. After the
pointer is published, PID 1 blocks SIGTERM, SIGINT and SIGCHLD and sleeps in sigwaitinfo():
no polling. SIGCHLD reaps every child, including orphans reparented to PID 1 (a stage server
whose ``docker exec`` parent went away). SIGTERM/SIGINT is forwarded to the services (and, as
the namespace's PID 1, to every process in the container), stragglers get SIGKILL after a
short grace, and init exits well inside docker stop's 10 s.
"""

from __future__ import annotations

import os
import signal
import time

from . import services as services_mod

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
WAIT_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}


class StopFlag:
    """Records the first SIGTERM/SIGINT during start-up (handlers only set the flag)."""

    def __init__(self):
        self.signum = None
        self.main_pid = os.getpid()

    def install(self):
        self.main_pid = os.getpid()
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, _frame):
        if os.getpid() != self.main_pid:  # a forked child that has not reset its handlers yet
            os._exit(128 + signum)  # pylint: disable=protected-access
        if self.signum is None:
            self.signum = signum

    def __call__(self):
        return self.signum is not None


def is_namespace_init():
    return os.getpid() == 1


def reap_children():
    """Reap every exited child; returns [(pid, exit code)]."""
    reaped = []
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, os.waitstatus_to_exitcode(wait_status)))


def signal_name(signum):
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


class Supervisor:
    """Waits for signals after start-up and stops everything on SIGTERM/SIGINT."""

    def __init__(self, services, flag, note, grace_s=3.0):
        self.services = [svc for svc in services if svc.pid is not None]
        self.by_pid = {svc.pid: svc for svc in self.services}
        self.flag = flag
        self.note = note  # note(message): session log + stderr
        self.grace_s = grace_s

    def _record(self, reaped, quiet=False):
        for pid, code in reaped:
            svc = self.by_pid.get(pid)
            if svc is None or svc.exit_code is not None:
                continue
            svc.exit_code = code
            if not quiet:
                self.note("service %s (pid %d) exited with %s; it is not restarted (restart the container "
                          "to get it back)" % (svc.name, pid, services_mod.describe_exit(code)))

    def alive(self):
        return [svc for svc in self.services if svc.exit_code is None]

    def serve(self):
        """Block until SIGTERM/SIGINT, reaping children as they exit. Returns the stop signal."""
        signal.pthread_sigmask(signal.SIG_BLOCK, WAIT_SIGNALS)
        self._record(reap_children())
        signum = self.flag.signum
        while signum is None:
            info = signal.sigwaitinfo(WAIT_SIGNALS)
            if info.si_signo == signal.SIGCHLD:
                self._record(reap_children())
            else:
                signum = info.si_signo
        return signum

    def shutdown(self, signum):
        """Forward ``signum``, wait up to the grace period, SIGKILL what is left. Returns a summary."""
        started = time.monotonic()
        signal.pthread_sigmask(signal.SIG_BLOCK, WAIT_SIGNALS)
        names = ", ".join(svc.name for svc in self.alive()) or "(no services running)"
        self.note("%s received: stopping %s" % (signal_name(signum), names))
        if is_namespace_init():
            _kill_all(signum)  # services and anything started by docker exec
        else:
            for svc in self.alive():
                services_mod.signal_group(svc, signum)
        deadline = started + self.grace_s
        while self.alive() or (is_namespace_init() and other_processes()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # Services are children (SIGCHLD wakes us); processes started by docker exec are not,
            # so look again every 50 ms until the deadline.
            signal.sigtimedwait({signal.SIGCHLD}, min(remaining, 0.05))
            self._record(reap_children(), quiet=True)
        killed = [svc.name for svc in self.alive()]
        others = other_processes() if is_namespace_init() else []
        if others:
            killed.append("%d other process(es) %s" % (len(others), _commands(others)))
        for svc in self.alive():
            services_mod.signal_group(svc, signal.SIGKILL)
        if others:
            _kill_all(signal.SIGKILL)
        for svc in self.alive():
            try:
                _pid, wait_status = os.waitpid(svc.pid, 0)
                svc.exit_code = os.waitstatus_to_exitcode(wait_status)
            except ChildProcessError:
                svc.exit_code = -1
        reap_children()
        summary = ", ".join("%s: %s" % (svc.name, services_mod.describe_exit(svc.exit_code)) for svc in self.services)
        late = "; killed after %gs: %s" % (self.grace_s, ", ".join(killed)) if killed else ""
        self.note("stopped in %.2fs (%s)%s" % (time.monotonic() - started, summary or "no services", late))
        return {"killed": killed, "duration_s": round(time.monotonic() - started, 3)}


def other_processes(proc="/proc"):
    """Live processes in this PID namespace other than PID 1 and this process (zombies excluded)."""
    pids = []
    for name in os.listdir(proc):
        if not name.isdigit() or int(name) in (1, os.getpid()):
            continue
        try:
            with open("%s/%s/stat" % (proc, name), encoding="utf-8", errors="replace") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            pids.append(int(name))
    return pids


def _commands(pids, proc="/proc"):
    names = []
    for pid in pids[:5]:
        try:
            with open("%s/%d/comm" % (proc, pid), encoding="utf-8", errors="replace") as handle:
                names.append("%s[%d]" % (handle.read().strip(), pid))
        except OSError:
            names.append("[%d]" % pid)
    return " ".join(names) + (" ..." if len(pids) > 5 else "")


def _kill_all(signum):
    """kill(-1): every process in the container's PID namespace except PID 1 itself."""
    try:
        os.kill(-1, signum)
    except ProcessLookupError:
        pass

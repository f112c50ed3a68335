"""PID 1 duties without Docker: reaping orphans, forwarding SIGTERM, a prompt exit.

The supervisor runs in a separate Python process made a child subreaper (what PID 1 is in a
container), so orphans are reparented to it exactly as they are to the container init.
"""

import signal
import subprocess
import sys
import textwrap
import time

from unit_support.paths import collections_env

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import pid1

SUPERVISED = textwrap.dedent("""
    import ctypes, os, sys, time
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import identity, pid1, services

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER, like PID 1
    flag = pid1.StopFlag().install()
    me = identity.Devuser("devuser", os.getuid(), os.getgid(), "/home/devuser")
    log = %(log)r
    stubborn = services.Service("node_exporter", sys.executable, [], services.spawn(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"],
        me, log, dict(os.environ)), log)
    polite = services.Service("prometheus", sys.executable, [], services.spawn(
        [sys.executable, "-c", "import time; time.sleep(60)"], me, log, dict(os.environ)), log)
    # an orphan: its parent exits at once, it exits a moment later and must be reaped by us
    services.spawn(["/bin/sh", "-c", "sleep 0.5 & exit 0"], me, log, dict(os.environ))
    notes = []
    sup = pid1.Supervisor([stubborn, polite], flag, lambda m: (notes.append(m), print("NOTE", m, flush=True)), grace_s=0.5)
    print("READY", flush=True)
    signum = sup.serve()
    result = sup.shutdown(signum)
    print("KILLED", ",".join(result["killed"]), flush=True)
    print("EXITS", stubborn.exit_code, polite.exit_code, flush=True)
""")


def children_of(pid):
    """[(stat, command name)] of the children of ``pid``."""
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "stat=,comm="], capture_output=True, text=True).stdout
    return [tuple(line.split(None, 1)) for line in out.splitlines() if line.strip()]


def wait_for(condition, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met within %ss" % timeout_s
        time.sleep(0.02)


def test_reaps_orphans_forwards_sigterm_and_kills_stragglers(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISED % {"log": str(tmp_path / "log")}],
                            stdout=subprocess.PIPE, text=True, env=collections_env())
    try:
        assert proc.stdout.readline().strip() == "READY"
        # the orphaned sleep was reparented to the supervisor ...
        wait_for(lambda: any(comm == "sleep" for _stat, comm in children_of(proc.pid)))
        # ... and once it exits it is reaped: no zombie is left behind
        wait_for(lambda: not any(comm == "sleep" for _stat, comm in children_of(proc.pid)))
        assert [c for c in children_of(proc.pid) if c[0].startswith("Z")] == []
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        elapsed = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert elapsed < 2.0, "shutdown took %.2fs" % elapsed
    assert "KILLED node_exporter\n" in out  # ignored SIGTERM: SIGKILL after the grace
    assert "EXITS -9 -15\n" in out  # the polite one ended on the forwarded SIGTERM
    assert "NOTE SIGTERM received: stopping node_exporter, prometheus" in out


def test_stop_flag_only_records_the_first_signal():
    flag = pid1.StopFlag()
    assert not flag()
    flag._handler(signal.SIGINT, None)
    flag._handler(signal.SIGTERM, None)
    assert flag() and flag.signum == signal.SIGINT


def test_other_processes_ignores_zombies_and_pid1(tmp_path):
    proc_root = tmp_path / "proc"
    for pid, state in ((1, "S"), (7, "S"), (8, "Z"), (9, "R")):
        (proc_root / str(pid)).mkdir(parents=True)
        (proc_root / str(pid) / "stat").write_text("%d (some (odd) name) %s 1 1 1\n" % (pid, state))
    (proc_root / "self").mkdir()
    assert sorted(pid1.other_processes(str(proc_root))) == [7, 9]

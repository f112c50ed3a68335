"""Server lifecycle against a small fake HTTP server: readiness latency, early exit, teardown, port policy."""

import errno
import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from unit_support.paths import collections_env
from harness import free_port

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import procs, server
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.validate import LogScan

# A test double with SGLang's endpoint semantics: /ready and /health 503 until ready, POST /generate.
FAKE_SERVER = textwrap.dedent("""\
    import json, os, signal, subprocess, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    env = os.environ.get
    port = int(sys.argv[1])
    state = {"ready": False}
    if env("FAKE_IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if env("FAKE_CHILD") == "1":
        code = "import signal, time\\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\\ntime.sleep(600)"
        child = subprocess.Popen([sys.executable, "-c", code])
        print("child %d" % child.pid, flush=True)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code, body=b""):
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/ready" and env("FAKE_NO_READY") == "1":
                self.reply(404)
            elif self.path in ("/ready", "/health"):
                self.reply(200 if state["ready"] else 503)
            else:
                self.reply(404)

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = int(env("FAKE_GENERATE_STATUS", "200"))
            self.reply(status, json.dumps({"text": "x", "meta_info": {"prompt_tokens": 4}}).encode())

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)

    def become_ready():
        time.sleep(float(env("FAKE_READY_AFTER", "0")))
        if env("FAKE_READY_FILE"):  # written before the server answers ready: a test that saw it ready reads it whole
            with open(env("FAKE_READY_FILE"), "w") as handle:
                handle.write(repr(time.time()))
        state["ready"] = True
        print("The server is fired up and ready to roll!", flush=True)

    if env("FAKE_EXIT_AFTER"):
        threading.Timer(float(env("FAKE_EXIT_AFTER")), lambda: os._exit(7)).start()
    print("KV Cache is allocated. dtype: torch.float8_e4m3fn, #tokens: 10, K size: 1 GB, V size: 1 GB", flush=True)
    threading.Thread(target=become_ready, daemon=True).start()
    httpd.serve_forever(poll_interval=0.05)
    """)




@pytest.fixture
def make_server(tmp_path):
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER)
    started = []

    def make(**env):
        port = free_port()
        full_env = dict(os.environ)
        full_env.update((k, str(v)) for k, v in env.items())
        sink = open(str(tmp_path / ("session-%d.log" % port)), "ab", buffering=0)
        scan = LogScan()
        srv = server.StageServer([sys.executable, str(script), str(port)], full_env, [(sink, b"[fake] ")], scan,
                                 lambda m: None, "127.0.0.1", port)
        srv.sink_path = sink.name
        started.append((srv, sink))
        return srv

    yield make
    for srv, sink in started:
        srv.stop()
        sink.close()


def test_readiness_is_seen_within_one_second_of_ready(make_server, tmp_path):
    ready_file = tmp_path / "ready_at"
    srv = make_server(FAKE_READY_AFTER=1.2, FAKE_READY_FILE=ready_file)
    srv.check_port()
    srv.start()
    srv.wait_ready(30)
    seen = time.time()
    ready_at = float(ready_file.read_text())
    assert 0 <= seen - ready_at < 1.0
    assert srv.ready_path == "/ready"


def test_well_behaved_server_is_torn_down_in_under_two_seconds(make_server):
    srv = make_server()
    srv.start()
    srv.wait_ready(30)
    srv.generate(10)
    teardown = srv.stop()
    assert teardown["signal"] == "SIGTERM" and teardown["duration_s"] < 2.0
    assert teardown["group_left"] == []
    assert srv.port_free_after()
    assert procs.port_is_free(srv.port)


def test_an_exiting_server_is_noticed_at_once_not_at_the_timeout(make_server):
    srv = make_server(FAKE_READY_AFTER=100, FAKE_EXIT_AFTER=0.5)
    srv.start()
    start = time.monotonic()
    with pytest.raises(PrepError) as err:
        srv.wait_ready(120)
    assert time.monotonic() - start < 1.5
    assert err.value.error_type == "server_exited_early"
    assert err.value.details["exit_code"] == 7 and "code 7" in err.value.message


def test_readiness_timeout_on_a_live_but_stuck_server(make_server):
    srv = make_server(FAKE_READY_AFTER=100)
    srv.start()
    start = time.monotonic()
    with pytest.raises(PrepError) as err:
        srv.wait_ready(0.8)
    assert err.value.error_type == "readiness_timeout"
    assert "503" in err.value.message
    assert time.monotonic() - start < 1.5
    assert srv.poll() is None  # still alive: the engine tears it down


def test_health_is_used_when_the_server_has_no_ready_endpoint(make_server):
    srv = make_server(FAKE_NO_READY=1)
    srv.start()
    srv.wait_ready(30)
    assert srv.ready_path == "/health"


def test_generate_failure_reports_status_and_body(make_server):
    srv = make_server(FAKE_GENERATE_STATUS=500)
    srv.start()
    srv.wait_ready(30)
    with pytest.raises(PrepError) as err:
        srv.generate(10)
    assert err.value.error_type == "generate_failed"
    assert "HTTP 500" in err.value.message and err.value.details["http_status"] == 500


def test_sigterm_ignored_means_sigkill_for_the_whole_group(make_server, monkeypatch):
    monkeypatch.setattr(server, "TERM_GRACE_S", 0.5)  # the real 10 s is exercised by the integration suite
    srv = make_server(FAKE_IGNORE_TERM=1, FAKE_CHILD=1)
    srv.start()
    srv.wait_ready(30)
    teardown = srv.stop()
    assert teardown["signal"] == "SIGKILL"
    assert teardown["exit_code"] == -signal.SIGKILL
    assert teardown["group_left"] == []  # the child that also ignored SIGTERM is gone too
    assert srv.port_free_after()


def test_output_goes_to_the_log_with_a_prefix_and_is_scanned(make_server):
    srv = make_server()
    srv.start()
    srv.wait_ready(30)
    srv.stop()
    text = open(srv.sink_path).read()
    assert "[fake] The server is fired up and ready to roll!" in text
    assert srv.scan.kv_dtypes == ["torch.float8_e4m3fn"] and srv.scan.ready_line


def test_busy_port_fails_fast_naming_the_holder():
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    try:
        srv = server.StageServer(["true"], {}, [], None, lambda m: None, "127.0.0.1", port)
        with pytest.raises(PrepError) as err:
            srv.check_port()
        assert err.value.error_type == "port_busy"
        assert "port %d" % port in err.value.message and "pid %d" % os.getpid() in err.value.message
        assert err.value.details["holders"][0]["pid"] == os.getpid()
        assert srv.proc is None  # nothing was started, and no other port was tried
    finally:
        sock.close()


def test_orphan_group_of_a_dead_runner_is_killed_only_when_it_matches():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "sglang-orphan-test"],
                            start_new_session=True)
    try:
        assert server.kill_orphan_group(proc.pid, "some-other-process", lambda m: None) is False
        assert proc.poll() is None
        assert server.kill_orphan_group(proc.pid, "sglang-orphan-test", lambda m: None) is True
        assert proc.wait(5) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


RUNNER = """
import sys, time
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import server
proc = server.ManagedProcess([sys.executable, "-c", "import time; time.sleep(60)"], None, [], None, lambda m: None)
print(proc.start(), flush=True)
time.sleep(60)
"""


def test_kill_9_of_the_runner_takes_its_server_down():
    runner = subprocess.Popen([sys.executable, "-c", RUNNER], stdout=subprocess.PIPE, env=collections_env())
    child = int(runner.stdout.readline())
    assert procs.alive(child)
    runner.kill()
    runner.wait()
    deadline = time.monotonic() + 3
    while procs.alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not procs.alive(child)


def test_pump_handles_partial_utf8_and_a_last_line_without_newline(tmp_path):
    read_fd, write_fd = os.pipe()
    sink = io.BytesIO()
    scan = LogScan()
    pump = server.OutputPump(read_fd, [(sink, b"> ")], scan)
    pump.start()
    data = "café ready\nlast".encode("utf-8")
    os.write(write_fd, data[:3])
    os.write(write_fd, data[3:])
    os.close(write_fd)
    pump.join(2)
    assert sink.getvalue().decode("utf-8") == "> café ready\n> last\n"
    assert list(scan.tail) == ["café ready", "last"]


def test_a_log_line_of_a_full_disk_is_insufficient_disk():
    scan = LogScan()
    scan.feed("[2026-01-01 00:00:00] Scheduler hit an exception: Traceback (most recent call last):")
    scan.feed("OSError: [Errno 28] No space left on device: '/profiles/triton/ab/k.cubin'")
    error_type, message = scan.log_failure()
    assert error_type == "insufficient_disk" and "/profiles/triton/ab/k.cubin" in message and "free disk space" in message
    quota = LogScan()
    quota.feed("OSError: [Errno 122] Disk quota exceeded")
    assert quota.log_failure()[0] == "insufficient_disk"
    bind = LogScan()
    bind.feed("ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 30000): address in use")
    assert bind.log_failure() is None


def test_the_pump_keeps_the_first_write_the_disk_refused(tmp_path):
    read_fd, write_fd = os.pipe()
    sink = open("/dev/full", "ab", buffering=0)
    pump = server.OutputPump(read_fd, [(sink, b"[x] ")], None)
    pump.start()
    os.write(write_fd, b"one\ntwo\n")
    os.close(write_fd)
    pump.join(5)
    sink.close()
    path, exc = pump.write_error
    assert path == "/dev/full" and exc.errno == errno.ENOSPC


def test_the_output_pump_shows_no_secret_in_a_log_or_the_scan(tmp_path):
    """SGLang logs its server_args (api_key included): the pump masks the secret values it was given."""
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import server as server_mod
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.validate import LogScan
    log = tmp_path / "session.log"
    scan = LogScan()
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"server_args=ServerArgs(api_key='sk-planted-4f1c', port=30000)\nready\n")
    os.close(write_fd)
    with open(str(log), "ab", buffering=0) as handle:
        pump = server_mod.OutputPump(read_fd, [(handle, b"[s] ")], scan, secrets=["sk-planted-4f1c"])
        pump.start()
        pump.join(10)
    text = log.read_text()
    assert "sk-planted-4f1c" not in text and "api_key='<redacted>'" in text and "[s] ready" in text
    assert not [line for line in scan.tail if "sk-planted" in line]

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The long-lived serving server of a primed container, and the zero-JIT proof on it.

serve: plan every stage against the serving settings (plan.check: the same signatures prime records); a stage that
would run is refused with not_primed, naming the stage and the fields (``tp: 1 -> 2``), unless ``prime`` primes
first. Then the serving server is the serve check's own configuration (ServeCheckStage.build_command and
server_env: canonical settings, metrics on, the operator's extra server args, the cache environment, the
fail-on-miss switch), started on the run's server port by a detached supervisor that outlives the ``docker exec``:
it holds the host-wide server-port lock for as long as the server lives, pumps the server's output (secrets
masked) to ``container_runs/<run_id>/serve/server.log`` and tears the process group down on SIGTERM.

Once ready, the serve check's shapes (servecheck.requests) are driven against the live server with a snapshot of
every cache before its start and after the requests, and its log scanned for JIT lines (servecheck.judge). The
check only reads the caches: a failure leaves the server running unless ``stop_on_jit``. The result is written as
the ``serve`` record beside the stage JSONs, then the aggregate, then the metrics.

A server already running with the same settings digest is left alone (``changed`` false); other settings restart it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time

from .. import contract, jsonio, manifest, registry, server_flags
from ..errors import PrepError
from . import container_mode, engine, httpc, ledger, locks, metrics, plan, procs, prometheus_config, servecheck, server, state
from .layout import Layout
from .servecheck_stage import ServeCheckStage
from .validate import LogScan

RECORD = "serve"
SERVE_DIR = "serve"
LOG_PREFIX = b"[serve server] "
STOP_WAIT_S = server.TERM_GRACE_S + server.KILL_GRACE_S + 5.0
SUPERVISOR_START_S = 10.0
# The environment that decides what the server compiles and where it reads its caches (the rest of the container's
# environment is the container's)
SETTINGS_ENV = tuple(sorted(set(name for _path, name in contract.CACHES.values()) | set(contract.SERVER_ENV)
                            | set(contract.SERVE_CHECK_ENV) | {contract.ENV_STATIC_CUDA_LAUNCHER, contract.ENV_LONGER_CONTEXT,
                                                               "DG_JIT_CACHE_DIR"}))


def serve_dir(run_id):
    return contract.run_dir(run_id) + "/" + SERVE_DIR


def state_path(run_id):
    return serve_dir(run_id) + "/server.json"


def log_path(run_id):
    return serve_dir(run_id) + "/server.log"


# ---------------------------------------------------------------- the serving settings
class Serving(object):
    """The serving configuration of one model on the current run: the serve check's argv and environment."""

    def __init__(self, model, options, stream=None, env=None, loaded=None):
        """``loaded``: (pointer, manifest) of the current run, already read (else they are read here)."""
        self.options = dict(options or {})
        self.stream = stream or sys.stderr
        self.ctx = engine.StageContext(registry.SERVE_CHECK.name, model, self.options, self.stream, env)
        self.ctx.result = engine.new_result(RECORD, model, self.options)
        self.ctx.pointer_info, run_manifest = loaded or manifest.load_current(self.ctx.pointer)
        self.ctx.attach_run(run_manifest)
        self.runner = ServeCheckStage(self.ctx)
        self.layout = self.ctx.layout
        self.run_id = self.ctx.run_id
        self.model = model

    def say(self, message):
        try:
            self.stream.write("sglang_prep serve: %s\n" % message)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def argv(self):
        return self.runner.build_command()

    def env(self):
        """The server's environment: the serve check's (the recorded static-launcher decision of its last run)."""
        recorded, _problems = ledger.load_last_ok(self.layout, self.run_id, self.model)
        decision = (recorded.get(registry.SERVE_CHECK.name) or {}).get("static_cuda_launcher")
        if isinstance(decision, dict):
            self.ctx.result["static_cuda_launcher"] = decision
        return self.layout.env(self.runner.server_env())

    def settings(self, argv, env):
        """What the settings digest covers: the argv (a secret as its digest) and the environment that matters."""
        return {"argv": server_flags.redact_args(argv, digest=True),
                "env": dict((k, env[k]) for k in SETTINGS_ENV if k in env),
                "image": (self.ctx.manifest or {}).get("image")}


def settings_digest(settings):
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def settings_changes(old, new):
    """[{field, old, new}]: why a running server is restarted (argv compared flag by flag)."""
    out = []
    old = old or {}
    if old.get("image") != new.get("image"):
        out.append({"field": "image", "old": old.get("image"), "new": new.get("image")})
    old_env, new_env = old.get("env") or {}, new.get("env") or {}
    for key in sorted(set(old_env) | set(new_env)):
        if old_env.get(key) != new_env.get(key):
            out.append({"field": "env " + key, "old": old_env.get(key), "new": new_env.get(key)})
    if old.get("argv") != new.get("argv"):
        out.append({"field": "argv", "old": " ".join(old.get("argv") or []), "new": " ".join(new.get("argv") or [])})
    return out


# ---------------------------------------------------------------- was it primed?
def describe_reasons(rows):
    """'deep_gemm: tp: 1 -> 2; serve_check: extra_server_args: [] -> [...]' of the stages a plan would run."""
    parts = []
    for stage, row in rows:
        reasons = row.get("reprime_reasons") or []
        if row.get("status") == "error":
            text = "the check failed (%s: %s)" % (row.get("error_type"), row.get("message"))
        elif not reasons:
            text = row.get("message") or "would run"
        else:
            text = ", ".join(_reason(r) for r in reasons)
        parts.append("%s: %s" % (stage, text))
    return "; ".join(parts)


def _reason(reason):
    if reason["field"] == "signature" and reason.get("old") is None:
        return "never primed (no signature)"
    if reason["field"] == "in_progress_marker":
        return "an earlier run did not finish"
    return "%s: %s -> %s" % (reason["field"], _short(reason.get("old")), _short(reason.get("new")))


def _short(value):
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def unprimed(checked):
    """[(stage, check row)] of the stages the plan would run for these serving settings."""
    return [(stage, row) for stage, row in checked.rows.items() if row.get("action") == "run"]


def refusal(rows):
    reasons = []
    for stage, row in rows:
        for reason in row.get("reprime_reasons") or []:
            reasons.append(dict(reason, stage=stage))
    return PrepError(
        "not_primed",
        "the caches were not primed for these serving settings, so the server would compile at request time: %s. "
        "Prime with the same settings first (ansible-playbook sglang.prep.prime with the same model, tp and "
        "prime_extra_server_args), or serve with -e serve_prime=true" % describe_reasons(rows),
        stages=[stage for stage, _row in rows], reasons=reasons)


# ---------------------------------------------------------------- the running server
def read_state(layout, run_id):
    try:
        data = jsonio.read_json(layout.fs(state_path(run_id)))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid):
    if not pid:
        return False
    try:
        with open("/proc/%d/stat" % int(pid), encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError, ValueError):
        return False


def start_ticks(pid):
    """When the process started (clock ticks since boot, /proc/<pid>/stat field 22): with the pid, its identity."""
    try:
        with open("/proc/%d/stat" % int(pid), encoding="ascii", errors="replace") as handle:
            return int(handle.read().rsplit(")", 1)[-1].split()[19])
    except (OSError, IndexError, ValueError, TypeError):
        return None


def running(layout, run_id):
    """The state of this run's serving server when its supervisor and server both live, else None."""
    data = read_state(layout, run_id)
    if not data or not _alive(data.get("supervisor_pid")) or not _alive(data.get("server_pid")):
        return None
    if data.get("supervisor_started") != start_ticks(data["supervisor_pid"]):
        return None  # the pid was reused
    return data


def stop(layout, run_id, say=lambda _m: None):
    """Stop this run's serving server (SIGTERM to its supervisor, which tears the process group down).

    Returns {stopped, port_free, ...}; a server that is not running is {stopped: False}.
    """
    data = running(layout, run_id)
    if data is None:
        return {"stopped": False, "message": "no serving server runs in run %s" % run_id}
    pid = int(data["supervisor_pid"])
    say("stopping the serving server (supervisor pid %d, server pid %s)" % (pid, data.get("server_pid")))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + STOP_WAIT_S
    while (_alive(pid) or _alive(data.get("server_pid"))) and time.monotonic() < deadline:
        time.sleep(server.TEARDOWN_POLL_S)
    if _alive(data.get("server_pid")):
        raise PrepError("server_not_stopped", "the serving server (pid %s) is still alive %.0f s after SIGTERM to its "
                        "supervisor (pid %d); kill it and check the serve log %s" % (
                            data.get("server_pid"), STOP_WAIT_S, pid, log_path(run_id)), pid=data.get("server_pid"))
    port = int(data.get("port") or 0)
    free = _port_free(port, data.get("host") or "127.0.0.1")
    return {"stopped": True, "port": port, "port_free": free, "server_pid": data.get("server_pid"),
            "message": "the serving server (pid %s) stopped; port %d is %s" % (
                data.get("server_pid"), port, "free" if free else "still in use by %s" % procs.describe_port_holders(port))}


def _port_free(port, host):
    deadline = time.monotonic() + server.PORT_FREE_WAIT_S
    while not procs.port_is_free(port, host):
        if time.monotonic() >= deadline:
            return False
        time.sleep(server.TEARDOWN_POLL_S)
    return True


# ---------------------------------------------------------------- the supervisor (a detached child)
def _supervise(argv, env, log_fs, state_fs, secrets, info):  # pragma: no cover - runs in the forked child
    """The forked child: a new session, no inherited stdio, the server as its child; never returns."""
    code = 0
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        stop_now = []
        signal.signal(signal.SIGTERM, lambda *_a: stop_now.append(1))
        signal.signal(signal.SIGINT, lambda *_a: stop_now.append(1))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        handle = open(log_fs, "ab", buffering=0)

        def say(message):
            try:
                handle.write(b"[serve supervisor] " + message.encode("utf-8", "replace") + b"\n")
            except OSError:
                pass

        proc = server.ManagedProcess(argv, env, [(handle, LOG_PREFIX)], None, say, secrets=secrets)
        proc.start()
        jsonio.write_json_atomic(state_fs, dict(info, supervisor_pid=os.getpid(), server_pid=proc.pid,
                                                supervisor_started=start_ticks(os.getpid())))
        say("server pid %d started" % proc.pid)
        while not stop_now and proc.poll() is None:
            proc.wait_exit(0.2)
        teardown = proc.stop()
        teardown = teardown or {}
        say("server stopped (%s), exit code %s" % (teardown.get("signal") or "exited by itself", teardown.get("exit_code")))
    except BaseException:  # nothing may escape into the parent's code
        code = 1
    finally:
        os._exit(code)


def start(serving, argv, env, settings, lock_timeout):
    """Take the server-port lock, fork the supervisor (which keeps the lock), wait for its state file."""
    layout, run_id, ctx = serving.layout, serving.run_id, serving.ctx
    os.makedirs(layout.fs(serve_dir(run_id)), exist_ok=True)
    log_fs = layout.fs(log_path(run_id))
    state_fs = layout.fs(state_path(run_id))
    try:
        os.unlink(state_fs)
    except FileNotFoundError:
        pass
    lock = locks.StageLock(layout.fs(contract.server_lock_path()), RECORD, run_id, lock_timeout, serving.say,
                           what="the server port %d" % ctx.port).acquire()
    try:
        if not procs.port_is_free(ctx.port, ctx.host):
            raise PrepError("port_busy", "port %d on %s is already in use by %s. The serving server never falls back "
                            "to another port: stop that process and serve again" % (
                                ctx.port, ctx.host, procs.describe_port_holders(ctx.port)), port=ctx.port)
        offset = os.path.getsize(log_fs) if os.path.exists(log_fs) else 0
        info = {"model": serving.model, "port": ctx.port, "host": ctx.host, "digest": settings_digest(settings),
                "settings": settings, "argv": server_flags.redact_args(argv), "run_id": run_id,
                "started_at": ledger.iso(ledger.utc_now()), "log": log_path(run_id),
                "log_host": ctx.host_path(log_path(run_id))}
        secrets = server_flags.secret_values(argv)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            _supervise(argv, env, log_fs, state_fs, secrets, info)
        lock.write_holder(pid)  # the supervisor holds the port from now on
    finally:
        # the supervisor holds the same open lock: closing ours keeps the flock for as long as it lives
        if lock.fd is not None:
            os.close(lock.fd)
            lock.fd = None
    deadline = time.monotonic() + SUPERVISOR_START_S
    while time.monotonic() < deadline:
        data = read_state(layout, run_id)
        if data and data.get("supervisor_pid") == pid:
            return data, offset
        finished, _status = os.waitpid(pid, os.WNOHANG)
        if finished:
            break
        time.sleep(server.TEARDOWN_POLL_S)
    raise PrepError("server_exited_early", "the serving server's supervisor did not start the server (see %s)"
                    % log_path(run_id))


class LogTail(object):
    """Feeds the serve log's new lines (from ``offset``) to a LogScan: the lines read before a request window opens
    belong to the phase before it."""

    def __init__(self, path, offset, prefix=LOG_PREFIX):
        self.path = path
        self.offset = offset
        self.prefix = prefix  # the supervisor's line prefix; b"" reads every line (a server's own log)
        self.pending = b""
        self.scan = LogScan()
        self.lines = []

    def read(self):
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return
        self.offset += len(data)
        chunks = (self.pending + data).split(b"\n")
        self.pending = chunks.pop()
        for raw in chunks:
            if not raw.startswith(self.prefix):
                continue
            line = raw[len(self.prefix):].decode("utf-8", "replace")
            self.lines.append(line)
            self.scan.feed(line)


def wait_ready(base, auth, data, timeout_s, tail):
    """Poll /ready (then /health) until 200 while the server lives; PrepError on its exit or the deadline."""
    deadline = time.monotonic() + float(timeout_s)
    paths = list(server.READY_PATHS)
    started = time.monotonic()
    last = None
    while True:
        tail.read()
        if data.get("server_pid") is not None and not _alive(data.get("server_pid")):
            tail.read()
            raise PrepError("server_exited_early", "the serving server exited before it was ready (%.1f s after "
                            "start); the reason is in its log %s" % (time.monotonic() - started, data.get("log")))
        if time.monotonic() >= deadline:
            raise PrepError("readiness_timeout", "the serving server did not become ready on %s within %.0f s (last "
                            "answer: %s); it is left running: read its log %s" % (
                                base + paths[0], float(timeout_s), last.describe() if last else "none", data.get("log")))
        resp = httpc.call(base + paths[0], timeout=2.0, headers=auth)
        if resp.status == 200:
            return round(time.monotonic() - started, 3), paths[0]
        if resp.status == 404 and len(paths) > 1:
            paths.pop(0)
            continue
        last = resp
        time.sleep(server.POLL_S)


def check_live(serving, base, auth, tail, before, data):
    """Drive the serve check's shapes against the live server; the verdict of servecheck.judge."""
    ctx, runner = serving.ctx, serving.runner
    windows, request_log = [], []
    info = httpc.call(base + "/server_info", timeout=5.0, headers=auth)
    server_info = (info.json() if info.status == 200 else None) or {}
    tail.read()
    decode, source = servecheck.decode_plan(server_info, tail.scan.decode_capture_bs)
    prompts, chunk = servecheck.prompt_plan(server_info.get("chunked_prefill_size"), ctx.serve_max_prompt_tokens)
    shapes = {"decode_batch_sizes": decode, "decode_source": source, "prompt_lengths": prompts,
              "chunked_prefill_size": chunk, "max_prompt_tokens": ctx.serve_max_prompt_tokens or chunk}
    requests = servecheck.requests(decode, prompts, chunk)
    serving.say("driving %d requests against the live server: prompt lengths %s, decode batch sizes %s (%s)" % (
        len(requests), prompts, decode, source))
    first_text = None
    first_token_at = []  # the wall time the live server's first generation came back (make bench)
    error = None

    def generate(body, what):
        nonlocal first_text
        resp = httpc.call(base + "/generate", payload=body, timeout=server.GENERATE_TIMEOUT_S, headers=auth)
        if resp.status != 200:
            tail.read()
            raise PrepError("generate_failed", "POST /generate %s failed on the serving server: %s; see its log %s"
                            % (what, resp.describe(), data.get("log")), http_status=resp.status)
        reply = resp.json()
        if first_text is None:
            item = reply[0] if isinstance(reply, list) and reply else reply
            first_text = (item or {}).get("text") if isinstance(item, dict) else None
            first_token_at.append(time.time())
        return reply

    try:
        servecheck.drive(requests, generate, windows, request_log, before_each=tail.read, end_label=END)
    except PrepError as exc:
        error = exc
    tail.read()
    after = servecheck.snapshot(serving.layout.profiles_root)
    seen = {"windows": windows, "extra_server_args": ctx.extra_server_args, "primed_args": runner.primed_args(),
            "shapes": shapes, "requests": request_log, "snapshot_s": {}, "server_env": data.get("env") or {},
            "down_reuse_expected": runner.down_reuse_expected(),
            "default_config_expected": runner.default_config_expected()}
    # the serve check's one verdict; a compile is the evidence's zero_jit false (_failure words it for serving)
    evidence, _stage_error = servecheck.judge(before, after, tail.scan.jit_lines, seen, error)
    evidence["first_text"] = first_text
    evidence["first_token_at"] = first_token_at[0] if first_token_at else None
    return evidence, error


END = "after the requests (the server keeps serving)"


# ---------------------------------------------------------------- serve
def plan_serving(model, options, stream=None, env=None):
    """plan.check of every stage with the serving settings (reads only)."""
    return plan.check(list(registry.ORDER), model, options, stream=stream, env=env)


def serve(model, options=None, prime=False, check=False, stop_on_jit=False, stream=None, env=None):
    """Serve ``model`` from the primed caches; returns the serve record (written unless ``check``).

    Raises PrepError (not_primed, ...) before anything starts.
    """
    options = dict(options or {})
    started = time.monotonic()
    stream = stream or sys.stderr
    missing = unprimed(plan_serving(model, options, stream=stream, env=env))
    if missing and not prime:
        raise refusal(missing)
    serving = Serving(model, options, stream, env)
    if missing and check:
        return _record(serving, status="would_run", changed=True, action="prime", started=started,
                       message="would prime %s first (%s), then start the serving server" % (
                           ", ".join(s for s, _r in missing), describe_reasons(missing)))
    if missing:
        _prime_first(serving, stream, env)
    # serving mode: Prometheus scrapes the serving server (a reload, not a restart: container_mode.py)
    mode = container_mode.switch(prometheus_config.SERVING, serving.ctx.pointer, check=check)
    if mode["changed"]:
        serving.say(mode["message"])
    argv, server_env = serving.argv(), serving.env()
    settings = serving.settings(argv, server_env)
    current = running(serving.layout, serving.run_id)
    if current is not None and current.get("digest") == settings_digest(settings) and _ready(serving, current):
        # the server is left alone (its serve record, the proof, stays as written); a switch of the mode is a change
        result = _noop(serving, current, ledger.load_serve(serving.layout, serving.run_id, model), started, mode)
        result["changed"] = bool(mode["changed"])
        return result
    changes = settings_changes(current.get("settings"), settings) if current else []
    action = "restart" if current else "start"
    if check:
        return _record(serving, status="would_run", changed=True, action=action, started=started,
                       message="would %s the serving server: %s%s" % (action, _why(current, changes), _mode_note(mode)),
                       settings_changes=changes, container_mode=mode)
    extra = {"action": action, "settings_changes": changes, "container_mode": mode}
    if current is not None:
        stop(serving.layout, serving.run_id, serving.say)
    return _start_and_prove(serving, argv, server_env, settings, started, stop_on_jit, extra)


def _mode_note(mode):
    return "; %s" % mode["message"] if mode["changed"] else ""


def _prime_first(serving, stream, env):
    """serve_prime: stop the serving server (the stage servers need the port), prime, plan again."""
    from . import prime as prime_mod
    stop(serving.layout, serving.run_id, serving.say)
    primed = prime_mod.prime(list(registry.ORDER), serving.model, serving.options, stream=stream, env=env)
    if primed.get("status") == "error":
        failed = [row for row in (primed.get("stages") or {}).values() if row.get("status") == "error"]
        first = failed[0] if failed else {}
        raise PrepError(first.get("error_type") or "internal_error", "serve_prime: priming failed: %s" % (
            first.get("message") or primed.get("message")))
    missing = unprimed(plan_serving(serving.model, serving.options, stream=stream, env=env))
    if missing:
        raise refusal(missing)


def _ready(serving, current):
    base = "http://%s:%d" % (current.get("host") or "127.0.0.1", int(current["port"]))
    auth = httpc.bearer(server_flags.arg_value(serving.ctx.extra_server_args, "api_key"))
    return httpc.call(base + "/ready", timeout=2.0, headers=auth).status == 200


def _why(current, changes):
    if current and changes:
        return "the running server has other settings: %s" % "; ".join(
            "%s: %s -> %s" % (c["field"], _short(c["old"]), _short(c["new"])) for c in changes)
    return "the running server is not ready" if current else "no serving server runs"


def _start_and_prove(serving, argv, server_env, settings, started, stop_on_jit, extra):
    """Start the server, prove zero JIT on it, record the outcome."""
    ctx = serving.ctx
    before = servecheck.snapshot(serving.layout.profiles_root)
    data, offset = start(serving, argv, server_env, settings, ctx.lock_timeout)
    data["env"] = dict((k, server_env[k]) for k in SETTINGS_ENV if k in server_env)
    serving.say("serving server pid %s starting on %s:%d: %s" % (
        data["server_pid"], ctx.host, ctx.port, " ".join(data["argv"])))
    tail = LogTail(serving.layout.fs(log_path(serving.run_id)), offset)
    base = "http://%s:%d" % (ctx.host, ctx.port)
    auth = httpc.bearer(server_flags.arg_value(ctx.extra_server_args, "api_key"))
    extra["server"] = _server_info(data)
    try:
        ready_s, ready_path = wait_ready(base, auth, data, ctx.ready_timeout, tail)
        extra["server"].update(ready_s=ready_s, ready_path=ready_path)
        serving.say("serving server ready after %.2f s (%s answered 200)" % (ready_s, ready_path))
        evidence, error = check_live(serving, base, auth, tail, before, data)
    except PrepError as exc:
        tail.read()
        if not _alive(data.get("server_pid")):
            stop(serving.layout, serving.run_id)
        return _record(serving, status="error", changed=True, started=started, error=exc,
                       log_tail=tail.lines[-20:], **extra)
    extra.update(serve_check=evidence, zero_jit=evidence["zero_jit"], first_text=evidence.get("first_text"),
                 first_token_at=evidence.get("first_token_at"))
    if evidence["zero_jit"]:
        serving.say(evidence["summary"])
        return _record(serving, status="ok", changed=True, started=started,
                       message="serving %s on port %d (pid %s): zero JIT on the live server: %s" % (
                           serving.model, ctx.port, data["server_pid"], evidence["summary"]), **extra)
    alive = _alive(data.get("server_pid"))
    stopped = bool(alive and stop_on_jit)
    if stopped:
        stop(serving.layout, serving.run_id, serving.say)
    extra["server"]["left_running"] = alive and not stopped
    return _record(serving, status="error", changed=True, started=started, error=_failure(evidence, error, alive, stopped),
                   log_tail=tail.lines[-20:] if not alive else None, **extra)


def _failure(evidence, error, alive, stopped):
    """The PrepError of a live check that did not prove zero JIT, saying what became of the server."""
    left = ("it was stopped (serve_stop_on_jit)" if stopped else "the server is left running and serving"
            if alive else "the server exited")
    if evidence["zero_jit"] is False:
        return PrepError("jit_at_serve_time", "the live server compiled at serve time; %s. %s" % (left, evidence["message"]))
    failure = error or PrepError("generate_failed", "the zero-JIT check on the live server did not complete")
    return PrepError(failure.error_type, "%s (%s)" % (failure.message, left))


def _server_info(data):
    return dict((k, data.get(k)) for k in ("server_pid", "supervisor_pid", "port", "host", "digest", "argv",
                                           "started_at", "log", "log_host"))


def _noop(serving, current, recorded, started, mode):
    recorded = recorded or {}
    result = engine.new_result(RECORD, serving.model, serving.options)
    result.update(status="noop", changed=False, action="none", run_id=serving.run_id, container_mode=mode,
                  server=dict(_server_info(current), ready_path="/ready"),
                  zero_jit=recorded.get("zero_jit"), first_text=recorded.get("first_text"),
                  proven_by={"at": recorded.get("finished_at"), "run_id": recorded.get("run_id")},
                  message="already serving %s on port %s with the same settings (digest %s, pid %s); zero JIT: %s" % (
                      serving.model, current.get("port"), current.get("digest"), current.get("server_pid"),
                      {True: "yes", False: "no", None: "not proven"}[recorded.get("zero_jit")]) + _mode_note(mode))
    _finish(result, started)
    return result


def _finish(result, started):
    result["finished_at"] = ledger.iso(ledger.utc_now())
    result["duration_s"] = round(time.monotonic() - started, 3)
    result["status_code"] = 1 if result["status"] == "error" else 0


def _record(serving, status, changed, started, error=None, message=None, **extra):
    """The serve record: written beside the stage JSONs (then the aggregate and the metrics) unless would_run."""
    result = serving.ctx.result
    result.update(extra)
    result.update(status=status, changed=changed, ran=status != "would_run", run_id=serving.run_id)
    if error is not None:
        result.update(error_type=error.error_type, message=error.message)
        for key, value in error.details.items():
            result.setdefault(key, value)
    else:
        result["message"] = message
    result.setdefault("zero_jit", None)
    _finish(result, started)
    if status == "would_run":
        return result
    try:
        result["stage_json"] = ledger.write_stage(serving.layout, serving.run_id, RECORD, result)
        result["stage_json_host"] = serving.ctx.host_path(result["stage_json"])
        ledger.aggregate(serving.layout, serving.run_id, serving.model)
    except OSError as exc:
        result.setdefault("warnings", []).append("the serve record could not be written: %s" % exc)
    try:
        warning = metrics.publish(state.RunView(loaded=(serving.ctx.pointer_info, serving.ctx.manifest),
                                                model=serving.model))
    except Exception as exc:  # metrics never fail a serve
        warning = "the metrics textfile could not be written: %s" % exc
    if warning:
        result.setdefault("warnings", []).append(warning)
    return result


def stop_serving(pointer=None):
    """Stop the current run's serving server (the ``serve-stop`` command)."""
    _ptr, run_manifest = manifest.load_current(pointer)
    layout = Layout.from_manifest(run_manifest)
    return stop(layout, run_manifest["container_run_id"])


# ---------------------------------------------------------------- the hand-off
def spec(model, options=None, env=None, loaded=None):
    """What a server of one's own needs to read the primed caches: argv, environment, mounts, image (reads only).
    The one home of the hand-off: ``serve-spec`` prints it, and the plan and prime states carry it as ``serving``
    (prime_report.serving). ``loaded``: the current run's (pointer, manifest), already read."""
    environ = dict(os.environ if env is None else env)
    with open(os.devnull, "w") as quiet:
        serving = Serving(model, options, stream=quiet, env=environ, loaded=loaded)
        argv = serving.argv()
        server_env = serving.env()
    mounts = []
    for name, target in sorted(contract.HOST_SUBDIRS.items()):
        source = environ.get(contract.ENV_HOST_ROOTS.get(name, ""))
        if source:
            mounts.append({"type": "bind", "source": source, "target": target, "read_only": False})
    cache_env = dict((k, server_env[k]) for k in SETTINGS_ENV if k in server_env)
    cache_env["HOME"] = HOME  # the Hugging Face cache is mounted under it
    return {"schema_version": contract.SCHEMA_VERSION, "model": model, "run_id": serving.run_id,
            "image": serving.ctx.manifest.get("image"), "argv": server_flags.redact_args(argv),
            "env": cache_env, "mounts": mounts, "port": serving.ctx.port,
            "user": "%s:%s" % (environ.get(contract.ENV_UID, ""), environ.get(contract.ENV_GID, "")),
            "settings_digest": settings_digest(serving.settings(argv, server_env))}


def verify(model, url=None, log=None, options=None, stream=None, env=None):
    """serve-verify: the live server's zero-JIT check (check_live, servecheck.judge) against a server of one's own,
    started from serve-spec, at ``url``; ``log`` is its output, scanned from its start. Reads only."""
    started = time.monotonic()
    serving = Serving(model, options, stream, env)
    ctx = serving.ctx
    if log and not os.path.isfile(log):
        raise PrepError("bad_input", "the server log %s is not a file this container can read: pass the path, under "
                        "%s, of a file that holds the server's output (e.g. docker logs -f written there)"
                        % (log, contract.TELEMETRY_ROOT))
    base = (url or "http://%s:%d" % (ctx.host, ctx.port)).rstrip("/")
    auth = httpc.bearer(server_flags.arg_value(ctx.extra_server_args, "api_key"))
    server_env = serving.env()
    data = {"log": log, "env": dict((k, server_env[k]) for k in SETTINGS_ENV if k in server_env)}
    tail = LogTail(log or os.devnull, 0, prefix=b"")
    before = servecheck.snapshot(serving.layout.profiles_root)
    result = ctx.result
    result.update(stage="serve_verify", run_id=serving.run_id, url=base, log=log, changed=False, ran=True)
    try:
        ready_s, ready_path = wait_ready(base, auth, data, ctx.ready_timeout, tail)
        serving.say("the server at %s is ready (%s answered 200)" % (base, ready_path))
        evidence, error = check_live(serving, base, auth, tail, before, data)
    except PrepError as exc:
        result.update(status="error", error_type=exc.error_type, message=exc.message, zero_jit=None,
                      log_tail=tail.lines[-20:])
        _finish(result, started)
        return result
    result.update(serve_check=evidence, zero_jit=evidence["zero_jit"], first_text=evidence.get("first_text"),
                  ready_path=ready_path, ready_s=ready_s)
    if evidence["zero_jit"]:
        result.update(status="ok", message="the server at %s: zero JIT: %s" % (base, evidence["summary"]))
    else:
        failure = _failure(evidence, error, alive=True, stopped=False)
        result.update(status="error", error_type=failure.error_type, message=failure.message)
    _finish(result, started)
    return result


def serving_keys(model, options=None, pointer=None, env=None):
    """What the plan and prime states carry of serving (the CLI adds it to them): ``container_mode`` (the run's,
    container_mode.current) and ``serving``, the hand-off of these settings (spec: the same JSON as ``serve-spec``),
    null with the reason in ``serving_problem`` before the serve check passed in the run. Reads only."""
    loaded = manifest.load_current(pointer)
    out = {"container_mode": container_mode.current(loaded[1]), "serving": None, "serving_problem": None}
    layout = Layout.from_manifest(loaded[1])
    run_id = loaded[1]["container_run_id"]
    recorded, _problems = ledger.load_last_ok(layout, run_id, model)
    if not isinstance((recorded.get(registry.SERVE_CHECK.name) or {}).get("static_cuda_launcher"), dict):
        # without the serve check's record the caches are not proven for these settings (and its launcher decision,
        # part of the server's environment, would need a probe): no hand-off yet
        out["serving_problem"] = ("the serve check has not passed in run %s: the hand-off is given once the caches are "
                                  "primed and proven" % run_id)
        return out
    try:
        out["serving"] = spec(model, options, env=env, loaded=loaded)
    except PrepError as exc:
        out["serving_problem"] = exc.message
    return out


FORMATS = ("json", "docker-run", "compose", "systemd")
HOME = os.path.dirname(os.path.dirname(contract.HF_ROOT))  # /home/devuser
SERVICE_NAME = "sglang-serve"


def _docker_args(spec, name=SERVICE_NAME, detach=True):
    """``docker run`` arguments of a server that reads the primed caches (host networking, all GPUs)."""
    args = ["docker", "run"] + (["-d"] if detach else ["--rm"]) + ["--name", name, "--network", "host", "--gpus", "all",
                                                                   "--ipc", "host"]
    if spec.get("user") and spec["user"] != ":":
        args += ["--user", spec["user"]]
    for mount in spec.get("mounts") or []:
        args += ["-v", "%s:%s%s" % (mount["source"], mount["target"], ":ro" if mount.get("read_only") else "")]
    for key, value in sorted((spec.get("env") or {}).items()):
        args += ["-e", "%s=%s" % (key, value)]
    argv = list(spec["argv"])
    args += ["--entrypoint", argv[0], spec["image"]] + argv[1:]
    return args


def render(spec, fmt):
    """The spec as text: JSON, one ``docker run`` line, a compose service, or a systemd unit."""
    import shlex
    if fmt == "json":
        return json.dumps(spec, indent=2, sort_keys=True)
    if fmt == "docker-run":
        return " ".join(shlex.quote(a) for a in _docker_args(spec))
    if fmt == "systemd":
        line = " ".join(shlex.quote(a) for a in _docker_args(spec, detach=False))
        return "\n".join([
            "[Unit]", "Description=SGLang server reading the primed caches (sglang.prep serve-spec, settings %s)"
            % spec.get("settings_digest"), "After=docker.service", "Requires=docker.service", "",
            "[Service]", "ExecStartPre=-/usr/bin/docker rm -f %s" % SERVICE_NAME, "ExecStart=/usr/bin/" + line,
            "ExecStop=/usr/bin/docker stop %s" % SERVICE_NAME, "Restart=on-failure", "", "[Install]",
            "WantedBy=multi-user.target"])
    if fmt == "compose":
        argv = list(spec["argv"])
        service = {"image": spec["image"], "network_mode": "host", "ipc": "host", "entrypoint": [argv[0]],
                   "command": argv[1:], "environment": dict(sorted((spec.get("env") or {}).items())),
                   "volumes": ["%s:%s" % (m["source"], m["target"]) for m in spec.get("mounts") or []],
                   "deploy": {"resources": {"reservations": {"devices": [
                       {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]}}}}
        if spec.get("user") and spec["user"] != ":":
            service["user"] = spec["user"]
        # JSON is YAML: compose reads it as written
        return json.dumps({"services": {SERVICE_NAME: service}}, indent=2)
    raise ValueError("unknown format %r (one of %s)" % (fmt, ", ".join(FORMATS)))

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stage orchestrator (docs/architecture.md, docs/runtime.md).

pointer -> manifest -> permission and disk preflight -> lock (heartbeats, timeout) -> signature
check -> in-progress marker -> run -> validate -> signature -> stage JSON (atomic) -> aggregate
prep_result.json -> marker removed (success only) -> unlock. Check mode stops after the signature
check and writes nothing at all.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback

from .. import contract, jsonio, manifest
from . import argv, bundle, ledger, locks, metrics, probe, sessionlog, signature, state
from ..errors import PrepError
from .layout import Layout
from .preflight import (DISK_ERRNOS, ensure_writable_dir, os_failure, require_free_disk, require_writable_file,
                        require_writable_tree, writable_hint)
from .procs import describe_port_holders, port_is_free
from .server import kill_orphan_group
from .moe_tune import DEFAULT_MOE_BATCH_SIZES
from .runner import ServerStage
from .stages import RUNNERS

DEFAULTS = {
    "tp": 1,
    "mode": "ensure",
    "port": contract.SERVER_PORT,
    "host": "127.0.0.1",
    "lock_timeout": 600.0,
    "ready_timeout": 3600.0,
    "disk_headroom_mb": 1024,
    "moe_batch_sizes": DEFAULT_MOE_BATCH_SIZES,
    "moe_dtype": "auto",
    "extra_server_args": (),
    "telemetry_timeout": 20.0,
    # serve_check: the longest prompt it sends (None: the server's chunked-prefill size)
    "serve_max_prompt_tokens": None,
    # plan and prime: a probed version other than contract.FIDELITY_STACK refuses (stack_unpinned) instead of warning
    "require_pinned_stack": False,
    "pointer": None,
    "python": "python3",
    # plan only: {stage: signature fields} of earlier stages that would run, so a stage that depends on
    # one of them is checked against what that stage will record, not what it recorded before
    "planned_signatures": None,
}


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(BaseException):
    """The runner got SIGTERM/SIGINT/SIGHUP: tear down, record, exit."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class StageContext(object):
    """Everything one stage invocation needs: options, run paths, probes, the result being built."""

    def __init__(self, stage, model, options, stream, env=None, shared_probe=None, progress=None):
        self.stage = stage
        self.model = model
        # without --port the run's server port (manifest server_port, what Prometheus scrapes) is used
        self.port_given = options.get("port") is not None
        for key, default in DEFAULTS.items():
            setattr(self, key, options.get(key, default) if options.get(key) is not None else default)
        self.tp = int(self.tp)
        self.port = int(self.port)
        self.moe_batch_sizes = [int(b) for b in self.moe_batch_sizes]
        self.extra_server_args = list(self.extra_server_args)
        self.stream = stream
        self.base_env = dict(os.environ if env is None else env)
        # one probe may serve several stages of one invocation (the plan): the toolchain does not change in between
        self.probe = shared_probe or probe.Probe(self.python, self.base_env)
        self.layout = None
        self.manifest = None
        self.pointer_info = None
        self.run_id = None
        self.session_log_fs = None
        self.log_writes = False
        self.marker_fs = None
        self.marker_info = None
        self.locking = False
        self.result = None
        self.progress_cb = progress
        self.disk_error = None  # (path, OSError) of the first session-log line the disk refused (ENOSPC, EDQUOT)

    def attach_run(self, run_manifest):
        self.manifest = run_manifest
        self.layout = Layout.from_manifest(run_manifest)
        self.run_id = run_manifest["container_run_id"]
        if not self.port_given and run_manifest.get("server_port"):
            self.port = int(run_manifest["server_port"])
        log_file = run_manifest["paths"]["container"]["log_file"]
        self.session_log_fs = self.layout.fs(log_file)
        self.result["run_id"] = self.run_id
        # probes run with the same cache environment as every other subprocess of a stage
        self.probe.env = self.layout.env(argv.server_env(self.base_env))

    def host_path(self, container_path):
        return manifest.host_path(self.manifest, container_path) if self.manifest else None

    def say(self, message):
        line = "sglang_prep %s: %s" % (self.stage, message)
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass
        if self.log_writes and self.session_log_fs:
            try:
                sessionlog.log(self.session_log_fs, "stage:" + self.stage, message)
            except OSError as exc:
                if exc.errno in DISK_ERRNOS and self.disk_error is None:
                    self.disk_error = (self.session_log_fs, exc)

    def warn(self, message):
        if message not in self.result["warnings"]:
            self.result["warnings"].append(message)
        self.say("warning: " + message)

    def progress(self, index, count, label):
        """Step ``index`` of ``count`` of the stage starts (e.g. one tuner batch size): tell the prime job.

        Reporting progress never fails a stage: a failure here is a warning.
        """
        if self.progress_cb is None:
            return
        try:
            self.progress_cb(self.stage, index, count, label)
        except Exception as exc:
            self.warn("progress could not be reported: %s" % exc)

    def note_process(self, pid, hint):
        """Record the stage's child process group in the marker, so a later run can clean up after a crash."""
        if self.marker_fs and self.marker_info is not None:
            self.marker_info.update({"server_pid": pid, "server_pgid": pid, "process_hint": hint})
            try:
                locks.write_marker(self.marker_fs, self.marker_info)
            except OSError as exc:
                self.warn("could not update the in-progress marker: %s" % exc)


def new_result(stage, model, options):
    tp = options.get("tp") or DEFAULTS["tp"]
    return {
        "schema_version": contract.SCHEMA_VERSION, "stage": stage, "run_id": None,
        "mode": options.get("mode") or DEFAULTS["mode"], "ran": False, "status": None, "status_code": None,
        "started_at": ledger.iso(ledger.utc_now()), "finished_at": None, "duration_s": None,
        "model": model, "tp": int(tp), "signature": None, "signature_group": None, "previous_signature": None,
        "reprime_reasons": [], "would_run": None, "artifacts": {}, "server": None, "validation": {},
        "telemetry_probe": None, "error_type": None, "message": None, "warnings": [], "errors": [], "log_tail": [],
    }


def _install_signal_handlers():
    if threading.current_thread() is not threading.main_thread():
        return {}

    seen = []

    def handler(signum, _frame):
        if not seen:  # the first signal stops the stage; repeats must not interrupt the teardown
            seen.append(signum)
            raise Interrupted(signum)

    previous = {}
    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, handler)
    return previous


def _restore_signal_handlers(previous):
    for signum, old in previous.items():
        signal.signal(signum, old)


def _engine_dirs(ctx, runner):
    stage = ctx.stage
    dirs = [path for path in (contract.stage_cache_dir(stage), contract.stage_model_dir(stage, ctx.model),
                              contract.LOCKS_DIR, contract.IN_PROGRESS_DIR, contract.run_dir(ctx.run_id),
                              os.path.dirname(contract.stage_json_path(ctx.run_id, stage, ctx.model))) if path]
    for path in runner.preflight_dirs():
        if path not in dirs:
            dirs.append(path)
    return dirs


def _preflight(ctx, runner):
    def host_of(fs_path):
        return ctx.host_path(ctx.layout.contract_path(fs_path))

    # every path the stage writes, before any work: the directories (created when missing), everything under
    # them (symlinks followed: profiles/ or a cache may be a link to a directory of another owner), the session log
    for path in _engine_dirs(ctx, runner):
        ensure_writable_dir(ctx.layout.fs(path), host_of=host_of)
    ensure_writable_dir(os.path.dirname(ctx.session_log_fs), host_of=host_of)
    require_writable_file(ctx.session_log_fs, host_of=host_of)
    for path in _engine_dirs(ctx, runner):
        require_writable_tree(ctx.layout.fs(path), host_of=host_of)
    ctx.log_writes = True
    cache_dir = contract.stage_cache_dir(ctx.stage) or contract.stage_records_dir(ctx.stage)
    require_free_disk(ctx.layout.fs(cache_dir), ctx.disk_headroom_mb, shown=cache_dir)


def _decide(ctx, runner):
    """Fill signature/previous/reasons; returns (reasons, stale marker or None, skip reason or None)."""
    result = ctx.result
    fields, warnings = signature.build(ctx.stage, ctx.probe, runner.signature_inputs())
    for warning in warnings:
        ctx.warn(warning)
    result["signature"] = fields
    result["signature_group"] = signature.group(fields)
    sig_path = contract.signature_path(ctx.stage, ctx.model)
    previous, problem = signature.read(ctx.layout.fs(sig_path))
    result["previous_signature"] = previous
    if previous is None:
        reasons = [{"field": "signature", "old": None, "new": problem.replace(ctx.layout.fs(sig_path), sig_path)}]
    else:
        reasons = signature.compare(previous, fields)
    marker = locks.read_marker(ctx.layout.fs(contract.marker_path(ctx.stage)))
    if marker is not None:
        reasons.append({"field": "in_progress_marker", "old": marker or "unreadable marker", "new": None})
    if ctx.mode == "rebuild":
        reasons.append({"field": "mode", "old": None, "new": "rebuild"})
    result["reprime_reasons"] = reasons
    return reasons, marker, runner.skip_reason()


def _describe_reasons(reasons):
    return ", ".join("%s (%r -> %r)" % (r["field"], r["old"], r["new"]) if r["field"] not in (
        "signature", "in_progress_marker") else r["field"] for r in reasons)


def _check(ctx, runner):
    """Check mode: what ensure would do and why; reads only."""
    result = ctx.result
    reasons, _marker, skip = _decide(ctx, runner)
    if skip:
        result.update(status="skipped", would_run=False, message=skip)
        return
    result["would_run"] = bool(reasons)
    if not reasons:
        result.update(status="noop", message="signature matches the recorded one; ensure would do nothing")
        return
    result.update(status="would_run", message="ensure would run %s because: %s" % (ctx.stage, _describe_reasons(reasons)))
    for path in _engine_dirs(ctx, runner):
        hint = writable_hint(ctx.layout.fs(path))
        if hint:
            ctx.warn("the run would fail with permissions_unexpected: " + hint)
    if locks.is_locked(ctx.layout.fs(contract.lock_path(ctx.stage))):
        ctx.warn("another run of %s holds its lock right now" % ctx.stage)
    if isinstance(runner, ServerStage) and not port_is_free(ctx.port, ctx.host):
        ctx.warn("port %d is busy now (%s); the run would fail with port_busy" % (ctx.port, describe_port_holders(ctx.port)))
    if hasattr(runner, "find_tuner"):
        try:
            runner.plan()  # the MoE dtype the checkpoint makes SGLang look up (bad_input when it cannot be told)
            runner.find_tuner()
        except PrepError as exc:
            ctx.warn("the run would fail: " + exc.message)


def _recover(ctx, marker):
    """A marker left by a runner that died: kill what is left of its process group."""
    owner = (marker or {}).get("owner_pid")
    if owner and locks.procs.alive(owner) and owner != os.getpid():
        ctx.warn("the in-progress marker names pid %s, which is still alive but does not hold the lock" % owner)
        return
    pgid = (marker or {}).get("server_pgid")
    if pgid and kill_orphan_group(int(pgid), marker.get("process_hint"), ctx.say):
        ctx.warn("killed process group %s left running by the interrupted run %s" % (pgid, marker.get("run_id")))
    ctx.say("re-running: the previous run (pid %s, run %s, started %s) did not finish" % (
        owner, (marker or {}).get("run_id"), (marker or {}).get("started_at")))


def _artifacts(ctx, runner):
    out = {}
    for name, path in sorted(runner.describe_artifacts().items()):
        out[name] = {"container_path": path, "host_path": ctx.host_path(path),
                     "exists": os.path.exists(ctx.layout.fs(path))}
    return out


def _fail(result, exc):
    result.update(status="error", error_type=exc.error_type, message=exc.message)
    result["errors"].append(exc.as_dict())


def _check_model(ctx):
    """PrepError(model_invalid) before any work: the model leaves the models root, or its config.json is unusable."""
    model = ctx.model
    models_root = ((ctx.manifest or {}).get("paths", {}).get("container") or {}).get("models_root") or contract.MODELS_ROOT
    root = os.path.realpath(models_root)
    real = os.path.realpath(model)
    if os.path.realpath(os.path.dirname(os.path.abspath(model))).startswith(root) and not (
            real == root or real.startswith(root + os.sep)):
        raise PrepError("model_invalid", "model directory %s is a symlink to %s, outside the models root %s: the "
                        "container only sees the host's models root; put the model itself under it"
                        % (model, real, models_root), model=model)
    config = os.path.join(model, "config.json")
    try:
        data = jsonio.read_json(config)
    except FileNotFoundError:
        raise PrepError("model_invalid", "%s has no config.json: a Hugging Face model directory has one; download "
                        "the whole model, not only its weights" % model, model=model)
    except (OSError, ValueError) as exc:
        raise PrepError("model_invalid", "%s is unreadable or not JSON (%s): fix or download the model again"
                        % (config, exc), model=model)
    if not isinstance(data, dict):
        raise PrepError("model_invalid", "%s is not a JSON object: fix or download the model again" % config,
                        model=model)


def _check_port(ctx, runner):
    """A warm-up on another port than the run's server port: Prometheus will not scrape it."""
    expected = (ctx.manifest or {}).get("server_port")
    if runner.spec.warmup and expected and int(expected) != ctx.port:
        ctx.warn("port %d is not the run's server port %d (%s at container start), which Prometheus scrapes; "
                 "the telemetry probe of this warm-up will find no sample"
                 % (ctx.port, int(expected), contract.ENV_SERVER_PORT))


def run_stage(stage, model, options=None, stream=None, env=None, shared_probe=None, progress=None):
    """Run one stage; returns the stage result (also written as the stage JSON unless in check mode).

    ``shared_probe`` (a probe.Probe) lets several stages of one invocation probe the toolchain once.
    ``progress(stage, index, count, label)`` is told each step of the stage (the prime job's progress file).
    """
    options = dict(options or {})
    stream = stream or sys.stderr
    start = time.monotonic()
    result = new_result(stage, model, options)
    ctx = StageContext(stage, model, options, stream, env, shared_probe, progress)
    ctx.result = result
    previous_handlers = _install_signal_handlers()
    held = {}  # the stage lock ("lock") and the host's server-port lock ("port_lock"), once taken
    runner = None
    try:
        try:
            ctx.pointer_info, run_manifest = manifest.load_current(ctx.pointer)
            ctx.attach_run(run_manifest)
            _require_model_dir(model)
            _check_model(ctx)
            runner = RUNNERS[stage](ctx)
            _check_port(ctx, runner)
            if ctx.mode == "check":
                _check(ctx, runner)
            else:
                _run_locked(ctx, runner, start, held)
        except PrepError as exc:
            _fail(result, exc)
        except Interrupted as exc:
            _fail(result, PrepError("interrupted", "the stage runner got signal %d and stopped; the server was "
                                    "torn down and the in-progress marker left in place, so the next ensure re-runs "
                                    "this stage" % exc.signum))
        except Exception as exc:  # a write a person can fix (disk, owner), else a defect: record it, never lose the stage
            _fail(result, _unexpected(ctx, exc))
        finally:
            if runner is not None:
                try:
                    runner.cleanup()
                except Exception as exc:
                    result["warnings"].append("cleanup failed: %s" % exc)
            if held.get("port_lock") is not None:
                held["port_lock"].release()
        _finish(ctx, runner, start, held.get("lock"))
    finally:
        for name in ("port_lock", "lock"):
            if held.get(name) is not None:
                held[name].release()
        _restore_signal_handlers(previous_handlers)
    return result


def _require_model_dir(model):
    """PrepError(model_invalid or model_not_found) when the model directory is not there in the container."""
    if os.path.isdir(model):
        return
    if os.path.islink(model):
        raise PrepError("model_invalid", "model directory %s is a symlink to %s, which does not exist in "
                        "the container: the container sees only the host's models root, mounted at %s; "
                        "put the model itself under it, or make the link point to a directory there "
                        "with a relative path" % (model, os.readlink(model), contract.MODELS_ROOT),
                        model=model)
    raise PrepError("model_not_found", "model directory %s does not exist in the container; models are "
                    "mounted from the host models root at %s (pass /models/<name>)"
                    % (model, contract.MODELS_ROOT), model=model)


def _unexpected(ctx, exc):
    """The PrepError of an unexpected exception: a write a person can fix (disk, owner), else internal_error."""
    known = os_failure(exc, "%s %s" % (ctx.mode, ctx.stage)) if isinstance(exc, OSError) else None
    if known is None:
        ctx.say("internal error:\n" + traceback.format_exc())
        known = PrepError("internal_error", "unexpected %s: %s (traceback in the session log)"
                          % (type(exc).__name__, exc))
    return known


def _run_locked(ctx, runner, start, held):
    """ensure or rebuild: preflight, the stage lock, the decision, then the run (or skipped, or noop)."""
    stage, model, result = ctx.stage, ctx.model, ctx.result
    stale = []  # what a killed bundle install left, cleared before the stage's directories are made (never waits)
    bundle.clear_stale(ctx.layout.profiles_root, stale.append)
    _preflight(ctx, runner)
    for note in stale:
        ctx.say("bundle staging: " + note)
    ctx.say("%s %s for %s (tp %d), run %s" % (ctx.mode, stage, model, ctx.tp, ctx.run_id))
    ctx.locking = True
    held["lock"] = locks.StageLock(ctx.layout.fs(contract.lock_path(stage)), stage, ctx.run_id,
                                   ctx.lock_timeout, ctx.say).acquire()
    reasons, marker, skip = _decide(ctx, runner)
    if skip:
        result.update(status="skipped", message=skip)
    elif ctx.mode == "ensure" and not reasons:
        result.update(status="noop", message="signature matches %s; nothing to do" % (
            contract.signature_path(stage, model)))
    else:
        ctx.say("running because: %s" % _describe_reasons(reasons))
        _run_runner(ctx, runner, start, held, marker)


def _run_runner(ctx, runner, start, held, marker):
    """The run itself: the server-port lock, the in-progress marker, the runner, the signature."""
    stage, model, result = ctx.stage, ctx.model, ctx.result
    if isinstance(runner, ServerStage):
        # host-wide: one stage server at a time on the server port, whichever run or stage starts it
        held["port_lock"] = locks.StageLock(ctx.layout.fs(contract.server_lock_path()), stage, ctx.run_id,
                                            ctx.lock_timeout, ctx.say, what="the server port %d" % ctx.port
                                            ).acquire()
    if marker is not None:
        _recover(ctx, marker)
    ctx.marker_fs = ctx.layout.fs(contract.marker_path(stage))
    ctx.marker_info = {"owner_pid": os.getpid(), "started_at": result["started_at"],
                       "run_id": ctx.run_id, "stage": stage, "model": model}
    locks.write_marker(ctx.marker_fs, ctx.marker_info)
    result["ran"] = True
    runner.preflight()
    runner.run()
    if ctx.disk_error is not None:  # a stage whose session log lost lines to a full disk is not primed
        raise os_failure(ctx.disk_error[1], "%s: appending to the session log" % stage,
                         path=ctx.layout.contract_path(ctx.disk_error[0]))
    finished = ledger.iso(ledger.utc_now())
    signature.write(ctx.layout.fs(contract.signature_path(stage, model)), stage,
                    result["signature"], ctx.run_id, finished, round(time.monotonic() - start, 3))
    result.update(status="ok", message=runner.success_message(time.monotonic() - start))


def _finish(ctx, runner, start, lock):
    """Timestamps, artifacts, stage JSON, aggregate, marker: never raises."""
    result = ctx.result
    result["finished_at"] = ledger.iso(ledger.utc_now())
    result["duration_s"] = round(time.monotonic() - start, 3)
    result["status_code"] = 1 if result["status"] == "error" else 0
    if runner is not None and ctx.layout is not None:
        try:
            result["artifacts"] = _artifacts(ctx, runner)
        except Exception as exc:
            result["warnings"].append("artifacts could not be described: %s" % exc)
        try:
            runner.annotate(result)
        except Exception as exc:
            result["warnings"].append("the %s result could not be annotated: %s" % (ctx.stage, exc))
    if ctx.mode == "check" or ctx.run_id is None or (ctx.locking and lock is None):
        # check mode writes nothing; without a run there is nowhere to write; and a run that did not get
        # the lock (timeout, interrupted while waiting) must not overwrite what the lock holder writes.
        return
    try:
        result["stage_json"] = ledger.write_stage(ctx.layout, ctx.run_id, ctx.stage, result)
        result["stage_json_host"] = ctx.host_path(result["stage_json"])
    except OSError as exc:
        # an unrecorded stage is not primed: the result says error (the last success on disk is untouched)
        failure = os_failure(exc, "writing the %s stage JSON" % ctx.stage) or PrepError(
            "internal_error", "the %s stage JSON could not be written: %s" % (ctx.stage, exc))
        if result["status"] != "error":
            _fail(result, failure)
            result["status_code"] = 1
        else:
            result["warnings"].append(failure.message)
        ctx.say("%s failed: %s: %s" % (ctx.stage, result["error_type"], result["message"]))
        return
    try:
        ledger.aggregate(ctx.layout, ctx.run_id, ctx.model)
    except Exception as exc:  # the stage file is already safe
        result["warnings"].append("prep_result.json could not be rebuilt (stage JSON kept): %s" % exc)
    if result["status"] in ("ok", "skipped") and lock is not None:
        locks.remove_marker(ctx.layout.fs(contract.marker_path(ctx.stage)))
    _publish_metrics(ctx)
    if result["status"] == "error":
        ctx.say("%s failed: %s: %s" % (ctx.stage, result["error_type"], result["message"]))
    else:
        ctx.say("%s: %s" % (result["status"], result["message"]))


def _publish_metrics(ctx):
    """The priming state as metrics (node_exporter textfile), with this stage's record: a failure is a warning."""
    try:
        warning = metrics.publish(state.RunView(loaded=(ctx.pointer_info, ctx.manifest), model=ctx.model))
    except Exception as exc:  # metrics never fail a stage
        warning = "the metrics textfile could not be written: %s" % exc
    if warning:
        ctx.warn(warning)


def aggregate(pointer=None, model=None):
    _ptr, run_manifest = manifest.load_current(pointer)
    layout = Layout.from_manifest(run_manifest)
    return ledger.aggregate(layout, run_manifest["container_run_id"], model)

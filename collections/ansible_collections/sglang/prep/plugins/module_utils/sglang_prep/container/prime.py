# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One job per host for all its stages: ``python3 -m sglang_prep prime``.

Plans like ``plan`` (one toolchain probe), then runs, in order, every stage whose action is not
``none``: ``rebuild`` for the stages given with --rebuild, else ``ensure`` (a ``record`` action
is an ensure that records a noop without launching anything). It stops at the first stage that
fails; the stages after it are ``not_run``. Then it rebuilds prep_result.json, snapshots the
caches and returns the priming state (state.py).

Before the first stage starts it names the session log (stderr and the log itself) and writes
the progress file (progress.py), which it rewrites at every change until the job ends.
SIGTERM/SIGINT/SIGHUP stop the job: the running stage records ``interrupted`` (engine.py) and
the progress file says ``failed``.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import traceback

from ..errors import PrepError
from . import engine, ledger, metrics, plan, preflight, progress, sessionlog, state

SOURCE = "prime"


class SignalGuard(object):
    """Between stages, a stop signal ends the job the way it ends a stage: by raising engine.Interrupted once.

    While a stage runs, the engine's own handlers are in place (and put these back afterwards).
    """

    def __init__(self):
        self.armed = False
        self.previous = {}

    def install(self):
        if threading.current_thread() is threading.main_thread():
            for signum in engine.STOP_SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handler)
            self.armed = True
        return self

    def _handler(self, signum, _frame):
        if self.armed:
            self.armed = False
            raise engine.Interrupted(signum)

    def disarm(self):
        self.armed = False

    def restore(self):
        self.armed = False
        for signum, old in self.previous.items():
            signal.signal(signum, old)
        self.previous = {}


class Say(object):
    """Progress lines of the job: stderr, and the run's session log once the run is known."""

    def __init__(self, stream):
        self.stream = stream
        self.log_fs = None

    def __call__(self, message):
        try:
            self.stream.write("sglang_prep %s: %s\n" % (SOURCE, message))
            self.stream.flush()
        except (OSError, ValueError):
            pass
        if self.log_fs:
            try:
                sessionlog.log(self.log_fs, SOURCE, message)
            except OSError:
                pass


def _ran_row(result, planned):
    return dict(result, planned_mode=planned.get("planned_mode"), action=planned.get("action"),
                action_reason=planned.get("action_reason"))


def _unstarted_row(stage, planned, error_type, message):
    """A stage of to_run the job could not start: it failed, without a stage JSON."""
    row = dict(planned, stage=stage, status="error", status_code=1, ran=False, mode=None, error_type=error_type,
               message=message, started_at=None, finished_at=None, duration_s=None, log_tail=[])
    row.pop("reason", None)
    return row


def prime(stages, model, options=None, rebuild=(), stream=None, env=None):
    """Plan, then run the stages that need it, in order; returns the priming state (state.py).

    Raises PrepError when there is no usable run, or when the job is stopped before a stage ran.
    """
    guard = SignalGuard().install()
    try:
        return _prime(state.unique(stages), model, dict(options or {}), rebuild, stream or sys.stderr, env, guard)
    finally:
        guard.restore()


def _prime(stages, model, options, rebuild, stream, env, guard):
    start = time.monotonic()
    say = Say(stream)
    checked = _checked_plan(stages, model, options, rebuild, stream, env)
    view = checked.view
    info = view.info()
    to_run = checked.to_run(stages)
    say.log_fs = view.layout.fs(info["log_file_container"])
    log_file = info["log_file"] or info["log_file_container"]
    say("run %s: session log %s; progress %s" % (view.run_id, log_file,
                                                 info["progress_file"] or info["progress_file_container"]))
    writer = progress.ProgressWriter(view.layout.fs(info["progress_file_container"]), view.run_id, to_run, log_file, say)
    if to_run:
        say("%d of %d stages to run, in order: %s" % (len(to_run), len(stages), ", ".join(to_run)))
    else:
        say("nothing to run: every stage is primed and recorded in this run")
    rows = dict(checked.rows)
    done = []
    try:
        failed = _run_in_order(checked, to_run, model, options, stream, env, writer, rows, done, say)
    finally:
        guard.disarm()
    if failed is not None:
        for stage in to_run[to_run.index(failed) + 1:]:
            rows[stage] = state.not_run_row(stage, "%s failed first (%s)" % (failed, rows[failed].get("error_type")),
                                            base=checked.rows[stage])
    model_state = _final_state(checked, stages, rows, to_run, failed, writer, start, model)
    if to_run:
        # each stage rewrote the metrics with its record; the stages the job did not reach keep why they would run
        warning = metrics.publish(view, model_state)
        if warning:
            model_state["warnings"].append(warning)
            say("warning: " + warning)
    if failed is not None:
        say("stopped: %s" % model_state["stages"][failed]["reason"])
    else:
        say("%s: %d stage(s) run in %.1f s; prep_result %s"
            % (model_state["status"], len(done), time.monotonic() - start, model_state["aggregate"]))
    return model_state


def _checked_plan(stages, model, options, rebuild, stream, env):
    """plan.check of the stages; PrepError(interrupted) when a stop signal came while planning."""
    try:
        checked = plan.check(stages, model, options, rebuild, stream, env)
    except engine.Interrupted as exc:
        raise PrepError("interrupted", "the prime job got signal %d while planning; no stage ran" % exc.signum)
    if any(row.get("error_type") == "interrupted" for row in checked.rows.values()):
        raise PrepError("interrupted", "the prime job got a stop signal while planning; no stage ran")
    return checked


def _run_in_order(checked, to_run, model, options, stream, env, writer, rows, done, say):
    """Run the stages in order, filling ``rows`` and ``done``; the stage that failed (or was not started), or None."""
    view = checked.view
    try:
        for index, stage in enumerate(to_run, 1):
            planned = checked.rows[stage]
            eta = view.previous_duration(stage, model, checked.recorded) if planned["action"] == "run" else None
            writer.stage_started(index, stage, eta)
            say("stage %d/%d: %s %s (%s)" % (index, len(to_run), planned["planned_mode"], stage, planned["action_reason"]))
            result = engine.run_stage(stage, model, dict(options, mode=planned["planned_mode"]), stream=stream, env=env,
                                      shared_probe=checked.probe, progress=writer.step)
            rows[stage] = _ran_row(result, planned)
            done.append(stage)
            writer.stage_finished(stage, result["status"], result["duration_s"])
            if result["status"] == "error":
                return stage
    except (engine.Interrupted, Exception) as exc:  # between two stages, or a defect of the job itself
        pending = [stage for stage in to_run if stage not in done]
        if pending:
            rows[pending[0]] = _unstarted_row(pending[0], checked.rows[pending[0]], *_job_error(exc, pending, say))
            writer.stage_finished(pending[0], "error", None)
            return pending[0]
        _job_error(exc, pending, say)
    return None


def _job_error(exc, pending, say):
    """(error_type, message) of what stopped the job between two stages."""
    if isinstance(exc, engine.Interrupted):
        return ("interrupted", "the prime job got signal %d before %s started, so it did not run; run prime "
                "again" % (exc.signum, pending[0] if pending else "the end"))
    known = preflight.os_failure(exc, "the prime job") if isinstance(exc, OSError) else None
    if known is not None:
        return (known.error_type, known.message)
    say("internal error:\n" + traceback.format_exc())
    return ("internal_error", "unexpected %s in the prime job: %s (traceback in the session log)"
            % (type(exc).__name__, exc))


def _final_state(checked, stages, rows, to_run, failed, writer, start, model):
    """The job's priming state: the aggregate rebuilt from the stage files, the progress file finished."""
    view = checked.view
    warnings = list(checked.problems)
    prep = None
    try:  # always, also when nothing ran: the aggregate is rebuilt from the stage files, never trusted as found
        prep = ledger.aggregate(view.layout, view.run_id, model)
    except Exception as exc:  # the stage files are safe; the aggregate is read back below if it exists
        warnings.append("prep_result.json could not be rebuilt (stage JSONs kept): %s" % exc)
    error = rows[failed] if failed is not None else {}
    final = writer.finish(failed is not None, error.get("error_type"), error.get("message"))
    warnings.extend(writer.warnings)
    return state.build("prime", view, stages, rows, to_run, start, warnings=warnings, prep_result=prep,
                       progress=final)

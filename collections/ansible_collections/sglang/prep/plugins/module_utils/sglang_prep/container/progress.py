# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The progress file of a prime job: telemetry/container_runs/<run_id>/progress.json.

Rewritten atomically whenever something changes (a stage starts or ends, a stage reports its
next step, the job ends), never on a timer, so a host can poll it while the job runs. A write
that fails is a warning: progress never fails a stage.
"""

from __future__ import annotations

import os
import time

from .. import contract, jsonio
from . import ledger


class ProgressWriter(object):
    """Keeps the progress of one prime job and writes it to ``path`` (a filesystem path) at every change."""

    def __init__(self, path, run_id, stages, log_file, say):
        self.path = path
        self.say = say
        self.warnings = []
        self._started = time.monotonic()
        self._stage_started = None
        self._eta_base = None
        now = ledger.iso(ledger.utc_now())
        self.data = {
            "schema_version": contract.SCHEMA_VERSION, "run_id": run_id, "pid": os.getpid(),
            "started_at": now, "updated_at": now, "state": "running", "stages": list(stages),
            "index": 0, "count": len(stages), "stage": None, "step": None, "elapsed_s": 0.0,
            "stage_elapsed_s": None, "eta_s": None, "log_file": log_file, "finished": [],
            "error_type": None, "message": None,
        }

    def _stage_elapsed(self):
        return round(time.monotonic() - self._stage_started, 3) if self._stage_started is not None else None

    def write(self):
        data = self.data
        data["updated_at"] = ledger.iso(ledger.utc_now())
        data["elapsed_s"] = round(time.monotonic() - self._started, 3)
        if self._stage_started is not None:  # a stage is running: its clock and what is left of its estimate
            data["stage_elapsed_s"] = self._stage_elapsed()
            data["eta_s"] = (round(max(0.0, self._eta_base - data["stage_elapsed_s"]), 1)
                             if self._eta_base is not None else None)
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            jsonio.write_json_atomic(self.path, data)
        except Exception as exc:  # progress is best-effort: the stage goes on
            try:
                os.unlink(self.path + ".tmp")
            except OSError:
                pass
            message = "the progress file %s could not be written (%s); the stages go on without it" % (self.path, exc)
            if message not in self.warnings:
                self.warnings.append(message)
                self.say("warning: " + message)

    def stage_started(self, index, stage, eta_s):
        """Stage ``index`` (1-based) of the job starts; ``eta_s`` is its expected duration, or None."""
        self._stage_started = time.monotonic()
        self._eta_base = eta_s
        self.data.update(index=index, stage=stage, step=None)
        self.write()

    def step(self, stage, index, count, label):
        """The stage reports step ``index`` of ``count`` (engine.StageContext.progress); written if it changed."""
        step = {"index": int(index), "count": int(count), "label": str(label)}
        if stage != self.data["stage"] or step == self.data["step"]:
            return
        self.data["step"] = step
        self.write()

    def stage_finished(self, stage, status, duration_s):
        self.data["finished"].append({"stage": stage, "status": status, "duration_s": duration_s})
        self.data["stage_elapsed_s"] = self._stage_elapsed()
        self._stage_started = None
        self._eta_base = None
        self.data["eta_s"] = None
        self.write()

    def finish(self, failed, error_type=None, message=None):
        """The job ends: state done (or failed, with the first failure)."""
        self.data.update(state="failed" if failed else "done", error_type=error_type, message=message, eta_s=None)
        self.write()
        return dict(self.data)

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The priming state: one JSON object that says where every requested stage of a run stands.

Built here, once, by the runtime, for the three commands that answer about several stages:

  plan    rows are check answers (what ensure or rebuild would do, and why); nothing is written
  prime   rows are what the job ran (check answers for the stages it had nothing to do for)
  report  rows are what the current run has recorded (stage JSONs; not_run where there is none)

The host modules return it as is and the role's templates only format it: the wording of a
row (``reason``), the aggregate status (ledger.aggregate's, read back, never recomputed), the GPU
and signature group, the cache sizes: all of it is decided here. docs/runtime.md describes
every key.
"""

from __future__ import annotations

import time

from .. import caches, contract, jsonio, manifest
from .. import registry, wording
from ..wording import reason
from . import ledger, signature
from .layout import Layout

ROW_STATUSES = ("ok", "noop", "skipped", "installed", "error", "would_run", "not_run")
GPU_FIELDS = ("device_name", "compute_capability", "driver_version", "cuda")
# Every row has these keys (a row is the stage's result, or its stage JSON, plus these).
ROW_DEFAULTS = (
    ("status", None), ("ran", False), ("mode", None), ("planned_mode", None), ("action", None),
    ("action_reason", None), ("duration_s", None), ("error_type", None), ("message", None),
    ("reprime_reasons", []), ("signature", None), ("previous_signature", None), ("signature_group", None),
    ("stage_json", None), ("stage_json_host", None), ("log_tail", []), ("warnings", []), ("zero_jit", None),
)


def unique(stages):
    """The stages in the order given, each once."""
    return list(dict.fromkeys(stages))


def not_run_row(stage, message, base=None):
    """A row for a stage that did not run: ``base`` (its plan row) keeps the why, the status says not_run."""
    row = dict(base or {}, stage=stage, status="not_run", status_code=None, ran=False, mode=None, message=message,
               error_type=None, started_at=None, finished_at=None, duration_s=None, log_tail=[])
    row.pop("reason", None)
    return row


# ---------------------------------------------------------------- the run
class RunView(object):
    """The current run as the state model reads it: pointer, manifest, layout, what is recorded."""

    def __init__(self, pointer_file=None, loaded=None, snapshot=None, model=None):
        """The run the pointer names; ``loaded`` ((pointer, manifest) already read) skips reading them again.

        ``snapshot`` is a cache snapshot just taken (caches.snapshot), used instead of taking another.
        ``model``: whose records the view reads (records are kept per model); default the run's latest model.
        """
        self.pointer, self.manifest = loaded or manifest.load_current(pointer_file)
        self.layout = Layout.from_manifest(self.manifest)
        self.run_id = self.manifest["container_run_id"]
        self._snapshot = snapshot
        self.model = model or ledger.latest_model(self.layout, self.run_id)
        self.prep_problem = None

    def host(self, container_path):
        return manifest.host_path(self.manifest, container_path)

    def info(self):
        """run: ids and paths, host paths first (null where the role passed no host roots)."""
        cpaths = self.manifest["paths"]["container"]
        hpaths = self.manifest["paths"].get("host") or {}
        progress = contract.progress_path(self.run_id)
        return {
            "run_id": self.run_id,
            "manifest": self.pointer.get("host") or self.host(self.layout.contract_path(cpaths.get("manifest"))),
            "manifest_container": self.pointer.get("container"),
            "log_file": hpaths.get("log_file") or self.host(self.layout.contract_path(cpaths.get("log_file"))),
            "log_file_container": cpaths.get("log_file"),
            "progress_file": self.host(progress),
            "progress_file_container": progress,
            "server_port": self.manifest.get("server_port"),
            "paths": {"container": cpaths, "host": hpaths},
        }

    def recorded(self):
        """({stage: this run's stage JSON for the view's model}, [problems])."""
        return ledger.load_stages(self.layout, self.run_id, self.model)

    def prep_result_path(self):
        """Contract path of the model's aggregate (the run's when the run has recorded no model yet)."""
        if self.model:
            return contract.model_prep_result_path(self.run_id, self.model)
        return contract.prep_result_path(self.run_id)

    def prep_result(self):
        """The recorded aggregate, or None; an unreadable one also sets ``prep_problem`` (validate names it)."""
        self.prep_problem = None
        path = self.prep_result_path()
        try:
            data = jsonio.read_json(self.layout.fs(path))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self.prep_problem = ("%s is unreadable (%s): prime again to rebuild it from the stage files"
                                 % (self.host(path) or path, exc))
            return None
        if not isinstance(data, dict):
            self.prep_problem = ("%s is not a JSON object: prime again to rebuild it from the stage files"
                                 % (self.host(path) or path))
            return None
        return data

    def progress(self):
        try:
            data = jsonio.read_json(self.layout.fs(contract.progress_path(self.run_id)))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def caches(self):
        """The cache snapshot, in the shape of module sglang_cache_inspect's result."""
        host_profiles = (self.manifest["paths"].get("host") or {}).get("profiles_root")
        snap = self._snapshot if self._snapshot is not None else caches.snapshot(self.layout.profiles_root, host_profiles)
        return {"profiles_root": host_profiles, "caches": snap,
                "partial_stages": caches.in_progress_stages(self.layout.profiles_root),
                "total_bytes": sum(entry["size"] for entry in snap.values())}

    def primed_at(self, stage, model):
        """When the stage's cache was last primed for ``model`` (its signature.json), or None."""
        if not model:
            return None
        data, _problem = signature.read_record(self.layout.fs(contract.signature_path(stage, model)))
        return (data or {}).get("written_at")

    def previous_duration(self, stage, model, recorded=None):
        """Seconds the last successful run of a stage took: this run's stage JSON, else its signature.json."""
        entry = (recorded or {}).get(stage) or {}
        value = entry.get("duration_s") if entry.get("status") == "ok" and entry.get("ran") else None
        if value is None and model:
            data, _problem = signature.read_record(self.layout.fs(contract.signature_path(stage, model)))
            value = (data or {}).get("duration_s")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# ---------------------------------------------------------------- the model
def _cache_entry(stage, snapshot):
    name = contract.STAGE_CACHE[stage]
    entry = (snapshot.get("caches") or {}).get(name) or {}
    return {"name": name, "path": contract.stage_cache_dir(stage), "host_path": entry.get("host_path"),
            "bytes": entry.get("size", 0), "files": entry.get("count", 0), "partial": bool(entry.get("partial"))}


def _finish_row(view, stage, row, snapshot, recorded):
    row = dict(row)
    row["stage"] = stage
    for key, default in ROW_DEFAULTS:
        if row.get(key) is None:
            row[key] = list(default) if isinstance(default, list) else default
    if row["status"] not in ROW_STATUSES:
        row["status"] = "error" if row["error_type"] else "not_run"
    if not row["stage_json"] and stage in recorded:
        row["stage_json"] = contract.stage_json_path(view.run_id, stage, recorded[stage].get("model") or view.model)
    if row["stage_json"] and not row["stage_json_host"]:
        row["stage_json_host"] = view.host(row["stage_json"])
    row["cache"] = _cache_entry(stage, snapshot)
    row["primed_at"] = view.primed_at(stage, row.get("model"))
    row["reason"] = reason(stage, row)
    return row


def outcome(order, rows):
    """(status, error_type, message, failed_stage): error at the first failed row, else changed or ok."""
    for stage in order:
        row = rows[stage]
        if row["status"] == "error":
            return "error", row["error_type"], row["message"], stage
    changed = any((rows[s]["status"] == "ok" and rows[s]["ran"]) or rows[s]["status"] == "would_run" for s in order)
    return ("changed" if changed else "ok"), None, None, None


def _gpu(order, rows, prep):
    """(gpu, signature_group) from the first row with a signature, else the aggregate's run section."""
    for stage in order:
        fields = rows[stage].get("signature") or {}
        if fields:
            return dict((key, fields.get(key)) for key in GPU_FIELDS), signature.group(fields)
    section = (prep or {}).get("run") or {}
    return dict((key, section.get(key)) for key in GPU_FIELDS), section.get("signature_group")


def build(command, view, order, rows, to_run, started_mono, warnings=(), recorded=None, prep_result=None,
          progress=None):
    """The priming state of ``view``'s run for the stages of ``order``; ``rows`` maps each to its raw row.

    ``prep_result`` is the aggregate the caller just rebuilt (ledger.aggregate), else it is read back.
    """
    order = list(order)
    snapshot = view.caches()
    if recorded is None:
        recorded, _problems = view.recorded()
    finished = dict((stage, _finish_row(view, stage, rows[stage], snapshot, recorded)) for stage in order)
    prep = prep_result if prep_result is not None else view.prep_result()
    warnings = list(warnings)
    prep_problem = view.prep_problem if prep_result is None else None
    if prep_problem and prep_problem not in warnings:
        warnings.append(prep_problem)
    status, error_type, message, failed_stage = outcome(order, finished)
    gpu, group = _gpu(order, finished, prep)
    zero_jit, zero_jit_reason = wording.zero_jit(finished.get(registry.SERVE_CHECK.name),
                                                 recorded.get(registry.SERVE_CHECK.name))
    return {
        "schema_version": contract.SCHEMA_VERSION,
        "command": command,
        "status": status,
        "error_type": error_type,
        "message": message,
        "failed_stage": failed_stage,
        "run": view.info(),
        "order": order,
        "stages": finished,
        "to_run": [stage for stage in order if stage in to_run],
        "caches": snapshot,
        "aggregate": (prep or {}).get("status"),
        "prep_result": prep,
        "prep_result_path": view.host(view.prep_result_path()),
        "prep_result_problem": prep_problem,
        "gpu": gpu,
        "signature_group": group,
        "zero_jit": zero_jit,
        "zero_jit_reason": zero_jit_reason,
        "serve": ledger.serve_summary(ledger.load_serve(view.layout, view.run_id, view.model)),
        "progress": progress,
        "finished_at": ledger.iso(ledger.utc_now()),
        "duration_s": round(time.monotonic() - started_mono, 3),
        "warnings": list(warnings),
    }


# ---------------------------------------------------------------- report
def report(stages=None, model=None, pointer=None, view=None):
    """The priming state of the current run from what is recorded: no checks, no probes, writes nothing."""
    start = time.monotonic()
    view = view or RunView(pointer, model=model)
    order = unique(stages or contract.STAGE_ORDER)
    recorded, problems = view.recorded()
    rows = {}
    for stage in order:
        entry = recorded.get(stage)
        if entry is None:
            rows[stage] = not_run_row(stage, "no record of it in this run", base={"model": model})
        else:
            rows[stage] = entry
    progress = view.progress()
    planned = (progress or {}).get("stages") or []
    return build("report", view, order, rows, planned, start, warnings=problems,
                 recorded=recorded, progress=progress)

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stage results on disk: one atomic JSON per stage, then the run's prep_result.json rebuilt from them.

The stage files are the source of truth. The aggregate only ever reads them, so a failed
aggregation can never lose a recorded stage result.
"""

from __future__ import annotations

import datetime
import fcntl
import os

from .. import contract, jsonio, registry, wording
from . import signature

WARMUP_STAGES = tuple(reversed(registry.warmup_stages()))  # newest telemetry probe first
SUCCESS = ("ok", "noop", "skipped", "installed")


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def parse_iso(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def _model_file(layout, run_id, model):
    return layout.fs(contract.model_run_dir(run_id, model) + "/model.json")


def write_stage(layout, run_id, stage, result):
    """Write the stage JSON (the last attempt) atomically, and on success the last success too; returns its contract path.

    Records are keyed by model: a second model, a broken one, or a failed rebuild never touches another
    model's records, nor the stage's last success. OSError (ENOSPC included) goes to the caller.
    """
    model = result.get("model")
    path = contract.stage_json_path(run_id, stage, model)
    os.makedirs(os.path.dirname(layout.fs(path)), exist_ok=True)
    if not os.path.exists(_model_file(layout, run_id, model)):
        jsonio.write_json_atomic(_model_file(layout, run_id, model),
                                 {"model": model, "model_key": contract.model_key(model)})
    jsonio.write_json_atomic(layout.fs(path), result)
    if result.get("status") in SUCCESS:
        jsonio.write_json_atomic(layout.fs(contract.stage_last_ok_path(run_id, stage, model)), result)
    return path


def run_models(layout, run_id):
    """{model path: model key} of every model that has records in the run."""
    out = {}
    base = layout.fs(contract.models_dir(run_id))
    try:
        keys = sorted(os.listdir(base))
    except OSError:
        return out
    for key in keys:
        try:
            data = jsonio.read_json(os.path.join(base, key, "model.json"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("model"):
            out[data["model"]] = key
    return out


def _load(layout, paths):
    stages, problems = {}, []
    for stage, path in paths:
        try:
            data = jsonio.read_json(layout.fs(path))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            problems.append("%s: stage file %s is unreadable (%s)" % (stage, path, exc))
            continue
        if isinstance(data, dict):
            stages[stage] = data
        else:
            problems.append("%s: stage file %s is not a JSON object" % (stage, path))
    return stages, problems


def load_stages(layout, run_id, model):
    """({stage: stage JSON (last attempt)}, [problems]) for every stage file of one model in the run, in stage order."""
    if not model:
        return {}, []
    return _load(layout, [(stage, contract.stage_json_path(run_id, stage, model)) for stage in contract.STAGE_ORDER])


def load_last_ok(layout, run_id, model):
    """({stage: its last successful stage JSON}, [problems]) of one model in the run."""
    if not model:
        return {}, []
    return _load(layout, [(stage, contract.stage_last_ok_path(run_id, stage, model)) for stage in contract.STAGE_ORDER])


# The serving server's record (container/serve.py): beside the stage JSONs, summarised in the aggregate
SERVE_RECORD = "serve"


def load_serve(layout, run_id, model):
    """The model's serve record in the run (the last serve of it), or None."""
    if not model:
        return None
    stages, _problems = _load(layout, [(SERVE_RECORD, contract.stage_json_path(run_id, SERVE_RECORD, model))])
    return stages.get(SERVE_RECORD)


def serve_summary(record):
    """What the state, the aggregate and the reports show of a serve record (None without one)."""
    if not isinstance(record, dict):
        return None
    server = record.get("server") or {}
    return {"model": record.get("model"), "status": record.get("status"), "zero_jit": record.get("zero_jit"), "error_type": record.get("error_type"),
            "message": record.get("message"), "finished_at": record.get("finished_at"), "port": server.get("port"),
            "server_pid": server.get("server_pid"), "digest": server.get("digest"), "left_running": server.get("left_running"),
            "first_text": record.get("first_text")}


def latest_model(layout, run_id):
    """The model whose stage finished last in the run (what a report without --model answers for), or None."""
    best, best_at = None, ""
    for model in run_models(layout, run_id):
        stages, _problems = load_stages(layout, run_id, model)
        finished = max([s.get("finished_at") or "" for s in stages.values()] or [""])
        if best is None or finished > best_at:
            best, best_at = model, finished
    return best


def _run_section(run_id, stages):
    latest = max(stages.values(), key=lambda s: s.get("finished_at") or "") if stages else {}
    fields = latest.get("signature") or {}
    starts = [parse_iso(s.get("started_at")) for s in stages.values()]
    ends = [parse_iso(s.get("finished_at")) for s in stages.values()]
    starts = [s for s in starts if s]
    ends = [e for e in ends if e]
    run = {"run_id": run_id, "model": latest.get("model"), "model_slug": fields.get("model_slug"),
           "tp": latest.get("tp")}
    for field in signature.GROUP_FIELDS:
        run[field] = fields.get(field)
    run["signature_group"] = signature.group(fields) if fields else None
    run["started_at"] = iso(min(starts)) if starts else None
    run["finished_at"] = iso(max(ends)) if ends else None
    run["duration_s"] = round((max(ends) - min(starts)).total_seconds(), 3) if starts and ends else None
    run["stage_seconds"] = round(sum(float(s.get("duration_s") or 0) for s in stages.values()), 3)
    settings = {"source": "flags"}
    settings.update(contract.CANONICAL_SETTINGS)
    run["settings"] = settings
    return run


def _last_ok_section(stages, last_ok):
    """{stage: where its last success stands} for the stages whose last attempt was not a success."""
    out = {}
    for name, entry in last_ok.items():
        if (stages.get(name) or {}).get("status") not in SUCCESS:
            out[name] = {"status": entry.get("status"), "finished_at": entry.get("finished_at"),
                         "run_id": entry.get("run_id"), "message": entry.get("message")}
    return out


def build_prep_result(run_id, stages, problems=(), last_ok=None):
    errors = [{"stage": name, "error_type": s.get("error_type"), "message": s.get("message")}
              for name, s in stages.items() if s.get("status") == "error"]
    warnings = ["%s: %s" % (name, w) for name, s in stages.items() for w in (s.get("warnings") or [])]
    warnings.extend(problems)
    succeeded = [n for n, s in stages.items() if s.get("status") in SUCCESS]
    if errors or problems:
        status = "partial" if succeeded else "error"
    elif not stages:
        status = "partial"
        warnings.append("no stage has recorded a result in this run yet")
    else:
        status = "ok"
    probe = None
    for name in WARMUP_STAGES:
        if (stages.get(name) or {}).get("telemetry_probe"):
            probe = dict(stages[name]["telemetry_probe"], stage=name)
            break
    zero_jit, zero_jit_reason = wording.zero_jit(stages.get(registry.SERVE_CHECK.name))
    return {
        "schema_version": contract.SCHEMA_VERSION,
        "status": status,
        "zero_jit": zero_jit,
        "zero_jit_reason": zero_jit_reason,
        "run": _run_section(run_id, stages),
        "stages": stages,
        "stages_missing": [s for s in contract.STAGE_ORDER if s not in stages],
        # the last success of each stage whose last attempt failed: kept apart, never overwritten by the failure
        "last_ok": _last_ok_section(stages, last_ok or {}),
        "telemetry_probe": probe,
        "errors": errors,
        "warnings": warnings,
        "generated_at": iso(utc_now()),
    }


def _model_index(layout, run_id, results):
    return dict((contract.model_key(model), {
        "model": model, "status": prep.get("status"), "zero_jit": prep.get("zero_jit"),
        "finished_at": (prep.get("run") or {}).get("finished_at"),
        "prep_result": contract.model_prep_result_path(run_id, model)}) for model, prep in sorted(results.items()))


def aggregate(layout, run_id, model=None):
    """Rebuild every model's prep_result.json from its stage files, then the run's (serialised by a flock).

    The run's prep_result.json is the aggregate of ``model`` (default: the model whose stage finished last)
    plus ``models``, an index of every model the run recorded. Returns the aggregate of ``model``.
    OSError (ENOSPC included) goes to the caller: the stage files are never touched here.
    """
    run_fs = layout.fs(contract.run_dir(run_id))
    os.makedirs(run_fs, exist_ok=True)
    dir_fd = os.open(run_fs, os.O_RDONLY)
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        models = list(run_models(layout, run_id))
        if model and model not in models:
            models.append(model)
        results = {}
        for name in models:
            stages, problems = load_stages(layout, run_id, name)
            last_ok, ok_problems = load_last_ok(layout, run_id, name)
            results[name] = build_prep_result(run_id, stages, problems + ok_problems, last_ok)
            results[name]["run"]["model"] = name
            results[name]["serve"] = serve_summary(load_serve(layout, run_id, name))
            os.makedirs(layout.fs(contract.model_run_dir(run_id, name)), exist_ok=True)
            jsonio.write_json_atomic(layout.fs(contract.model_prep_result_path(run_id, name)), results[name])
        chosen = model or latest_model(layout, run_id)
        current = results.get(chosen) if chosen else build_prep_result(run_id, {})
        run_level = dict(current, models=_model_index(layout, run_id, results))
        jsonio.write_json_atomic(layout.fs(contract.prep_result_path(run_id)), run_level)
        return current
    finally:
        os.close(dir_fd)

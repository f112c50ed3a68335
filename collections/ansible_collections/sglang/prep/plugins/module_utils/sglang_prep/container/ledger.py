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


def stages_dir(layout, run_id):
    return os.path.dirname(layout.fs(contract.stage_json_path(run_id, contract.STAGE_ORDER[0],
                                                              contract.TELEMETRY_ROOT)))


def write_stage(layout, run_id, stage, result):
    """Write the stage JSON atomically; returns its contract path."""
    path = contract.stage_json_path(run_id, stage, contract.TELEMETRY_ROOT)
    os.makedirs(os.path.dirname(layout.fs(path)), exist_ok=True)
    jsonio.write_json_atomic(layout.fs(path), result)
    return path


def load_stages(layout, run_id):
    """({stage: stage JSON}, [problems]) for every stage file of the run, in stage order."""
    stages, problems = {}, []
    for stage in contract.STAGE_ORDER:
        path = layout.fs(contract.stage_json_path(run_id, stage, contract.TELEMETRY_ROOT))
        try:
            data = jsonio.read_json(path)
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


def build_prep_result(run_id, stages, problems=()):
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
        "telemetry_probe": probe,
        "errors": errors,
        "warnings": warnings,
        "generated_at": iso(utc_now()),
    }


def aggregate(layout, run_id):
    """Rebuild prep_result.json from the stage files present (serialised by a flock on the stages dir)."""
    sdir = stages_dir(layout, run_id)
    dir_fd = os.open(sdir, os.O_RDONLY) if os.path.isdir(sdir) else None
    try:
        if dir_fd is not None:
            fcntl.flock(dir_fd, fcntl.LOCK_EX)
        stages, problems = load_stages(layout, run_id)
        result = build_prep_result(run_id, stages, problems)
        os.makedirs(layout.fs(contract.run_dir(run_id)), exist_ok=True)
        jsonio.write_json_atomic(layout.fs(contract.prep_result_path(run_id, contract.TELEMETRY_ROOT)), result)
        return result
    finally:
        if dir_fd is not None:
            os.close(dir_fd)

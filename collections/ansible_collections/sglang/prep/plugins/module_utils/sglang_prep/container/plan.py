# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan: for every requested stage at once, what ensure (or rebuild) would do and why.

Each stage is asked in check mode (the engine's own decision, one toolchain probe for all of
them), and its answer is compared with what the current run has already recorded for it. The
plan writes nothing and launches nothing. Its ``action`` per stage tells the caller what is left:

  run     the stage would run: its signature differs, an earlier run did not finish, it is rebuilt,
          or the check itself failed (running it records the failure in the stage JSON)
  record  nothing to prime, but this run has no matching record of the stage yet (a new container
          run, or a recorded failure): an ensure writes its noop stage JSON
  none    primed, and this run's stage JSON already says so
"""

from __future__ import annotations

import os
import time

from .. import caches, contract, manifest
from . import engine, ledger
from .layout import Layout
from .probe import Probe

REBUILD_REASON = {"field": "mode", "old": None, "new": "rebuild"}


def _action(result, recorded):
    """(action, why) for one stage from its check result and this run's stage JSON (or None)."""
    status = result.get("status")
    if status == "would_run":
        return "run", result.get("message") or "ensure would run it"
    if status == "error":
        return "run", "the check failed (%s); running the stage records the failure" % result.get("error_type")
    if recorded is None:
        return "record", "primed, but this run has no record of it yet"
    if recorded.get("status") not in ledger.SUCCESS:
        return "record", "primed, but this run recorded %s for it" % recorded.get("status")
    if recorded.get("signature") != result.get("signature"):
        return "record", "primed, but this run recorded it with another signature"
    return "none", "primed, and recorded in this run"


def _rebuild(stage, result):
    """A stage the caller rebuilds: what ensure found, plus the reason a rebuild always has."""
    if result.get("status") in ("noop", "would_run"):
        result["reprime_reasons"] = list(result.get("reprime_reasons") or []) + [dict(REBUILD_REASON)]
        result.update(status="would_run", would_run=True, message="rebuild would run %s regardless of its signature" % stage)


def _run_info(pointer, run_manifest):
    cpaths = run_manifest["paths"]["container"]
    hpaths = run_manifest["paths"].get("host") or {}
    return {
        "run_id": run_manifest["container_run_id"],
        "manifest": pointer.get("host") or manifest.host_path(run_manifest, cpaths.get("manifest")),
        "manifest_container": pointer.get("container"),
        "log_file": hpaths.get("log_file") or manifest.host_path(run_manifest, cpaths.get("log_file")),
        "paths": {"container": cpaths, "host": hpaths},
    }


def _caches(layout, run_manifest):
    """The cache snapshot in the shape of module sglang_cache_inspect's result."""
    host_profiles = (run_manifest["paths"].get("host") or {}).get("profiles_root")
    snap = caches.snapshot(layout.profiles_root, host_profiles)
    return {"profiles_root": host_profiles, "caches": snap, "partial_stages": caches.in_progress_stages(layout.profiles_root),
            "total_bytes": sum(entry["size"] for entry in snap.values())}


def plan(stages, model, options=None, rebuild=(), stream=None, env=None):
    """The plan of ``stages`` (in the given order) for ``model``; raises PrepError when there is no usable run."""
    start = time.monotonic()
    options = dict(options or {})
    ptr, run_manifest = manifest.load_current(options.get("pointer"))
    layout = Layout.from_manifest(run_manifest)
    run_id = run_manifest["container_run_id"]
    recorded, problems = ledger.load_stages(layout, run_id)
    base_env = dict(os.environ if env is None else env)
    shared = Probe(options.get("python") or engine.DEFAULTS["python"], base_env)
    results = {}
    for stage in stages:
        result = engine.run_stage(stage, model, dict(options, mode="check"), stream=stream, env=base_env, shared_probe=shared)
        if stage in rebuild:
            _rebuild(stage, result)
        result["planned_mode"] = "rebuild" if stage in rebuild else "ensure"
        result["action"], result["action_reason"] = _action(result, recorded.get(stage))
        results[stage] = result
    try:
        prep = ledger.jsonio.read_json(layout.fs(contract.prep_result_path(run_id)))
    except (OSError, ValueError):
        prep = None
    return {
        "schema_version": contract.SCHEMA_VERSION,
        "run": _run_info(ptr, run_manifest),
        "stages": results,
        "to_run": [stage for stage in stages if results[stage]["action"] != "none"],
        "prep_result": prep,
        "caches": _caches(layout, run_manifest),
        "warnings": problems,
        "duration_s": round(time.monotonic() - start, 3),
    }

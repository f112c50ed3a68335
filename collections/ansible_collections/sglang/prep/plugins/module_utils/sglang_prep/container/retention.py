# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention of per-run telemetry data: the Prometheus TSDB and config (telemetry/prometheus/<run_id>/)
and the Jaeger storage (telemetry/jaeger/<run_id>/) of all but the newest runs.

Init prunes at start, as devuser, after it laid out the new run: the current run and the
``keep - 1`` newest before it stay (``keep`` comes from SGLANG_PREP_TELEMETRY_KEEP_RUNS, default
contract.TELEMETRY_KEEP_RUNS; 0 keeps everything). Only directories named like a run id are
candidates: anything else under those directories (a symlink, a file, a directory an operator
put there) is never touched, nor is the current run's. Manifests, session logs and stage records
are small and stay. A directory that cannot be deleted is a warning, never a failure.
"""

from __future__ import annotations

import os
import shutil

from .. import contract
from . import runid

SERVICES = ("prometheus", "jaeger")  # telemetry/<service>/<run_id>/ per run


def keep_runs(env):
    """(keep, warning): how many runs keep their telemetry data; an unusable value keeps all, with a warning."""
    text = (env.get(contract.ENV_TELEMETRY_KEEP_RUNS) or "").strip()
    if not text:
        return contract.TELEMETRY_KEEP_RUNS, None
    if text.isdigit():
        return int(text), None
    return 0, ("%s=%r is not a whole number of runs; no run's telemetry data is pruned (set it to how many runs "
               "keep theirs, 0 for all; the prime role's prime_telemetry_keep_runs)" % (contract.ENV_TELEMETRY_KEEP_RUNS, text))


def candidates(telemetry_root, current_run_id):
    """{service: [run ids, oldest first]}: run directories other than the current run's, real directories only."""
    out = {}
    for service in SERVICES:
        parent = os.path.join(telemetry_root, service)
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        runs = []
        for name in names:
            path = os.path.join(parent, name)
            if name != current_run_id and runid.is_run_id(name) and os.path.isdir(path) and not os.path.islink(path):
                runs.append(name)
        out[service] = sorted(runs)  # run ids sort by their UTC start time
    return out


def prune(telemetry_root, current_run_id, keep):
    """Delete the per-run telemetry data of all but the newest ``keep`` runs (the current one counts).

    Returns {"pruned": [paths deleted], "warnings": [...]}. ``keep`` 0 keeps everything.
    """
    result = {"pruned": [], "warnings": []}
    if keep <= 0:
        return result
    for service, runs in sorted(candidates(telemetry_root, current_run_id).items()):
        older = runs[:max(len(runs) - (keep - 1), 0)]
        for name in older:
            path = os.path.join(telemetry_root, service, name)
            try:
                shutil.rmtree(path)  # never follows a symlink inside the run's directory
            except OSError as exc:
                result["warnings"].append("could not delete the %s data of run %s (%s); what is left stays"
                                          % (service, name, exc))
            else:
                result["pruned"].append(path)
    return result

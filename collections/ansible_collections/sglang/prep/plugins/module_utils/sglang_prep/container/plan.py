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

The plan is a priming state (state.py) whose rows are these check answers; ``prime`` starts
from the same checks.
"""

from __future__ import annotations

import os
import time
from collections import namedtuple

from .. import registry
from . import bundle, engine, ledger, stack, state
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


class Checked(namedtuple("Checked", "view rows recorded problems probe")):
    """The checks of one plan: the run, each stage's check answer with its action, and the shared probe."""

    __slots__ = ()

    def to_run(self, stages):
        return [stage for stage in stages if self.rows[stage]["action"] != "none"]


def check(stages, model, options=None, rebuild=(), stream=None, env=None):
    """Check every stage as ``stage --mode check`` would (one toolchain probe) and decide its action.

    Raises PrepError when there is no usable run. Reads only.
    """
    options = dict(options or {})
    stages = state.unique(stages)
    view = state.RunView(options.get("pointer"), model=model)
    recorded, problems = view.recorded()
    base_env = dict(os.environ if env is None else env)
    shared = Probe(options.get("python") or engine.DEFAULTS["python"], base_env)
    # the pinned stack first: a refusal (stack_unpinned) comes before any stage is asked
    problems = list(problems) + stack.check(shared, options.get("require_pinned_stack"))
    rows = {}
    planned = {}  # signatures the stages that run before will record: their dependents see those
    for stage in stages:
        result = engine.run_stage(stage, model, dict(options, mode="check", planned_signatures=dict(planned)),
                                  stream=stream, env=base_env, shared_probe=shared)
        if stage in rebuild:
            _rebuild(stage, result)
        if result.get("status") == "would_run" and result.get("signature"):
            planned[stage] = result["signature"]
        result["planned_mode"] = "rebuild" if stage in rebuild else "ensure"
        result["action"], result["action_reason"] = _action(result, recorded.get(stage))
        rows[stage] = result
    return Checked(view, rows, recorded, problems, shared)


def plan(stages, model, options=None, rebuild=(), stream=None, env=None):
    """The plan of ``stages`` (in the given order) for ``model``: a priming state whose rows are check answers.

    Raises PrepError when there is no usable run.
    """
    start = time.monotonic()
    stages = state.unique(stages)
    checked = check(stages, model, options, rebuild, stream, env)
    out = state.build("plan", checked.view, stages, checked.rows, checked.to_run(stages), start,
                      warnings=checked.problems, recorded=checked.recorded)
    # the fleet's fan-out groups hosts by this key: hosts that share it can install each other's bundles
    out["bundle_group"] = bundle.plan_group(checked.rows)
    # the priming stages this host would run: what a bundle of its group would spare it
    out["bundle_to_run"] = [stage for stage in out["to_run"] if stage in registry.priming_stages()]
    return out

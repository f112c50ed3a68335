# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place a stage row is put in words: its ``reason`` line and its re-prime reasons.

Shared: the runtime words every row of the priming state with it (container/state.py), and the
host's fleet report uses the same words for its table.
"""

from __future__ import annotations

import json

from . import registry

VALUE_WIDTH = 60
SERVE_CHECK = registry.SERVE_CHECK.name


def _value(value):
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= VALUE_WIDTH else text[:VALUE_WIDTH - 3] + "..."


def reprime_text(reason):
    """One re-prime reason ({field, old, new}) in words."""
    field = reason.get("field")
    if field == "signature":
        new = str(reason.get("new") or "")
        return "no signature recorded" if not new or new.startswith("no signature at ") else new
    if field == "in_progress_marker":
        return "an earlier run did not finish"
    if field == "mode":
        return "rebuild asked"
    if reason.get("old") is None:
        return "%s: %s" % (field, _value(reason.get("new")))
    return "%s: %s -> %s" % (field, _value(reason.get("old")), _value(reason.get("new")))


def format_reasons(reasons):
    return "; ".join(reprime_text(r) for r in reasons or [])


def reason(stage, row):
    """ONE line of text for a row (or a stage result): what happened, or would, and why."""
    status = row.get("status")
    why = format_reasons(row.get("reprime_reasons"))
    if status == "ok":
        text = "%s ran and succeeded in %.1f s" % (stage, float(row.get("duration_s") or 0))
        if row.get("zero_jit") is True:
            text += ", zero JIT"
        text += " (because: %s)" % why if why else ""
    elif status == "noop" and stage == SERVE_CHECK:
        text = "%s is proven: its last check passed and nothing it depends on changed, nothing was launched" % stage
    elif status == "noop":
        text = "%s is primed: the recorded signature matches, nothing was launched" % stage
    elif status == "would_run":
        text = "%s would run: %s" % (stage, why or row.get("message") or "its cache is incomplete")
    elif status == "skipped":
        text = "%s skipped: %s" % (stage, row.get("message") or "not applicable")
    elif status == "not_run":
        text = "%s did not run: %s" % (stage, row.get("message") or "no record of it in this run")
    else:
        text = "%s failed (%s): %s" % (stage, row.get("error_type") or "unknown", row.get("message") or "no message")
    if row.get("action") == "record" and status in ("noop", "skipped") and row.get("mode") == "check":
        text += " (to be recorded in this run)"
    return text


def zero_jit(state_row, recorded=None):
    """(True|False|None, one line): does serving compile nothing, according to the serve check's row?

    ``recorded``: the check's stage JSON of this run, whose evidence a noop row (a check answer) refers to.
    """
    row = state_row or {}
    verdict = row.get("zero_jit")
    evidence = row.get("serve_check") or {}
    if not row:
        return None, "not checked: %s is not among the stages" % SERVE_CHECK
    if verdict is True:
        recorded = recorded or {}
        proof = recorded.get("serve_check") or {}
        if row.get("status") == "noop" and recorded.get("status") == "ok" and recorded.get("zero_jit") is True and \
                proof.get("summary") and recorded.get("signature") == row.get("signature"):
            return True, "yes: %s (proven at %s; nothing it depends on changed since)" % (
                proof["summary"], recorded.get("finished_at"))
        if row.get("status") == "noop" or not evidence.get("summary"):
            proven = row.get("proven_by") or {}
            return True, "yes: the last %s passed%s and nothing it depends on changed" % (
                SERVE_CHECK, " (run %s, %s)" % (proven.get("run_id"), proven.get("at")) if proven.get("run_id") else "")
        return True, "yes: " + evidence["summary"]
    if verdict is False:
        return False, "no: " + (row.get("message") or evidence.get("message") or "serve-time JIT found")
    return None, "not proven: " + reason(SERVE_CHECK, row)

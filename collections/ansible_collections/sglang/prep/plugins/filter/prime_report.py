# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json

DOCUMENTATION = r"""
name: prime_report
short_description: A host's prime_report, the runtime's priming state with what the role did on top
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.2.0
description:
  - Returns the runtime's priming state O(_input) unchanged (C(run), C(order), C(stages), C(caches), C(aggregate),
    C(prep_result_path), C(gpu), C(signature_group), C(zero_jit), C(zero_jit_reason), C(finished_at), ...) with the
    role's overlay on top. The overlay is C(host), C(status) (C(ok), C(changed) or C(failed)), C(failed_task),
    C(error_type) and C(message) of a failure, C(changes) (what the run changed on the host), C(runtime_modified),
    C(check_mode), C(container), C(model), C(tp) and C(fanout).
  - The state's C(container_mode) (V(caching) or V(serving)) is the mode the role left the container in, and its
    C(serving) is the serve-spec hand-off (the JSON C(python3 -m sglang_prep serve-spec) prints; null with the reason
    in C(serving_problem) before the serve check passed).
  - Stages a fan-out receiver installed from a bundle get the status C(installed) (and C(ran) true). A failed host
    without a priming state gets each planned stage with the status C(not_run), and the state's keys C(signature_group),
    C(gpu), C(zero_jit), C(zero_jit_reason), C(caches), C(aggregate), C(prep_result_path) and C(finished_at) null (or empty),
    and a C(run) whose C(run_id), C(manifest) and C(log_file) are null when no run was found.
  - Role C(sglang.prep.prime) sets the fact C(prime_report) with it; role C(sglang.prep.fleet_report) reads it from every host.
positional: _input, overlay
options:
  _input:
    description: The priming state (the C(state) that C(sglang.prep.sglang_stage) returned), or an empty dictionary.
    type: dict
    required: true
  overlay:
    description:
      - What the role knows. Keys read are C(host), C(failure) (C(task), C(error_type), C(msg); null when none),
        C(host_changes) (C(dirs), C(runtime)), C(runtime_modified), C(container_started) (bool),
        C(prep_result_rebuilt) (bool), C(check_mode), C(container), C(model), C(tp), C(stages) (the planned stages, for a
        host without a priming state), C(run) (the run, for a host without a priming state), C(fanout) (the host's place in
        the builder election, null without fan-out), C(fanout_result) (what moved), C(transfer), C(bundle_digest) and
        C(registry_result) (what the registry pull installed and the publish pushed; null without a registry),
        C(container_mode_switch) (the result of the role's C(container-mode) exec, when it switched the container mode).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Set prime_report
  ansible.builtin.set_fact:
    prime_report: "{{ state | sglang.prep.prime_report({'host': inventory_hostname, 'failure': none, 'check_mode': ansible_check_mode}) }}"
"""

RETURN = r"""
_value:
  description: The priming state with the overlay; see docs/usage.md (prime_report) for every key.
  type: dict
"""

FAILED_STAGE = "not_run"
# the keys of the priming state a report always has, null (or empty) for a host that failed before the runtime built one
STATE_DEFAULTS = (("signature_group", None), ("gpu", {}), ("zero_jit", None), ("zero_jit_reason", None), ("caches", {}),
                  ("aggregate", None), ("prep_result_path", None), ("finished_at", None), ("container_mode", None),
                  ("serving", None), ("serving_problem", None))
RESULT_PREFIX = "RESULT "


def _row(stage, state_rows, installed, failed, registry=None):
    if stage in installed:
        row = dict(state_rows.get(stage) or {"stage": stage, "duration_s": None, "error_type": None, "reprime_reasons": []})
        row.update(status="installed", ran=True)
        if stage in ((registry or {}).get("installed") or []):  # installed from the registry: which artifact
            row.update(source="registry", digest=registry.get("digest"))
        return row
    if stage in state_rows:
        return state_rows[stage]
    return {"stage": stage, "status": FAILED_STAGE if failed else None, "ran": False, "duration_s": None,
            "error_type": None, "reprime_reasons": [], "reason": None}


def mode_switch(exec_result):
    """The runtime's container-mode outcome (its RESULT line) from the role's docker exec, or None when the switch
    did not run or did not succeed."""
    exec_result = exec_result or {}
    if exec_result.get("rc") != 0:
        return None
    lines = [line for line in (exec_result.get("stdout_lines") or (exec_result.get("stdout") or "").splitlines())
             if line.startswith(RESULT_PREFIX)]
    if not lines:
        return None
    try:
        outcome = json.loads(lines[-1][len(RESULT_PREFIX):])
    except ValueError:
        return None
    return outcome if isinstance(outcome, dict) and outcome.get("status") == "ok" else None


def _host_changes(overlay):
    """What the run changed on the host before any stage: directories, the runtime, the container, its mode."""
    host_changes = overlay.get("host_changes") or []
    modified = overlay.get("runtime_modified") or []
    out = ["host directories"] if "dirs" in host_changes else []
    if "runtime" in host_changes:
        out.append("runtime (runtime_modified: %s)" % ", ".join(modified) if modified else "runtime")
    if overlay.get("container_started"):
        out.append("container")
    switched = mode_switch(overlay.get("container_mode_switch"))
    if switched and switched.get("changed"):
        out.append("container mode %s (Prometheus reloaded)" % switched.get("mode"))
    return out


def changes(state, overlay, installed):
    """What this run changed on the host, in the order it happened."""
    out = _host_changes(overlay)
    rows = state.get("stages") or {}
    order = state.get("order") or list(rows)
    out += ["stage %s" % s for s in order if (rows.get(s) or {}).get("ran") and rows[s].get("status") == "ok"]
    out += ["stage %s (installed)" % s for s in installed]
    if overlay.get("prep_result_rebuilt"):
        out.append("prep_result.json (rebuilt: it was unreadable)")
    if overlay.get("check_mode"):
        out += ["stage %s" % s for s in order if (rows.get(s) or {}).get("status") == "would_run"]
    return out


def _fanout(overlay):
    place = overlay.get("fanout") or {}
    if "role" not in place:
        return None
    moved = overlay.get("fanout_result") or {}
    return {"group": place.get("group"), "role": place["role"], "builder": place.get("builder"),
            "transfer": overlay.get("transfer") if place["role"] == "receiver" else None,
            "bundle_digest": moved.get("bundle_digest") or overlay.get("bundle_digest"),
            "bytes_moved": moved.get("bytes_moved"), "transfer_s": moved.get("transfer_s"),
            "install_s": moved.get("install_s"), "installed": list(moved.get("installed") or []),
            "error_type": moved.get("error_type"), "message": moved.get("message")}


def _failure(failure):
    failure = failure or {}
    return {"failed_task": failure.get("task"), "error_type": failure.get("error_type"), "message": failure.get("msg")}


def _run(state, overlay):
    """The state's run, else the run the role read from the pointer (a host that failed before any state)."""
    fallback = overlay.get("run") or {}
    return state.get("run") or (fallback if fallback.get("run_id") else {"run_id": None, "manifest": None, "log_file": None})


def _installed(overlay):
    """The stages installed from a bundle instead of primed: those of the fan-out, then the registry's, each once."""
    installed = list((overlay.get("fanout_result") or {}).get("installed") or [])
    return installed + [s for s in (overlay.get("registry_result") or {}).get("installed") or [] if s not in installed]


def prime_report(state, overlay):
    """The runtime's priming state ``state`` with the role's ``overlay`` on top."""
    state = dict(state or {})
    overlay = dict(overlay or {})
    failure = overlay.get("failure") or None
    registry = overlay.get("registry_result") or None
    installed = _installed(overlay)
    order = list(state.get("order") or overlay.get("stages") or [])
    rows = state.get("stages") or {}
    done = changes(state, overlay, installed)
    runtime_changed = "runtime" in (overlay.get("host_changes") or [])
    report = dict((key, {} if default == {} else default) for key, default in STATE_DEFAULTS)
    report.update(state)
    switched = mode_switch(overlay.get("container_mode_switch"))
    if switched:  # the plan read the mode before the role switched it
        report["container_mode"] = switched.get("mode")
    report.update(_failure(failure))
    report.update(
        host=overlay.get("host"),
        status="failed" if failure else ("changed" if done else "ok"),
        changes=done,
        runtime_modified=list(overlay.get("runtime_modified") or []) if runtime_changed else [],
        check_mode=bool(overlay.get("check_mode")),
        container=overlay.get("container"),
        model=overlay.get("model"),
        tp=overlay.get("tp"),
        run=_run(state, overlay),
        order=order,
        stages=dict((stage, _row(stage, rows, installed, failure, registry)) for stage in order),
        fanout=_fanout(overlay),
        registry=registry,
    )
    return report


class FilterModule(object):
    def filters(self):
        return {"prime_report": prime_report}

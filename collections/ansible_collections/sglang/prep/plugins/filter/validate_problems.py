# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: validate_problems
short_description: Every problem the validate entry point of role sglang.prep.prime found on a host
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.2.0
description:
  - One line per problem, each starting with its error type, from what the validate entry point looked at - the run
    pointer, files under C(telemetry/) and C(profiles/) owned by anyone else (the first 50, then a count), a deployed
    runtime that no longer matches its manifest, an unreadable C(prep_result.json), interrupted stages, a container
    that is not running, the serve check run again (C(prime_serve_check=rebuild)), and stages whose signature drifted
    or that failed in the current run.
  - Changes nothing; role C(sglang.prep.prime) (C(tasks_from=validate)) fails listing every line.
positional: _input
options:
  _input:
    description:
      - What was looked at. Keys read are C(run) (the answer of M(sglang.prep.sglang_prime_info), with C(failed),
        C(error_type) and C(msg) when the pointer or manifest could not be read, else C(state), whose
        C(caches.partial_stages) are the interrupted stages), C(foreign) (files not owned by the host user, each with
        C(path), C(uid), C(pw_name)), C(host_user), C(host_uid), C(runtime_modified) and C(runtime_dir),
        C(container_running), C(container), C(plan) (the check-mode plan of M(sglang.prep.sglang_prime)),
        C(proof) (the serve check run again; C(skipped) when it was not) and C(stages) (the stages to check, in order).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: List the problems
  ansible.builtin.debug:
    msg: "{{ {'run': {'found': false, 'error_type': 'bad_pointer', 'msg': 'no pointer'}, 'stages': []} | sglang.prep.validate_problems }}"
"""

RETURN = r"""
_value:
  description: One line per problem, its error type first, then what it is and the fix; empty for a valid host.
  type: list
  elements: str
  sample: ["signature_drift: deep_gemm would run: driver_version 550.54 -> 570.148.08"]
"""

FOREIGN_SHOWN = 50


def _run(facts):
    run = facts.get("run") or {}
    if run.get("failed") or "state" not in run:
        return ["%s: %s" % (run.get("error_type") or "bad_pointer", run.get("msg") or "the run pointer could not be read")]
    return []


def _foreign(facts):
    user, uid, foreign = facts.get("host_user"), facts.get("host_uid"), list(facts.get("foreign") or [])
    out = ["permissions_unexpected: %s is owned by %s (uid %s), expected %s (uid %s); fix: sudo chown -R %s: %s"
           % (entry.get("path"), entry.get("pw_name") or "?", entry.get("uid"), user, uid, user, entry.get("path"))
           for entry in foreign[:FOREIGN_SHOWN]]
    if len(foreign) > FOREIGN_SHOWN:
        out.append("permissions_unexpected: ... and %d more files not owned by %s" % (len(foreign) - FOREIGN_SHOWN, user))
    return out


def _caches(facts):
    """The cache snapshot of the current run, as sglang_prime_info read it."""
    return (((facts.get("run") or {}).get("state") or {}).get("caches")) or {}


def _records(facts, recorded):
    out = []
    modified = facts.get("runtime_modified") or []
    if modified:
        out.append("runtime_modified: the runtime deployed under %s no longer matches the manifest its archive shipped: %s; fix: run "
                   "the prime playbook, which deploys it again and restarts the container" % (facts.get("runtime_dir"), ", ".join(modified)))
    problem = ((facts.get("plan") or {}).get("state") or {}).get("prep_result_problem")
    if problem:
        out.append("bad_prep_result: %s" % problem)
    out += ["interrupted: stage %s started and did not finish (its in-progress marker is present); re-run the prime playbook" % stage
            for stage in _caches(facts).get("partial_stages") or [] if (recorded.get(stage) or {}).get("status") != "error"]
    return out


def _proof(facts):
    """(lines, the serve_check row of the check run again) for prime_serve_check=rebuild."""
    proof = facts.get("proof") or {}
    row = ((proof.get("state") or {}).get("stages") or {}).get("serve_check") or {}
    if not proof.get("skipped") and "state" not in proof and "msg" in proof:
        return ["%s: the serve check could not run again: %s" % (proof.get("error_type") or "internal_error", proof["msg"])], row
    if row.get("status") == "error":
        return ["%s: serve_check, run again now: %s" % (row.get("error_type") or "internal_error", row.get("message") or row.get("reason"))], row
    return [], row


def _stage(stage, result, recorded, proof_row):
    status = result.get("status")
    before = recorded.get(stage) or {}
    if stage == "serve_check" and proof_row.get("status") == "error":
        return None  # already listed: the check that just ran failed
    if status == "would_run" and before.get("status") == "error":
        return "%s: %s failed in this run and would run again: %s" % (before.get("error_type") or "internal_error", stage,
                                                                      before.get("message") or "no message")
    if status == "would_run":
        return "signature_drift: %s" % result.get("reason")
    if status == "error":
        return "%s: %s" % (result.get("error_type") or "internal_error", result.get("reason"))
    return None


def _stages(facts, recorded):
    if not facts.get("container_running"):
        return ["container_not_running: %s is not running, so stage signatures cannot be compared; start it with the playbook "
                "sglang.prep.prime (from a checkout: playbooks/prime.yml)" % facts.get("container")]
    plan = facts.get("plan") or {}
    out = [] if "plan" in plan else ["%s: %s" % (plan.get("error_type") or "internal_error", plan.get("msg") or "the stages could not be checked")]
    lines, proof_row = _proof(facts)
    out += lines
    rows = (plan.get("state") or {}).get("stages") or {}
    for stage in facts.get("stages") or []:
        if stage in (plan.get("plan") or {}):
            line = _stage(stage, rows.get(stage) or {}, recorded, proof_row)
            out += [line] if line else []
    return out


def validate_problems(facts):
    """Every problem found, one line each, in the order the checks are listed."""
    facts = dict(facts or {})
    recorded = ((((facts.get("plan") or {}).get("state") or {}).get("prep_result")) or {}).get("stages") or {}
    return _run(facts) + _foreign(facts) + _records(facts, recorded) + _stages(facts, recorded)


class FilterModule(object):
    def filters(self):
        return {"validate_problems": validate_problems}

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: serve_report
short_description: The serve_report fact of a host (whether it serves, the live zero-JIT verdict) from its sglang_serve result
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.1.0
description:
  - Turns the result of M(sglang.prep.sglang_serve) (and the failure the serve entry point recorded, if any) into
    the host's C(serve_report) fact. That says whether it serves, the zero-JIT verdict on the live server, the first
    generated text, the server's port and pid, and the lines the play prints.
options:
  _input:
    description: The registered result of M(sglang.prep.sglang_serve) (C({}) when it did not run).
    type: dict
    required: true
  failure:
    description: The failure the entry point recorded (C(task), C(error_type), C(msg)), or C(none).
    type: dict
  container:
    description: The container name, for the lines.
    type: str
"""

EXAMPLES = r"""
- name: Set serve_report from the serve result (and the failure, if any)
  ansible.builtin.set_fact:
    serve_report: "{{ served | sglang.prep.serve_report(failure, 'sglang-prime') }}"

- name: Say what serves where, with the live zero-JIT verdict
  ansible.builtin.debug:
    msg: "{{ serve_report.lines }}"
"""

RETURN = r"""
_value:
  description: C({status, serving, changed, zero_jit, first_text, port, server_pid, error_type, msg, lines}).
  type: dict
"""

VERDICT = {True: "yes", False: "NO", None: "not proven"}


def serve_report(result, failure=None, container=None):
    """The serve_report fact: status serving | already_serving | would_serve | failed."""
    result = dict(result or {})
    failure = failure or None
    server = result.get("server") or {}
    status = result.get("status")
    left_running = bool(server.get("left_running"))
    if failure:
        state = "failed"
    elif status == "noop":
        state = "already_serving"
    elif status == "would_run":
        state = "would_serve"
    else:
        state = "serving"
    out = {
        "status": state,
        "serving": state in ("serving", "already_serving") or left_running,
        "changed": bool(result.get("changed")),
        "action": result.get("action"),
        "zero_jit": result.get("zero_jit"),
        "first_text": result.get("first_text"),
        "port": server.get("port"),
        "server_pid": server.get("server_pid"),
        "digest": server.get("digest"),
        "error_type": (failure or {}).get("error_type") or result.get("error_type"),
        "msg": (failure or {}).get("msg") or result.get("msg"),
        "reasons": result.get("reasons") or [],
    }
    out["lines"] = _lines(out, state, left_running, " in %s" % container if container else "")
    return out


def _lines(out, state, left_running, where):
    """What the play prints: what serves where, the live verdict, the first generated text."""
    if state == "failed":
        lines = ["serve failed%s: %s: %s" % (where, out["error_type"], out["msg"])]
        if left_running:
            lines.append("the server is left running on port %s (pid %s)" % (out["port"], out["server_pid"]))
    elif state == "would_serve":
        lines = ["check mode%s: %s" % (where, out["msg"])]
    else:
        what = "serving" if state == "serving" else "already serving (unchanged)"
        lines = ["%s%s on port %s (pid %s)" % (what, where, out["port"], out["server_pid"])]
    if state != "would_serve" and (out["zero_jit"] is not None or state != "failed"):
        lines.append("zero JIT on the live server: %s" % VERDICT.get(out["zero_jit"], "not proven"))
    if out["first_text"] is not None:
        lines.append("first generated text: %r" % out["first_text"])
    return lines


class FilterModule(object):

    def filters(self):
        return {"serve_report": serve_report}

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of sglang.prep.sglang_prime_wait: wait for a host's priming job, one line per progress change."""

from __future__ import annotations

import base64
import json
import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

ARGUMENT_SPEC = {
    "jid": {"type": "str", "required": True},
    "progress": {"type": "path"},
    "timeout": {"type": "float", "required": True},
    "poll": {"type": "float", "default": 5.0},
    "quick_poll": {"type": "float", "default": 0.25},
    "quick_polls": {"type": "int", "default": 12},
}


def _seconds(value):
    if value is None:
        return "?"
    value = float(value)
    if value < 90:
        return "%.0f s" % value
    if value < 5400:
        return "%.0f min" % (value / 60)
    return "%.1f h" % (value / 3600)


def progress_line(progress):
    """One line that says where a host's priming job is, from its progress file."""
    if not isinstance(progress, dict) or not progress.get("stage"):
        return None
    text = "%s (stage %s/%s)" % (progress["stage"], progress.get("index", "?"), progress.get("count", "?"))
    step = progress.get("step") or {}
    if step.get("label"):
        text += ", %s (%s/%s)" % (step["label"], step.get("index", "?"), step.get("count", "?"))
    if progress.get("state") not in (None, "running"):
        text += ", " + str(progress["state"])
    if progress.get("eta_s") is not None:
        text += ", ETA %s" % _seconds(progress["eta_s"])
    return text


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True

    def _status(self, jid, async_dir, task_vars):
        return self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                                    module_args={"jid": jid, "mode": "status", "_async_dir": async_dir})

    def _progress(self, path, task_vars):
        if not path:
            return None
        answer = self._execute_module(module_name="ansible.legacy.slurp", task_vars=task_vars, module_args={"src": path})
        if answer.get("failed") or "content" not in answer:
            return None
        try:
            return json.loads(base64.b64decode(answer["content"]).decode("utf-8"))
        except ValueError:
            return None  # caught between two writes is impossible (atomic), but never fail the wait on it

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        host = (task_vars or {}).get("inventory_hostname", "?")
        async_dir = self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))
        started = time.monotonic()
        polls = 0
        shown = None
        while True:
            status = self._status(args["jid"], async_dir, task_vars)
            if status.get("finished") or status.get("failed"):
                break
            line = progress_line(self._progress(args["progress"], task_vars))
            if line and line != shown:
                display.display("%s: %s, %s elapsed" % (host, line, _seconds(time.monotonic() - started)))
                shown = line
            if time.monotonic() - started > args["timeout"]:
                result.update(failed=True, finished=False, ansible_job_id=args["jid"], error_type="interrupted",
                              msg="the priming job did not finish within %.0f s (the stage timeout); it may still be "
                                  "running in the container (see its session log)" % args["timeout"])
                return result
            polls += 1
            time.sleep(args["quick_poll"] if polls <= args["quick_polls"] else args["poll"])
        self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                             module_args={"jid": args["jid"], "mode": "cleanup", "_async_dir": async_dir})
        for key in ("started", "finished", "results_file", "ansible_job_id", "stdout", "stderr", "stdout_lines",
                    "stderr_lines", "invocation"):
            status.pop(key, None)
        result.update(status)
        result["waited_s"] = round(time.monotonic() - started, 3)
        return result

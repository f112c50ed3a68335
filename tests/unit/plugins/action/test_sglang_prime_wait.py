"""sglang_prime_wait (action): waits for a host's async priming job, shows one line per progress change, and
returns the job's own result; a job past the stage timeout fails as interrupted.

Tables: progress files in, the line shown out; the job's async_status answers and progress files in, the task
result and the lines shown out. Ansible's async_status and slurp are answered from the table (no host)."""

import base64
import itertools
import json
from unittest import mock

import pytest

from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible_collections.sglang.prep.plugins.action import sglang_prime_wait
from unit_support.modules import ABSENT, Has, assert_holds


@pytest.mark.parametrize("progress, line", [
    (None, None),
    ({"state": "running"}, None),  # no stage yet
    ({"stage": "deep_gemm", "index": 1, "count": 4}, "deep_gemm (stage 1/4)"),
    ({"stage": "moe_tune", "index": 2, "count": 4, "step": {"label": "tuning", "index": 3, "count": 8}, "eta_s": 150},
     "moe_tune (stage 2/4), tuning (3/8), ETA 2 min"),
    ({"stage": "inductor", "state": "failed", "eta_s": 30}, "inductor (stage ?/?), failed, ETA 30 s"),
    ({"stage": "serve_check", "index": 5, "count": 5, "state": "running", "eta_s": 7200}, "serve_check (stage 5/5), ETA 2.0 h"),
])
def test_progress_line(progress, line):
    assert sglang_prime_wait.progress_line(progress) == line


RUNNING = {"finished": 0, "started": 1, "ansible_job_id": "j1"}
DONE = {"finished": 1, "started": 1, "ansible_job_id": "j1", "results_file": "/r", "stdout": "x", "stderr": "",
        "invocation": {}, "rc": 0, "changed": True, "prime_report": {"status": "changed"}}
STAGE_1 = {"stage": "deep_gemm", "index": 1, "count": 4}
STAGE_2 = {"stage": "moe_tune", "index": 2, "count": 4}


@pytest.mark.parametrize("args, statuses, progress, result, shown", [
    pytest.param({"timeout": 60}, [DONE], [],
                 {"changed": True, "rc": 0, "prime_report": {"status": "changed"},
                  "finished": ABSENT, "ansible_job_id": ABSENT, "results_file": ABSENT, "stdout": ABSENT,
                  "invocation": ABSENT}, [], id="a finished job's own result, less the async bookkeeping"),
    pytest.param({"timeout": 60}, [RUNNING, RUNNING, RUNNING, DONE], [STAGE_1, STAGE_1, STAGE_2],
                 {"changed": True}, ["gpu-1: deep_gemm (stage 1/4), ", "gpu-1: moe_tune (stage 2/4), "],
                 id="one line per progress change"),
    pytest.param({"timeout": 60}, [RUNNING, {"failed": True, "msg": "job not found"}], [None],
                 {"failed": True, "msg": "job not found"}, [], id="a failed status ends the wait"),
    pytest.param({"timeout": 0}, [RUNNING], [STAGE_1],
                 {"failed": True, "finished": False, "ansible_job_id": "j1", "error_type": "interrupted",
                  "msg": Has("did not finish within 0 s", "session log")}, ["gpu-1: deep_gemm (stage 1/4), "],
                 id="a job past the stage timeout is interrupted"),
])
def test_wait(args, statuses, progress, result, shown, monkeypatch):
    task = Task()
    task.action = "sglang.prep.sglang_prime_wait"
    task.args = dict({"jid": "j1", "progress": "/telemetry/progress.json", "quick_poll": 0, "poll": 0}, **args)
    connection = mock.MagicMock()
    connection._shell.get_option.return_value = "~/.ansible_async"
    action = sglang_prime_wait.ActionModule(task, connection, PlayContext(), DataLoader(), None, None)
    answers, files, calls = iter(statuses), itertools.chain(progress, itertools.repeat(progress[-1] if progress else None)), []

    def execute(module_name, task_vars, module_args):
        calls.append((module_name, module_args.get("mode")))
        if module_name == "ansible.legacy.slurp":
            return {"content": base64.b64encode(json.dumps(next(files)).encode()).decode()}
        return dict(next(answers, RUNNING)) if module_args["mode"] == "status" else {}

    monkeypatch.setattr(action, "_execute_module", execute)
    monkeypatch.setattr(action, "_remote_expand_user", lambda path: path)
    lines = []
    monkeypatch.setattr(sglang_prime_wait.display, "display", lines.append)
    got = action.run(task_vars={"inventory_hostname": "gpu-1"})
    assert_holds(got, result)
    assert len(lines) == len(shown) and all(line.startswith(start) for line, start in zip(lines, shown)), lines
    cleaned = ("ansible.legacy.async_status", "cleanup") in calls
    assert cleaned == (not got.get("failed") or got.get("error_type") != "interrupted")  # a running job is left alone

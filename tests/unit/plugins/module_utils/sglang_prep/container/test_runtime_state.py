"""The priming state (container/state.py): one model for plan, prime and report, and the one wording of a row.

Uses the fake container run of test_runtime_engine (manifest and pointer under tmp, the stand-in tools as
real subprocesses); prime's own tests are in test_runtime_prime.py.
"""

import json
import os
import subprocess
import sys


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import plan, state
from unit_support.paths import RUNTIME
from unit_support.runtime import ALL, HOST_TELEMETRY, RUN_ID, assert_state_shape

def test_plan_is_the_same_model_with_check_answers(run):
    model = plan.plan(ALL, run.model, {"pointer": run.pointer, "port": run.port, "moe_batch_sizes": [1, 2]},
                      stream=open(os.devnull, "w"), env=run.env)
    assert_state_shape(model)
    assert model["command"] == "plan" and model["status"] == "changed" and model["progress"] is None
    assert all(model["stages"][s]["status"] == "would_run" and model["stages"][s]["mode"] == "check" for s in ALL)
    assert model["stages"]["moe_tune"]["reason"] == "moe_tune would run: no signature recorded"
    assert model["aggregate"] is None and model["gpu"]["device_name"] == "NVIDIA H100 80GB HBM3"


def test_reason_wording():
    reasons = [{"field": "driver_version", "old": "570.148.08", "new": "575.51.03"},
               {"field": "in_progress_marker", "old": {"owner_pid": 1}, "new": None},
               {"field": "extra_server_args", "old": [], "new": ["--x=" + "y" * 100]}]
    text = state.reason("deep_gemm", {"status": "ok", "duration_s": 3.25, "reprime_reasons": reasons})
    assert text.startswith("deep_gemm ran and succeeded in 3.2 s (because: driver_version: 570.148.08 -> 575.51.03; "
                           "an earlier run did not finish; extra_server_args: [] -> [\"--x=yyy")
    assert len(text) < 220 and "..." in text
    assert state.reason("moe_tune", {"status": "skipped", "message": "not a MoE model"}) == "moe_tune skipped: not a MoE model"
    assert state.reason("inductor", {"status": "noop", "action": "record", "mode": "check"}).endswith(
        "(to be recorded in this run)")
    # once the job has written the record (an ensure ran), the row no longer promises it
    assert "to be recorded" not in state.reason("inductor", {"status": "noop", "action": "record", "mode": "ensure"})
    assert state.reason("inductor", {"status": "error", "error_type": "port_busy", "message": "port 30000 is busy"}) == (
        "inductor failed (port_busy): port 30000 is busy")
    unreadable = {"field": "signature", "old": None, "new": "signature /p/signature.json is unreadable (bad)"}
    assert state.reason("flashinfer", {"status": "would_run", "reprime_reasons": [unreadable]}) == (
        "flashinfer would run: signature /p/signature.json is unreadable (bad)")


def test_report_reads_what_the_run_recorded_and_writes_nothing(run):
    assert run.stage("moe_tune")["status"] == "ok"
    failed = run.stage("flashinfer", env={"SGLANG_STANDIN_FAULT": "oom"})
    before = run.tree()
    model = state.report(ALL, run.model, run.pointer)
    assert run.tree() == before  # no checks, no probes, no writes
    assert_state_shape(model)
    assert model["command"] == "report" and model["progress"] is None and model["to_run"] == []
    assert model["status"] == "error" and model["failed_stage"] == "flashinfer"
    assert model["error_type"] == "not_enough_memory" and model["message"] == failed["message"]
    rows = model["stages"]
    assert rows["moe_tune"]["status"] == "ok" and rows["moe_tune"]["ran"] is True
    assert rows["moe_tune"]["reason"].startswith("moe_tune ran and succeeded in ")
    assert rows["moe_tune"]["stage_json_host"] == "%s/container_runs/%s/models/%s/stages/moe_tune.json" % (
        HOST_TELEMETRY, RUN_ID, contract.model_key(run.model))
    assert rows["flashinfer"]["log_tail"] == failed["log_tail"] and rows["flashinfer"]["cache"]["partial"] is True
    for stage in ("deep_gemm", "inductor", "serve_check"):
        assert rows[stage]["status"] == "not_run" and rows[stage]["stage_json"] is None
        assert rows[stage]["reason"] == "%s did not run: no record of it in this run" % stage
    assert model["zero_jit"] is None and model["zero_jit_reason"] == (
        "not proven: serve_check did not run: no record of it in this run")
    assert model["aggregate"] == "partial" == run.prep_result()["status"] and model["prep_result"] == run.prep_result()
    assert model["prep_result_path"] == "%s/container_runs/%s/models/%s/prep_result.json" % (
        HOST_TELEMETRY, RUN_ID, contract.model_key(run.model))
    assert model["gpu"]["device_name"] == "NVIDIA H100 80GB HBM3"
    assert model["signature_group"] == run.prep_result()["run"]["signature_group"]
    other = state.report(["moe_tune", "moe_tune"], os.path.join(run.base, "models", "other"), run.pointer)
    assert other["order"] == ["moe_tune"] and other["stages"]["moe_tune"]["status"] == "not_run"
    # records are kept per model: another model has none of its own, and the first model's are untouched
    assert other["stages"]["moe_tune"]["reason"] == "moe_tune did not run: no record of it in this run"
    assert run.stage_json("moe_tune")["status"] == "ok"


def test_cli_report_and_stage_reason(run):
    env = dict(run.env, PYTHONPATH=RUNTIME + os.pathsep + run.env["PYTHONPATH"])
    stage = subprocess.run([sys.executable, "-m", "sglang_prep", "stage", "moe_tune", "--model", run.model, "--pointer",
                            run.pointer, "--disk-headroom-mb", "1", "--moe-batch-sizes", "1"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert stage.returncode == 0, stage.stderr
    result = json.loads(stage.stdout.strip().splitlines()[-1][len(contract.RESULT_PREFIX):])
    assert result["reason"] == state.reason("moe_tune", result) and result["reason"].startswith("moe_tune ran and")
    out = subprocess.run([sys.executable, "-m", "sglang_prep", "report", "--pointer", run.pointer, "--stages", "moe_tune",
                          "deep_gemm"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    model = json.loads(out.stdout.strip().splitlines()[-1][len(contract.RESULT_PREFIX):])
    assert model["command"] == "report" and model["order"] == ["moe_tune", "deep_gemm"] and model["status"] == "changed"
    assert model["stages"]["moe_tune"]["reason"] == result["reason"]
    missing = subprocess.run([sys.executable, "-m", "sglang_prep", "report", "--pointer", run.pointer + ".missing"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert missing.returncode == 1
    assert json.loads(missing.stdout.strip().splitlines()[-1][len(contract.RESULT_PREFIX):])["error_type"] == "bad_pointer"
    assert subprocess.run([sys.executable, "-m", "sglang_prep", "report", "--stages", "nope"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE).returncode == 2

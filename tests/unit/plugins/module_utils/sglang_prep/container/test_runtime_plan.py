"""The runtime's plan (`python3 -m sglang_prep plan`): every stage's ensure decision in one call, reading only.

Uses the fake container run of test_runtime_engine (manifest and pointer under tmp, the stand-in tools as
real subprocesses), so the plan is checked against what the stage engine itself decides and records.
"""

import json
import os
import subprocess
import sys


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import plan, probe
from unit_support.paths import RUNTIME
from unit_support.runtime import ALL, RUN_ID, make_plan

def prime_all(run):
    for stage in ALL:
        assert run.stage(stage)["status"] in ("ok", "skipped"), stage


def test_fresh_run_plans_every_stage_and_writes_nothing(run):
    before = run.tree()
    result = make_plan(run)
    assert run.tree() == before  # no stage JSON, no lock, no marker, no log line
    assert result["to_run"] == ALL
    for stage in ALL:
        entry = result["stages"][stage]
        assert entry["status"] == "would_run" and entry["action"] == "run"
        assert entry["reprime_reasons"][0]["field"] == "signature"
        assert entry["signature"]["model_slug"] == "tiny-moe-fp8-block"
    assert result["run"]["run_id"] == RUN_ID and result["prep_result"] is None
    assert result["caches"]["total_bytes"] == 0


def test_primed_run_has_nothing_to_do_and_says_so_per_stage(run):
    prime_all(run)
    prep_before = run.prep_result()
    result = make_plan(run)
    assert result["to_run"] == []
    for stage in ALL:
        assert result["stages"][stage]["status"] in ("noop", "skipped")
        assert result["stages"][stage]["action"] == "none"
        assert result["stages"][stage]["reprime_reasons"] == []
    # the recorded aggregate and the caches come along, so a no-op needs no further call
    assert result["prep_result"] == prep_before and result["prep_result"]["status"] == "ok"
    assert result["caches"]["total_bytes"] > 0
    assert result["caches"]["caches"]["deep_gemm"]["host_path"] == "/home/u/obs/profiles/deep_gemm"
    assert result["run"]["paths"]["host"]["profiles_root"] == "/home/u/obs/profiles"


def test_a_changed_field_is_planned_for_exactly_the_stages_it_affects(run):
    prime_all(run)
    result = make_plan(run, env={"SGLANG_STANDIN_DRIVER": "575.51.03"}, stages=["deep_gemm", "flashinfer"])
    assert result["to_run"] == ["deep_gemm", "flashinfer"]
    for stage in ("deep_gemm", "flashinfer"):
        assert result["stages"][stage]["reprime_reasons"] == [{"field": "driver_version", "old": "570.148.08", "new": "575.51.03"}]
    only = make_plan(run, stages=["deep_gemm"], extra_server_args=[])
    assert only["to_run"] == [] and list(only["stages"]) == ["deep_gemm"]


def test_deleted_cache_and_rebuild_are_run_with_their_reasons(run):
    prime_all(run)
    os.remove(run.p(contract.signature_path("flashinfer", run.model)))
    result = make_plan(run, rebuild=["deep_gemm"])
    assert result["to_run"] == ["deep_gemm", "flashinfer"]
    assert result["stages"]["deep_gemm"]["reprime_reasons"] == [plan.REBUILD_REASON]
    assert result["stages"]["deep_gemm"]["planned_mode"] == "rebuild"
    assert result["stages"]["flashinfer"]["reprime_reasons"][0]["field"] == "signature"
    assert result["stages"]["moe_tune"]["action"] == "none"


def test_a_new_container_run_records_primed_stages(run):
    """Caches primed by an earlier run, a new run without stage files: each stage is recorded as a noop."""
    prime_all(run)
    for stage in ALL:
        os.remove(os.path.join(run.model_dir(), "stages", stage + ".json"))
    result = make_plan(run)
    assert result["to_run"] == ALL
    for stage in ALL:
        assert result["stages"][stage]["status"] in ("noop", "skipped")
        assert result["stages"][stage]["action"] == "record"
        assert "no record" in result["stages"][stage]["action_reason"]
    # and what an ensure then records is a noop that launches nothing
    assert run.stage("deep_gemm")["status"] == "noop"
    assert make_plan(run, stages=["deep_gemm"])["to_run"] == []


def test_a_recorded_failure_is_recorded_again_once_the_stage_is_primed(run):
    prime_all(run)
    path = os.path.join(run.model_dir(), "stages", "inductor.json")
    with open(path) as handle:
        data = json.load(handle)
    data.update(status="error", error_type="lock_timeout")
    with open(path, "w") as handle:
        json.dump(data, handle)
    result = make_plan(run)
    assert result["to_run"] == ["inductor"]
    assert result["stages"]["inductor"]["action"] == "record"


def test_an_interrupted_stage_is_run_again(run):
    prime_all(run)
    with open(run.p(contract.marker_path("moe_tune")), "w") as handle:
        json.dump({"owner_pid": 999999, "started_at": "2026-01-01T00:00:00.000Z"}, handle)
    result = make_plan(run)
    assert result["to_run"] == ["moe_tune"]
    assert [r["field"] for r in result["stages"]["moe_tune"]["reprime_reasons"]] == ["in_progress_marker"]
    assert result["caches"]["partial_stages"] == ["moe_tune"]


def test_the_toolchain_is_probed_once_for_all_stages(run, monkeypatch):
    probes = []
    real_run = probe.Probe._run

    def counting(self):
        probes.append(self)
        return real_run(self)

    monkeypatch.setattr(probe.Probe, "_run", counting)
    make_plan(run)
    assert len(probes) == 1


def test_cli_plan_prints_one_result_line_and_needs_a_run(run):
    env = dict(run.env, PYTHONPATH=RUNTIME + os.pathsep + run.env["PYTHONPATH"])
    base = [sys.executable, "-m", "sglang_prep", "plan", "--model", run.model, "--pointer", run.pointer,
            "--port", str(run.port), "--moe-batch-sizes", "1", "2"]
    out = subprocess.run(base + ["--stages", "inductor", "deep_gemm", "--rebuild", "deep_gemm"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith(contract.RESULT_PREFIX)
    payload = json.loads(last[len(contract.RESULT_PREFIX):])
    assert payload["to_run"] == ["inductor", "deep_gemm"] and sorted(payload["stages"]) == ["deep_gemm", "inductor"]
    assert payload["stages"]["deep_gemm"]["planned_mode"] == "rebuild"
    missing = subprocess.run([sys.executable, "-m", "sglang_prep", "plan", "--model", run.model, "--pointer", run.pointer + ".missing"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert missing.returncode == 1
    assert json.loads(missing.stdout.strip().splitlines()[-1][len(contract.RESULT_PREFIX):])["error_type"] == "bad_pointer"
    usage = subprocess.run(base + ["--stages", "nope"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert usage.returncode == 2

"""Records keyed by model, the last success kept apart, and faults a person can fix classified (issue: faults).

The engine end to end on a temporary run (test_runtime_engine.Run), stand-in tools as real subprocesses.
"""

import errno
import json
import os
import shutil

from unit_support.runtime import RUN_ID, assert_clean

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import (
    engine, ledger, locks, signature, state)


def second_model(run, name="dense"):
    path = os.path.join(run.base, "models", name)
    shutil.copytree(run.model, path)
    return path


def read(path):
    with open(path) as handle:
        return json.load(handle)


def test_model_key_never_collides_for_models_with_the_same_name():
    first, second = contract.model_key("/models/orgA/m"), contract.model_key("/models/orgB/m")
    assert first != second and first.startswith("orgA--m-") and second.startswith("orgB--m-")
    assert contract.model_key("/models/orgA/m/") == first  # a trailing slash is the same model
    assert contract.signature_path("deep_gemm", "/models/orgA/m") != contract.signature_path("deep_gemm", "/models/orgB/m")
    assert contract.stage_json_path(RUN_ID, "deep_gemm", "/models/orgA/m") != contract.stage_json_path(
        RUN_ID, "deep_gemm", "/models/orgB/m")


def test_a_second_model_in_the_same_run_keeps_the_first_models_records(run):
    assert run.stage("deep_gemm")["status"] == "ok"
    first = run.stage_json("deep_gemm")
    first_prep = run.prep_result()
    other = second_model(run)
    assert run.stage("deep_gemm", model=other)["status"] == "ok"
    assert run.stage_json("deep_gemm") == first
    assert dict(run.prep_result(), generated_at=None) == dict(first_prep, generated_at=None)
    assert run.stage_json("deep_gemm", other)["model"] == other
    # the run's prep_result.json leads with the model recorded last and indexes both
    whole = read(os.path.join(run.run_dir, "prep_result.json"))
    assert whole["run"]["model"] == other
    assert sorted(entry["model"] for entry in whole["models"].values()) == sorted([run.model, other])
    # each model has its own signature: the first is still primed (a noop), not re-run
    assert run.stage("deep_gemm")["status"] == "noop"
    assert state.report(["deep_gemm"], run.model, run.pointer)["stages"]["deep_gemm"]["status"] == "noop"


def test_a_broken_model_never_touches_a_good_models_record(run):
    assert run.stage("deep_gemm")["status"] == "ok"
    good = run.stage_json("deep_gemm")
    servers = len(run.server_lines("deep_gemm"))
    broken = second_model(run, "broken")
    with open(os.path.join(broken, "config.json"), "w") as handle:
        handle.write("{not json")
    result = run.stage("deep_gemm", model=broken)
    assert result["status"] == "error" and result["error_type"] == "model_invalid", result["message"]
    assert "config.json" in result["message"] and not result["ran"]
    assert len(run.server_lines("deep_gemm")) == servers  # refused before any work
    assert run.stage_json("deep_gemm") == good and run.prep_result()["status"] == "ok"


def test_a_model_without_config_json_is_model_invalid_before_any_work(run):
    os.remove(os.path.join(run.model, "config.json"))
    result = run.stage("deep_gemm")
    assert result["error_type"] == "model_invalid" and not result["ran"] and result["server"] is None


def test_a_failed_rebuild_keeps_the_last_success_apart(run):
    assert run.stage("flashinfer")["status"] == "ok"
    failed = run.stage("flashinfer", mode="rebuild", env={"SGLANG_STANDIN_FAULT": "oom"})
    assert failed["status"] == "error" and failed["error_type"] == "not_enough_memory"
    assert run.stage_json("flashinfer")["status"] == "error"  # the last attempt
    last_ok = read(os.path.join(run.model_dir(), "stages", "flashinfer.last_ok.json"))
    assert last_ok["status"] == "ok" and last_ok["ran"] is True
    prep = run.prep_result()
    assert prep["last_ok"]["flashinfer"]["status"] == "ok"
    assert prep["last_ok"]["flashinfer"]["finished_at"] == last_ok["finished_at"]


def test_disk_full_while_the_signature_is_written_is_insufficient_disk_never_ok(run, monkeypatch):
    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(signature, "write", full)
    result = run.stage("deep_gemm")
    assert result["status"] == "error" and result["error_type"] == "insufficient_disk", result["message"]
    assert "signature.json" in result["message"]
    assert run.stage_json("deep_gemm")["error_type"] == "insufficient_disk"
    assert_clean(run, "deep_gemm")


def test_disk_full_while_the_stage_json_is_written_fails_the_stage(run, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "stage.json")

    monkeypatch.setattr(ledger, "write_stage", full)
    result = run.stage("deep_gemm")
    assert result["status"] == "error" and result["error_type"] == "insufficient_disk", result["message"]
    assert result["status_code"] == 1


def test_the_server_port_is_locked_host_wide_and_a_waiter_names_the_holder(run):
    holder = locks.StageLock(run.p(contract.server_lock_path()), "inductor", "container-run-other", 1, lambda m: None)
    os.makedirs(os.path.dirname(run.p(contract.server_lock_path())), exist_ok=True)
    holder.acquire()
    try:
        result = run.stage("flashinfer", lock_timeout=0.3)
    finally:
        holder.release()
    assert result["status"] == "error" and result["error_type"] == "lock_timeout", result["message"]
    assert "pid %d" % os.getpid() in result["message"] and "inductor" in result["message"]
    assert "server port" in result["message"] and not run.server_lines("flashinfer")
    # the port lock is released with the stage: the next run gets it
    assert run.stage("flashinfer")["status"] == "ok"
    assert not locks.is_locked(run.p(contract.server_lock_path()))


def test_an_unreadable_prep_result_is_reported_and_rebuilt_by_the_next_aggregate(run):
    assert run.stage("deep_gemm")["status"] == "ok"
    path = os.path.join(run.model_dir(), "prep_result.json")
    with open(path, "w") as handle:
        handle.write("{broken")
    report = state.report(["deep_gemm"], run.model, run.pointer)
    assert any("prep_result.json is unreadable" in w for w in report["warnings"]), report["warnings"]
    assert "prep_result.json is unreadable" in report["prep_result_problem"]
    rebuilt = engine.aggregate(run.pointer, run.model)
    assert rebuilt["status"] == "ok" and read(path)["status"] == "ok"

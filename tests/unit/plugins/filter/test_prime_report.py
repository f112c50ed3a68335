"""Filter sglang.prep.prime_report: the runtime's priming state as it came, with the role's overlay on top."""

import copy

from ansible_collections.sglang.prep.plugins.filter.prime_report import prime_report


def state():
    return {
        "schema_version": "1", "command": "prime", "status": "changed", "error_type": None, "message": None,
        "failed_stage": None, "run": {"run_id": "container-run-1", "manifest": "/m.json", "log_file": "/l.log"},
        "order": ["deep_gemm", "flashinfer", "serve_check"],
        "stages": {
            "deep_gemm": {"stage": "deep_gemm", "status": "ok", "ran": True, "duration_s": 3.0, "error_type": None,
                          "reprime_reasons": [{"field": "signature"}], "reason": "deep_gemm: ran"},
            "flashinfer": {"stage": "flashinfer", "status": "noop", "ran": False, "duration_s": 0.1, "error_type": None,
                           "reprime_reasons": [], "reason": "flashinfer: primed"},
            "serve_check": {"stage": "serve_check", "status": "ok", "ran": True, "duration_s": 9.0, "error_type": None,
                            "reprime_reasons": [], "zero_jit": True, "serve_check": {"summary": "49 requests"}},
        },
        "caches": {"profiles_root": "/profiles", "total_bytes": 4096, "caches": {"deep_gemm": {"size": 4096, "count": 2}}},
        "aggregate": "ok", "prep_result_path": "/p/prep_result.json", "gpu": {"device_name": "H100"},
        "signature_group": "g1", "zero_jit": True, "zero_jit_reason": "yes: 49 requests", "finished_at": "2026-12-07T01:00:00Z",
    }


def overlay(**extra):
    base = {"host": "gpu-1", "failure": None, "host_changes": [], "runtime_modified": [], "container_started": False,
            "prep_result_rebuilt": False, "check_mode": False, "container": "sglang-prep", "model": "/models/m", "tp": 1,
            "stages": ["deep_gemm", "flashinfer", "serve_check"], "run": {}, "fanout": None, "fanout_result": {},
            "transfer": "ssh", "bundle_digest": None}
    base.update(extra)
    return base


def test_the_state_flows_unchanged_under_the_overlay():
    source = state()
    report = prime_report(copy.deepcopy(source), overlay())
    for key in ("run", "order", "stages", "caches", "aggregate", "prep_result_path", "gpu", "signature_group", "zero_jit",
                "zero_jit_reason", "finished_at", "failed_stage"):
        assert report[key] == source[key], key
    assert report["host"] == "gpu-1" and report["status"] == "changed" and report["changes"] == ["stage deep_gemm", "stage serve_check"]
    assert report["stages"]["serve_check"]["serve_check"]["summary"] == "49 requests"


def test_a_run_that_changed_nothing_is_ok():
    source = state()
    for row in source["stages"].values():
        row.update(status="noop", ran=False)
    assert prime_report(source, overlay())["status"] == "ok"


def test_what_the_role_changed_comes_first_in_the_changes():
    report = prime_report(state(), overlay(host_changes=["dirs", "runtime"], runtime_modified=["a.py"], container_started=True,
                                           prep_result_rebuilt=True))
    assert report["changes"] == ["host directories", "runtime (runtime_modified: a.py)", "container", "stage deep_gemm",
                                 "stage serve_check", "prep_result.json (rebuilt: it was unreadable)"]
    assert report["runtime_modified"] == ["a.py"]


def test_check_mode_counts_what_would_run():
    source = state()
    source["stages"]["flashinfer"]["status"] = "would_run"
    assert "stage flashinfer" in prime_report(source, overlay(check_mode=True))["changes"]


def test_a_failure_before_any_state_keeps_every_planned_stage_as_not_run():
    failure = {"task": "Preflight | Identify the host user", "error_type": "unreachable", "msg": "no route"}
    report = prime_report({}, overlay(failure=failure, run={"run_id": "container-run-0", "log_file": "/x.log"}))
    assert report["status"] == "failed" and report["error_type"] == "unreachable" and report["message"] == "no route"
    assert report["failed_task"] == failure["task"]
    assert [report["stages"][s]["status"] for s in report["order"]] == ["not_run"] * 3
    assert report["run"]["run_id"] == "container-run-0"
    assert prime_report({}, overlay(failure=failure))["run"] == {"run_id": None, "manifest": None, "log_file": None}
    assert report["zero_jit"] is None and report["signature_group"] is None and report["caches"] == {} and report["gpu"] == {}


def test_stages_installed_from_a_bundle_say_so_and_the_fanout_says_what_moved():
    moved = {"installed": ["deep_gemm"], "bytes_moved": 1000, "transfer_s": 1.5, "install_s": 0.5, "bundle_digest": "d" * 64}
    source = state()
    source["stages"]["deep_gemm"].update(status="noop", ran=False)
    report = prime_report(source, overlay(fanout={"group": "g1", "role": "receiver", "builder": "gpu-0", "members": []},
                                          fanout_result=moved))
    assert report["stages"]["deep_gemm"]["status"] == "installed" and report["stages"]["deep_gemm"]["ran"] is True
    assert "stage deep_gemm (installed)" in report["changes"]
    assert report["fanout"] == {"group": "g1", "role": "receiver", "builder": "gpu-0", "transfer": "ssh", "bundle_digest": "d" * 64,
                                "bytes_moved": 1000, "transfer_s": 1.5, "install_s": 0.5, "installed": ["deep_gemm"],
                                "error_type": None, "message": None}
    assert prime_report(state(), overlay())["fanout"] is None


def test_the_fleet_report_reads_it_as_it_comes():
    from ansible_collections.sglang.prep.plugins.module_utils import _fleet_report

    row = _fleet_report.host_row(prime_report(state(), overlay()))
    assert row["run_id"] == "container-run-1" and row["cache_bytes"] == 4096 and row["log_file"] == "/l.log"
    assert row["prep_result_status"] == "ok" and row["stages"]["deep_gemm"]["duration_s"] == 3.0


def test_stages_installed_from_the_registry_name_the_artifact():
    pulled = {"installed": ["deep_gemm", "flashinfer"], "digest": "sha256:" + "ab" * 32, "source": "registry"}
    report = prime_report(state(), overlay(registry_result=pulled))
    for stage in ("deep_gemm", "flashinfer"):
        row = report["stages"][stage]
        assert row["status"] == "installed" and row["source"] == "registry" and row["digest"] == pulled["digest"]
    assert "source" not in report["stages"]["serve_check"] and report["registry"] == pulled
    assert "stage deep_gemm (installed)" in report["changes"]
    assert prime_report(state(), overlay())["registry"] is None


def test_the_hand_off_and_the_container_mode_flow_and_a_switch_is_a_change():
    source = dict(state(), container_mode="serving", serving={"argv": ["python3"], "image": "i"}, serving_problem=None)
    switch = {"rc": 0, "stdout_lines": ["switching", 'RESULT {"status": "ok", "mode": "caching", "previous": "serving", '
                                                     '"changed": true}']}
    report = prime_report(copy.deepcopy(source), overlay(container_mode_switch=switch))
    assert report["serving"] == source["serving"]  # the runtime's serve-spec hand-off, as it came
    assert report["container_mode"] == "caching"  # the plan read the mode before the role switched it
    assert "container mode caching (Prometheus reloaded)" in report["changes"] and report["status"] == "changed"
    # no switch (skipped: the mode was right), or a failed one: the state's mode, no change
    for skipped in ({}, {"skipped": True}, dict(switch, rc=1)):
        same = prime_report(copy.deepcopy(source), overlay(container_mode_switch=skipped))
        assert same["container_mode"] == "serving" and not any("container mode" in c for c in same["changes"])
    # a host that failed before any state has the keys, null
    failed = prime_report({}, overlay(failure={"task": "t", "error_type": "bad_input", "msg": "m"}))
    assert failed["serving"] is None and failed["container_mode"] is None and failed["serving_problem"] is None

"""Filter sglang.prep.validate_problems: every problem the validate entry point found, one line each."""

from ansible_collections.sglang.prep.plugins.filter.validate_problems import validate_problems


def plan(stages, recorded=None, problem=None):
    return {"plan": dict((s, {}) for s in stages),
            "state": {"stages": stages, "prep_result": {"stages": recorded or {}}, "prep_result_problem": problem}}


def info(partial=()):
    """sglang_prime_info's answer for run r1, with these stages' in-progress markers present."""
    return {"changed": False, "state": {"run": {"run_id": "r1"}, "caches": {"partial_stages": list(partial)}}}


def valid(**extra):
    facts = {"run": info(), "foreign": [], "host_user": "dev", "host_uid": 1000, "runtime_modified": [],
             "runtime_dir": "/h/runtime", "container": "sglang-prep", "container_running": True,
             "plan": plan({"deep_gemm": {"status": "noop"}, "serve_check": {"status": "noop"}}), "proof": {"skipped": True},
             "stages": ["deep_gemm", "serve_check"]}
    facts.update(extra)
    return facts


def test_a_valid_host_has_no_problem():
    assert validate_problems(valid()) == []


def test_a_missing_pointer_and_a_stopped_container_are_both_listed():
    problems = validate_problems(valid(run={"failed": True, "error_type": "bad_pointer", "msg": "no pointer at /p"},
                                       container_running=False))
    assert problems == ["bad_pointer: no pointer at /p",
                        "container_not_running: sglang-prep is not running, so stage signatures cannot be compared; start it "
                        "with the playbook sglang.prep.prime (from a checkout: playbooks/prime.yml)"]


def test_foreign_files_are_named_up_to_fifty_then_counted():
    foreign = [{"path": "/h/profiles/f%d" % i, "uid": 0, "pw_name": "root"} for i in range(52)]
    problems = validate_problems(valid(foreign=foreign))
    assert len(problems) == 51
    assert problems[0] == "permissions_unexpected: /h/profiles/f0 is owned by root (uid 0), expected dev (uid 1000); fix: sudo chown -R dev: /h/profiles/f0"
    assert problems[-1] == "permissions_unexpected: ... and 2 more files not owned by dev"


def test_drift_a_failed_stage_and_an_interruption_each_say_what_they_are():
    stages = {"deep_gemm": {"status": "would_run", "reason": "deep_gemm would run: driver_version 550 -> 570"},
              "moe_tune": {"status": "would_run", "reason": "moe_tune would run"},
              "flashinfer": {"status": "error", "error_type": "stage_failed", "reason": "flashinfer: no answer"}}
    recorded = {"moe_tune": {"status": "error", "error_type": "moe_tune_failed", "message": "tuner died"}}
    facts = valid(plan=plan(stages, recorded, problem="prep_result.json is not JSON"), run=info(["inductor", "moe_tune"]),
                  runtime_modified=["a.py"], stages=["deep_gemm", "moe_tune", "flashinfer"])
    assert validate_problems(facts) == [
        "runtime_modified: the runtime deployed under /h/runtime no longer matches the manifest its archive shipped: a.py; fix: "
        "run the prime playbook, which deploys it again and restarts the container",
        "bad_prep_result: prep_result.json is not JSON",
        "interrupted: stage inductor started and did not finish (its in-progress marker is present); re-run the prime playbook",
        "signature_drift: deep_gemm would run: driver_version 550 -> 570",
        "moe_tune_failed: moe_tune failed in this run and would run again: tuner died",
        "stage_failed: flashinfer: no answer"]


def test_a_serve_check_run_again_that_fails_is_listed_once():
    proof = {"state": {"stages": {"serve_check": {"status": "error", "error_type": "jit_at_serve_time", "message": "triton: 3 files"}}}}
    facts = valid(plan=plan({"deep_gemm": {"status": "noop"}, "serve_check": {"status": "error", "reason": "x"}}), proof=proof)
    assert validate_problems(facts) == ["jit_at_serve_time: serve_check, run again now: triton: 3 files"]
    broken = valid(proof={"msg": "async task did not complete", "error_type": "interrupted"})
    assert validate_problems(broken) == ["interrupted: the serve check could not run again: async task did not complete"]

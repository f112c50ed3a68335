"""sglang_stage: runs one stage through `docker exec` (argument lists only) and translates the RESULT line.

The docker CLI is replaced by a small fake that records every argv it gets and answers with recorded
runtime results (the same shapes the stage engine prints), so these tests need no Docker.
"""

import json

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import wording
from ansible_collections.sglang.prep.plugins.doc_fragments import _stage_options
from ansible_collections.sglang.prep.plugins.modules import sglang_prime, sglang_stage
from unit_support.modules import EXITED, RUNNING, exec_call, run_module

RUN_ID = "container-run-20261129T160740Z-339c4104"
SIGNATURE = {"device_name": "NVIDIA H100 80GB HBM3", "compute_capability": "sm_90", "cuda": "12.8",
             "driver_version": "570.148.08", "model_slug": "tiny-moe", "tp": 1}

# Recorded runtime results (trimmed), as `python3 -m sglang_prep stage ...` prints them after "RESULT ".
NOOP = {"stage": "deep_gemm", "run_id": RUN_ID, "mode": "ensure", "ran": False, "status": "noop", "status_code": 0,
        "duration_s": 0.365, "signature": SIGNATURE, "previous_signature": SIGNATURE, "reprime_reasons": [],
        "error_type": None, "message": "signature matches; nothing to do", "warnings": [], "errors": [], "log_tail": [],
        "stage_json": "/telemetry/container_runs/%s/stages/deep_gemm.json" % RUN_ID}
RAN = dict(NOOP, ran=True, status="ok", duration_s=41.8, previous_signature=dict(SIGNATURE, tp=2),
           reprime_reasons=[{"field": "tp", "old": 2, "new": 1}], message="deep_gemm primed in 41.8 s")
FIRST = dict(RAN, previous_signature=None,
             reprime_reasons=[{"field": "signature", "old": None,
                               "new": "no signature at /profiles/deep_gemm/tiny-moe/signature.json"}])
WOULD_RUN = dict(NOOP, mode="check", status="would_run", would_run=True, previous_signature=dict(SIGNATURE, tp=2),
                 reprime_reasons=[{"field": "tp", "old": 2, "new": 1}], stage_json=None)
FAILED = dict(NOOP, ran=True, status="error", status_code=1, error_type="readiness_timeout",
              message="the server did not become ready within 600 s; see log_tail",
              log_tail=["[2026-11-29 16:07:41] Load weight begin.", "[2026-11-29 16:17:41] still loading"])

def worded(result):
    """The result as the runtime prints it: every stage result and row carries the runtime's own wording."""
    if "stages" in result:
        return dict(result, stages={name: worded(row) for name, row in result["stages"].items()})
    return dict(result, reason=wording.reason(result.get("stage"), result)) if "status" in result else result


def result_line(result, before="progress on stdout that is not the result\n"):
    return before + contract.RESULT_PREFIX + json.dumps(worded(result)) + "\n"


def run(args, capsys, check_mode=False, diff=False, module=None):
    """``module`` (default: sglang_stage, or sglang_prime when the args name no single stage) run with ``args``."""
    module = module or (sglang_stage if "stage" in args or "operation" in args else sglang_prime)
    return run_module(module, args, capsys, check_mode=check_mode, diff=diff)


@pytest.fixture(autouse=True)
def fresh_deprecations(monkeypatch):
    """A module's deprecations collect in one process-wide table: each test starts with an empty one, and as a module
    on a host (where a controller plugin loaded by another test would send them to the display instead)."""
    from ansible.module_utils import _internal
    from ansible.module_utils.common import warnings
    monkeypatch.setattr(warnings, "_global_deprecations", {})
    monkeypatch.setattr(_internal, "is_controller", False)


def base(docker_path, **extra):
    args = {"container": "sglang-prep", "stage": "deep_gemm", "model": "/models/tiny-moe", "docker_cli": docker_path}
    args.update(extra)
    return args


def test_noop_is_ok_and_unchanged(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(NOOP))
    rc, out = run(base(path), capsys)
    assert rc == 0 and out["changed"] is False
    assert out["status"] == "noop" and out["ran"] is False
    assert out["stage_result"]["signature"] == SIGNATURE
    assert "nothing was launched" in out["msg"]


def test_stage_that_ran_is_changed_and_says_why(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(RAN))
    rc, out = run(base(path), capsys)
    assert rc == 0 and out["changed"] is True
    assert out["reprime_reasons"] == [{"field": "tp", "old": 2, "new": 1}]
    assert "tp: 2 -> 1" in out["msg"] and "41.8" in out["msg"]


def test_first_run_reason_reads_naturally(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(FIRST))
    rc, out = run(base(path), capsys)
    assert out["changed"] is True
    assert "no signature recorded" in out["msg"] and "None" not in out["msg"]


def test_runs_as_devuser_through_an_argument_list(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(NOOP))
    run(base(path, tp=2, mode="rebuild", port=30001, ready_timeout=90.0, lock_timeout=5.0, disk_headroom_mb=512,
             extra_server_args=["--attention-backend=fa3", "--log-level", "debug"],
             env={"HF_HUB_OFFLINE": "1"}), capsys)
    (argv,) = exec_call(calls())
    assert argv[:5] == ["exec", "-u", "devuser", "-e", "HF_HUB_OFFLINE"]
    assert argv[5] == "sglang-prep"
    assert argv[6:10] == ["python3", "-m", "sglang_prep", "stage"]
    rest = argv[10:]
    assert rest[0] == "deep_gemm"
    pairs = dict(zip(rest[1::2], rest[2::2]))
    assert pairs["--model"] == "/models/tiny-moe" and pairs["--tp"] == "2" and pairs["--mode"] == "rebuild"
    assert pairs["--port"] == "30001" and pairs["--ready-timeout"] == "90.0" and pairs["--lock-timeout"] == "5.0"
    assert pairs["--disk-headroom-mb"] == "512"
    # a server argument that itself starts with "--" must not be taken for an option of the runtime
    assert "--extra-server-arg=--attention-backend=fa3" in rest
    assert "--extra-server-arg=--log-level" in rest and "--extra-server-arg=debug" in rest


def test_unset_tuning_options_are_left_to_the_runtime(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(NOOP))
    run(base(path), capsys)
    (argv,) = exec_call(calls())
    for flag in ("--lock-timeout", "--ready-timeout", "--disk-headroom-mb", "--moe-batch-sizes", "--moe-dtype", "--pointer"):
        assert flag not in argv


def test_moe_batch_sizes_are_passed_as_a_list(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(dict(NOOP, stage="moe_tune")))
    run(base(path, stage="moe_tune", moe_batch_sizes=[1, 64], moe_dtype="fp8_w8a8"), capsys)
    (argv,) = exec_call(calls())
    i = argv.index("--moe-batch-sizes")
    assert argv[i + 1:i + 3] == ["1", "64"]
    assert argv[argv.index("--moe-dtype") + 1] == "fp8_w8a8"


def test_failed_stage_fails_with_error_type_and_log_tail(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(FAILED), rc=1)
    rc, out = run(base(path), capsys)
    assert rc == 1 and out["failed"] is True and out["changed"] is False
    assert out["error_type"] == "readiness_timeout"
    assert "did not become ready" in out["msg"] and out["msg"].startswith("deep_gemm failed (readiness_timeout)")
    assert out["log_tail"][-1].endswith("still loading")
    assert out["stage_result"]["status"] == "error"


def test_no_result_line_fails_with_the_runtime_output(docker, capsys):
    path, configure, calls = docker
    configure(stdout="", stderr="usage: sglang_prep stage ...\nsglang_prep: error: argument --tp: invalid int value\n", rc=2)
    rc, out = run(base(path), capsys)
    assert rc == 1 and out["error_type"] == "internal_error"
    assert "no RESULT line" in out["msg"] and "invalid int value" in out["msg"]


@pytest.mark.parametrize("stages", [None, ["deep_gemm"]])
def test_a_killed_runtime_is_interrupted_not_an_internal_error(docker, capsys, stages):
    path, configure, calls = docker
    configure(stdout="", stderr="sglang_prep deep_gemm: server pid 42\n", rc=137)
    args = base(path)
    if stages is not None:
        del args["stage"]
        args.update(stages=stages)  # sglang_prime
    rc, out = run(args, capsys)
    assert rc == 1 and out.get("error_type") == "interrupted", out
    assert "killed by signal 9" in out["msg"] and "exit code 137" in out["msg"]


def test_a_container_that_stops_mid_stage_is_interrupted_and_says_so(docker, capsys):
    path, configure, calls = docker
    configure(stdout="", stderr="", rc=137, state_after_exec=dict(EXITED, ExitCode=137, Status="exited"))
    rc, out = run(base(path), capsys)
    assert rc == 1 and out["error_type"] == "interrupted"
    assert "container sglang-prep stopped" in out["msg"] and "exited, exit code 137" in out["msg"]


def test_container_not_running_fails_fast_with_its_logs(docker, capsys):
    path, configure, calls = docker
    configure(state=EXITED, logs="permissions_unexpected: /profiles is owned by root (uid 0), expected uid 4242\n")
    rc, out = run(base(path), capsys)
    assert rc == 1 and out["error_type"] == "container_not_running"
    assert "exit code 1" in out["msg"] and "owned by root" in out["msg"]
    assert exec_call(calls()) == []


def test_missing_container_is_container_not_running(docker, capsys):
    path, configure, calls = docker
    configure(state=None)
    rc, out = run(base(path), capsys)
    assert out["error_type"] == "container_not_running" and "does not exist" in out["msg"]


def test_check_mode_asks_the_runtime_in_check_mode_and_names_the_reason(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(WOULD_RUN))
    rc, out = run(base(path, mode="rebuild"), capsys, check_mode=True)
    (argv,) = exec_call(calls())
    assert argv[argv.index("--mode") + 1] == "check"
    assert rc == 0 and out["changed"] is True and out["status"] == "would_run"
    assert out["msg"] == "deep_gemm would run: tp: 2 -> 1"


def test_check_mode_on_a_primed_stage_reports_no_change(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(dict(NOOP, mode="check")))
    rc, out = run(base(path), capsys, check_mode=True)
    assert out["changed"] is False


def test_diff_shows_recorded_against_current_signature(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(WOULD_RUN))
    rc, out = run(base(path), capsys, check_mode=True, diff=True)
    assert out["diff"]["before"]["tp"] == 2 and out["diff"]["after"]["tp"] == 1
    rc, out = run(base(path), capsys)
    assert "diff" not in out


def test_model_outside_models_is_refused_before_anything_runs(docker, capsys):
    path, configure, calls = docker
    rc, out = run(base(path, model="/home/u/models/tiny-moe"), capsys)
    assert rc == 1 and out["error_type"] == "model_not_found" and "/models/<name>" in out["msg"]
    assert calls() == []


def test_env_values_reach_the_runtime_but_never_an_argv_or_the_result(docker, capsys, tmp_path):
    path, configure, calls = docker
    configure(stdout=result_line(NOOP))
    secret = "hf_s3cr3t_value"
    rc, out = run(base(path, env={"HF_TOKEN": secret}, _ansible_inject_invocation=True), capsys)
    assert rc == 0
    seen = [json.loads(line) for line in open(str(tmp_path / "calls.jsonl") + ".env")]
    assert {"HF_TOKEN": secret} in seen  # the runtime gets the value
    assert secret not in json.dumps(calls()) and secret not in json.dumps(out)  # no argv, no result, no async file
    assert out["invocation"]["module_args"]["env"] == {"HF_TOKEN": "VALUE_NOT_RECORDED"}
    assert out["cmd"][4:6] == ["-e", "HF_TOKEN"]


def test_env_values_must_be_strings(docker, capsys):
    path, configure, calls = docker
    rc, out = run(base(path, env={"SOME_FLAG": 1}), capsys)
    assert rc == 1 and "quote it" in out["msg"]


# ---------------------------------------------------------------- plan (stages=[...])

PLAN = {
    "schema_version": "1",
    "run": {"run_id": RUN_ID, "manifest": "/home/u/obs/telemetry/container_runs/%s.json" % RUN_ID,
            "log_file": "/home/u/obs/telemetry/logs/%s.log" % RUN_ID, "paths": {"container": {}, "host": {}}},
    "stages": {
        "deep_gemm": dict(NOOP, mode="check", action="none", planned_mode="ensure"),
        "moe_tune": dict(WOULD_RUN, stage="moe_tune", action="run", planned_mode="rebuild",
                         reprime_reasons=[{"field": "mode", "old": None, "new": "rebuild"}]),
        "flashinfer": dict(NOOP, stage="flashinfer", mode="check", action="record", planned_mode="ensure"),
    },
    "to_run": ["moe_tune", "flashinfer"],
    "prep_result": {"status": "ok", "run": {"signature_group": "6bb7c4ffeb53"}},
    "caches": {"total_bytes": 4096, "caches": {}, "partial_stages": [], "profiles_root": "/home/u/obs/profiles"},
    "warnings": [],
}


def plan_base(docker_path, **extra):
    """sglang_prime's arguments for a plan of three stages."""
    args = base(docker_path, stages=["deep_gemm", "moe_tune", "flashinfer"], plan_only=True)
    del args["stage"]
    args.update(extra)
    return args


def test_plan_asks_once_with_the_options_the_runs_will_use(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(PLAN))
    run(plan_base(path, tp=2, moe_batch_sizes=[1, 64], stage_modes={"moe_tune": "rebuild"},
                  extra_server_args=["--attention-backend=fa3"]), capsys)
    (argv,) = exec_call(calls())
    assert argv[4:8] == ["python3", "-m", "sglang_prep", "plan"]
    rest = argv[8:]
    assert rest[:4] == ["--stages", "deep_gemm", "moe_tune", "flashinfer"]
    assert rest[rest.index("--rebuild") + 1] == "moe_tune" and rest.count("--rebuild") == 1
    assert rest[rest.index("--tp") + 1] == "2" and "--extra-server-arg=--attention-backend=fa3" in rest
    assert rest[rest.index("--moe-batch-sizes") + 1:][:2] == ["1", "64"]
    assert "--mode" not in rest


def test_plan_changes_nothing_and_returns_what_the_role_needs(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(PLAN))
    rc, out = run(plan_base(path), capsys, diff=True)
    assert rc == 0 and out["changed"] is False and "diff" not in out
    assert out["to_run"] == ["moe_tune", "flashinfer"]
    assert out["plan"]["flashinfer"]["action"] == "record"
    assert out["run"]["run_id"] == RUN_ID and out["prep_result"]["status"] == "ok" and out["caches"]["total_bytes"] == 4096
    assert "deep_gemm is primed" in out["msg"] and "moe_tune would run: rebuild asked" in out["msg"]
    assert "flashinfer is primed" in out["msg"] and "to be recorded" in out["msg"]
    assert out["plan"]["moe_tune"]["reason"] == "moe_tune would run: rebuild asked"  # the line validate shows


def test_state_only_leaves_out_what_repeats_the_state(docker, capsys):
    """The prime role's first look registers the plan: state_only keeps the state and to_run, and drops the keys that
    repeat parts of the state (plan, run, prep_result, caches), whatever the check mode."""
    path, configure, _calls = docker
    configure(stdout=result_line(PLAN))
    rc, out = run(plan_base(path, state_only=True), capsys)
    assert rc == 0 and out["changed"] is False
    assert not {"plan", "run", "prep_result", "caches"} & set(out)
    assert out["to_run"] == ["moe_tune", "flashinfer"] and out["state"]["stages"]["flashinfer"]["action"] == "record"
    assert out["state"]["run"]["run_id"] == RUN_ID and out["state"]["prep_result"]["status"] == "ok"
    rc, out = run(plan_base(path, state_only=True, plan_only=False), capsys, check_mode=True, diff=True)
    assert rc == 0 and out["changed"] is True and "plan" not in out
    assert [d["before_header"] for d in out["diff"]] == ["moe_tune signature (recorded)"]


def test_plan_in_check_mode_is_the_answer_with_a_diff_per_stage_that_would_run(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(PLAN))
    rc, out = run(plan_base(path), capsys, check_mode=True, diff=True)
    assert rc == 0 and out["changed"] is True
    assert [d["before_header"] for d in out["diff"]] == ["moe_tune signature (recorded)"]
    assert out["diff"][0]["before"]["tp"] == 2 and out["diff"][0]["after"]["tp"] == 1
    primed = dict(PLAN, stages={"deep_gemm": PLAN["stages"]["deep_gemm"]}, to_run=[])
    configure(stdout=result_line(primed))
    rc, out = run(plan_base(path, stages=["deep_gemm"]), capsys, check_mode=True, diff=True)
    assert rc == 0 and out["changed"] is False and out["diff"] == []


def test_plan_in_check_mode_fails_when_a_stage_cannot_be_checked(docker, capsys):
    path, configure, calls = docker
    broken = dict(PLAN, stages=dict(PLAN["stages"], moe_tune=dict(FAILED, stage="moe_tune", error_type="model_not_found",
                                                                  message="model directory /models/x does not exist",
                                                                  action="run")))
    configure(stdout=result_line(broken))
    rc, out = run(plan_base(path), capsys, check_mode=True)
    assert rc == 1 and out["error_type"] == "model_not_found" and out["plan"]["deep_gemm"]["status"] == "noop"
    rc, out = run(plan_base(path), capsys)
    assert rc == 0 and "moe_tune" in out["to_run"]  # outside check mode the run records the failure
    rc, out = run(plan_base(path, state_only=True), capsys, check_mode=True)
    assert rc == 1 and out["error_type"] == "model_not_found" and "plan" not in out


def test_plan_without_a_run_fails_with_the_runtime_error_type(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line({"status": "error", "status_code": 1, "error_type": "bad_pointer",
                                  "message": "pointer /telemetry/container_run_meta.env does not exist", "command": "plan"}), rc=1)
    rc, out = run(plan_base(path), capsys)
    assert rc == 1 and out["error_type"] == "bad_pointer" and "does not exist" in out["msg"]


# ---------------------------------------------------------------- the look at the container (container_spec)
# The prime role's re-prime: one call says whether the container runs with the wanted settings digest on the image
# prime_image names now, and plans only then; anything else sends the role to its closer look (and a restart).

SPEC = "a" * 64
IMAGE_ID = "sha256:" + "1" * 64


def look_config(configure, **cfg):
    configure(**dict(dict(labels={contract.CONTAINER_SPEC_LABEL: SPEC}, image_id=IMAGE_ID,
                          images={"sglang:v1": IMAGE_ID}, stdout=result_line(PLAN)), **cfg))


def test_a_current_container_is_planned_against_in_the_same_call(docker, capsys):
    path, configure, calls = docker
    look_config(configure)
    rc, out = run(plan_base(path, container_spec=SPEC, image="sglang:v1"), capsys)
    assert rc == 0 and out["planned"] is True and out["container_look"]["current"] is True
    assert out["to_run"] == ["moe_tune", "flashinfer"]
    assert [c[0] for c in calls()] == ["inspect", "image", "exec"]  # two looks and the plan: nothing more


@pytest.mark.parametrize("cfg, reason", [
    (dict(labels={contract.CONTAINER_SPEC_LABEL: "b" * 64}), "was started with other settings"),
    (dict(labels={}), "was started with other settings"),  # started before the label existed
    (dict(images={"sglang:v1": "sha256:" + "2" * 64}), "image sglang:v1 is not the one container sglang-prep runs"),
    (dict(images={}), "image sglang:v1 is not the one container sglang-prep runs"),  # the tag is gone from the host
    (dict(state=EXITED), "container sglang-prep is exited, exit code 1"),
    (dict(state=dict(RUNNING, Paused=True)), "container sglang-prep is"),
    (dict(state=None), "no container sglang-prep"),
])
def test_anything_else_is_not_planned_and_says_why(docker, capsys, cfg, reason):
    path, configure, calls = docker
    look_config(configure, **cfg)
    rc, out = run(plan_base(path, container_spec=SPEC, image="sglang:v1"), capsys)
    assert rc == 0 and out["planned"] is False and out["changed"] is False
    assert out["container_look"]["current"] is False and reason in out["container_look"]["reason"]
    assert "exec" not in [c[0] for c in calls()]  # no plan for a container that is about to change


def test_a_current_container_without_a_usable_pointer_says_both(docker, capsys):
    # the role restarts (heals) a running container whose run pointer is missing or broken: it needs both answers
    path, configure, calls = docker
    look_config(configure, rc=1, stdout=result_line({"status": "error", "status_code": 1, "error_type": "bad_pointer",
                                                     "message": "pointer /telemetry/container_run_meta.env does not exist",
                                                     "command": "plan"}))
    rc, out = run(plan_base(path, container_spec=SPEC, image="sglang:v1"), capsys)
    assert rc == 1 and out["error_type"] == "bad_pointer"
    assert out["planned"] is True and out["container_look"]["current"] is True and out["container_look"]["running"] is True


def test_container_spec_needs_the_image_and_a_plan(docker, capsys):
    path, configure, calls = docker
    rc, out = run(plan_base(path, container_spec=SPEC), capsys)
    assert rc == 1 and "image" in out["msg"]
    rc, out = run(plan_base(path, container_spec=SPEC, image="sglang:v1", plan_only=False), capsys)
    assert rc == 1 and out["error_type"] == "bad_input" and "plan" in out["msg"] and calls() == []
    old = dict(plan_base(path, container_spec=SPEC, image="sglang:v1", operation="report"), plan_only=None)
    del old["plan_only"]
    rc, out = run(old, capsys)
    assert rc == 1 and out["error_type"] == "bad_input" and calls() == []


def test_stage_and_stages_exclude_each_other_and_modes_are_checked(docker, capsys):
    path, configure, calls = docker
    both = dict(plan_base(path), stage="deep_gemm")
    del both["plan_only"]
    rc, out = run(both, capsys)
    assert rc == 1 and "mutually exclusive" in out["msg"]
    rc, out = run(plan_base(path, stage_modes={"moe_tune": "check"}), capsys)
    assert rc == 1 and "moe_tune: check" in out["msg"]
    assert calls() == []


def test_documented_options_match_the_argument_spec():
    import yaml
    doc = yaml.safe_load(sglang_stage.DOCUMENTATION)
    assert "choices" not in doc["options"]["stage"]  # the registry is the one list of stages
    shared = yaml.safe_load(_stage_options.ModuleDocFragment.DOCUMENTATION)["options"]  # the one wording of them
    assert shared["port"]["default"] == contract.SERVER_PORT
    assert shared["user"]["default"] == contract.DEVUSER


def test_an_unknown_stage_is_bad_input_before_any_docker_call(docker, capsys):
    path, configure, calls = docker
    rc, out = run(base(path, stage="warp_drive"), capsys)
    assert rc == 1 and out["error_type"] == "bad_input"
    assert "warp_drive" in out["msg"] and "deep_gemm" in out["msg"]
    assert calls() == []


@pytest.mark.parametrize("extra, named", [(["--mem-fraction", "0.5"], "abbreviates --mem-fraction-static"),
                                          (["--kv-cache-dt=bf16"], "abbreviates --kv-cache-dtype"),
                                          (["--config", "/models/serve.yaml"], "'--config' is refused")])
def test_a_smuggled_reserved_flag_is_bad_input_before_any_docker_call(docker, capsys, extra, named):
    path, configure, calls = docker
    rc, out = run(base(path, stage="deep_gemm", extra_server_args=extra), capsys)
    assert rc == 1 and out["error_type"] == "bad_input"
    assert named in out["msg"] and repr(extra[0]) in out["msg"]
    assert calls() == []


def test_secret_server_option_values_reach_the_runtime_but_never_a_command_line_or_the_result(docker, capsys, tmp_path):
    path, configure, calls = docker
    configure(stdout=result_line(NOOP))
    key, admin = "sk-planted-4f1c", "adm-planted-9e2b"
    extra = ["--api-key", key, "--admin-api-key=" + admin, "--log-level=info"]
    rc, out = run(base(path, extra_server_args=extra, _ansible_inject_invocation=True), capsys)
    assert rc == 0
    runtime = exec_call(calls())[-1]
    # no argv of the docker CLI (the host's process list) carries a secret: the extra args travel by environment
    assert key not in json.dumps(calls()) and admin not in json.dumps(calls())
    assert not [arg for arg in runtime if arg.startswith("--extra-server-arg")]
    assert runtime[runtime.index("-e") + 1] == contract.ENV_EXTRA_SERVER_ARGS
    seen = [json.loads(line) for line in open(str(tmp_path / "calls.jsonl") + ".env")]
    assert {contract.ENV_EXTRA_SERVER_ARGS: json.dumps(extra)} in seen  # in order, all of them, for the runtime
    assert key not in json.dumps(out) and admin not in json.dumps(out)  # no cmd, no invocation, no async file
    assert out["invocation"]["module_args"]["extra_server_args"] == [
        "--api-key", "<redacted>", "--admin-api-key=<redacted>", "--log-level=info"]
    assert contract.ENV_EXTRA_SERVER_ARGS in out["cmd"]


def test_extra_server_args_without_a_secret_stay_on_the_runtime_command_line(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(NOOP))
    rc, out = run(base(path, extra_server_args=["--log-level=info"]), capsys)
    assert rc == 0
    runtime = exec_call(calls())[-1]
    assert "--extra-server-arg=--log-level=info" in runtime and contract.ENV_EXTRA_SERVER_ARGS not in runtime


# ---------------------------------------------------------------- sglang_prime, and sglang_stage's old modes
def test_prime_runs_the_stages_as_one_job_and_returns_the_state(docker, capsys):
    path, configure, calls = docker
    primed = dict(PLAN, command="prime", status="changed", order=["deep_gemm", "moe_tune", "flashinfer"],
                  stages=dict(PLAN["stages"], moe_tune=dict(RAN, stage="moe_tune")))
    configure(stdout=result_line(primed))
    rc, out = run(plan_base(path, plan_only=False, stage_modes={"moe_tune": "rebuild"}), capsys)
    (argv,) = exec_call(calls())
    assert argv[4:8] == ["python3", "-m", "sglang_prep", "prime"] and argv[argv.index("--rebuild") + 1] == "moe_tune"
    assert rc == 0 and out["changed"] is True and out["state"]["stages"]["moe_tune"]["ran"] is True
    assert "moe_tune ran and succeeded" in out["msg"]


def test_prime_plans_every_stage_of_the_registry_when_none_is_named(docker, capsys):
    path, configure, calls = docker
    every = list(contract.STAGE_ORDER)
    configure(stdout=result_line(dict(PLAN, stages=dict((s, dict(NOOP, stage=s, action="none")) for s in every),
                                      to_run=[])))
    args = plan_base(path)
    del args["stages"]
    rc, out = run(args, capsys)
    (argv,) = exec_call(calls())
    assert rc == 0 and argv[argv.index("--stages") + 1:][:len(every)] == every and out["to_run"] == []


@pytest.mark.parametrize("operation, command, new", [(None, "plan", "sglang.prep.sglang_prime (plan_only=true"),
                                                     ("plan", "plan", "sglang.prep.sglang_prime (plan_only=true"),
                                                     ("prime", "prime", "sglang.prep.sglang_prime"),
                                                     ("report", "report", "sglang.prep.sglang_prime_info")])
def test_the_old_modes_of_sglang_stage_still_work_and_say_what_replaces_them(docker, capsys, operation, command, new):
    path, configure, calls = docker
    configure(stdout=result_line(dict(PLAN, command=command, order=["deep_gemm", "moe_tune", "flashinfer"])))
    old = plan_base(path)
    del old["plan_only"]
    if operation:
        old["operation"] = operation
    rc, out = run(old, capsys, module=sglang_stage)
    (argv,) = exec_call(calls())
    assert rc == 0 and argv[7] == command and out["state"]["stages"]["moe_tune"]["status"] == "would_run"
    (deprecation,) = out["deprecations"]
    text = deprecation["event"]["msg"]
    assert text.startswith("sglang.prep.sglang_stage with stages") and new in text
    assert deprecation["version"] == "2.0.0" and deprecation["deprecator"]["resolved_name"] == "sglang.prep"


def test_the_single_stage_primitive_has_no_deprecation(docker, capsys):
    path, configure, calls = docker
    configure(stdout=result_line(NOOP))
    rc, out = run(base(path), capsys)
    assert rc == 0 and not out.get("deprecations")


# ---------------------------------------------------------------- one call: the host, the container and the plan (host)
# The prime role's no-op re-prime asks all three in one sglang_prime call: the digest of its container settings depends
# on what the host look finds (the host user's UID, the host root, the env file), so the look returns the settings label
# it saw and the role compares it.

def test_one_call_looks_at_the_host_and_the_container_and_plans(docker, capsys, tmp_path):
    path, configure, calls = docker
    look_config(configure)
    (tmp_path / "root" / "telemetry").mkdir(parents=True)
    rc, out = run(plan_base(path, image="sglang:v1", host={"host_root": str(tmp_path / "root") + "/"}), capsys)
    assert rc == 0 and out["planned"] is True and out["to_run"] == ["moe_tune", "flashinfer"]
    assert out["container_look"]["current"] is True and out["container_look"]["spec"] == SPEC  # returned, not compared
    assert out["host"]["host_root"] == str(tmp_path / "root")
    assert str(tmp_path / "root" / "telemetry") in [e["path"] for e in out["host"]["entries"]]
    assert [c[0] for c in calls()] == ["inspect", "image", "exec"]  # the host look asks the docker CLI nothing


def test_the_host_look_comes_with_every_answer(docker, capsys, tmp_path):
    path, configure, calls = docker
    look_config(configure, images={})
    rc, out = run(plan_base(path, image="sglang:v1", host={"host_root": str(tmp_path)}), capsys)
    assert rc == 0 and out["planned"] is False and out["host"]["host_root"] == str(tmp_path)
    rc, out = run(plan_base(path, image="sglang:v1", model="models/x", host={"host_root": str(tmp_path)}), capsys)
    assert rc == 1 and out["error_type"] == "model_not_found" and out["host"]["host_root"] == str(tmp_path)


# ---------------------------------------------------------------- the serve entry point's look (serving)
# serve.yml's first look asks, in place of the priming plan, what sglang_serve would do (the runtime's serve --check):
# a no-op serve is that one call.

SERVE_NOOP = {"stage": "serve", "status": "noop", "changed": False, "action": "none", "run_id": RUN_ID, "zero_jit": True,
              "container_mode": {"mode": "serving", "changed": False},
              "server": {"server_pid": 41, "port": 30000, "digest": "d" * 16},
              "message": "already serving /models/tiny-moe on port 30000 with the same settings"}


def test_the_serving_look_asks_what_serve_would_do_in_the_same_call(docker, capsys, tmp_path):
    path, configure, calls = docker
    look_config(configure, stdout=result_line(SERVE_NOOP))
    rc, out = run(plan_base(path, image="sglang:v1", serving=True, host={"host_root": str(tmp_path)}), capsys)
    assert rc == 0 and out["changed"] is False and out["planned"] is True
    assert out["serve"]["status"] == "noop" and out["serve"]["changed"] is False and out["serve"]["zero_jit"] is True
    assert out["host"]["host_root"] == str(tmp_path) and out["container_look"]["current"] is True
    assert [c[0] for c in calls()] == ["inspect", "image", "exec"]  # the looks and one runtime call
    argv = exec_call(calls())[0]
    assert argv[argv.index("sglang_prep") + 1] == "serve" and "--check" in argv and "--prime" not in argv


def test_the_serving_look_fails_with_the_refusal_and_keeps_the_looks(docker, capsys):
    path, configure, calls = docker
    look_config(configure, rc=1, stdout=result_line({"stage": "serve", "status": "error", "error_type": "not_primed",
                                                     "message": "not primed: deep_gemm: tp: 1 -> 2"}))
    rc, out = run(plan_base(path, image="sglang:v1", serving=True), capsys)
    assert rc == 1 and out["error_type"] == "not_primed" and "tp: 1 -> 2" in out["msg"]
    assert out["container_look"]["current"] is True and out["serve"]["status"] == "error"


def test_serving_goes_with_a_look_at_the_container(docker, capsys):
    path, configure, calls = docker
    rc, out = run(plan_base(path, serving=True), capsys)
    assert rc == 1 and out["error_type"] == "bad_input" and "serving" in out["msg"] and calls() == []

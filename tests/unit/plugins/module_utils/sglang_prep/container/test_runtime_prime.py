"""`prime` (one job for all of a host's stages, with a progress file) and `report`, and the priming state they return.

Uses the fake container run of test_runtime_engine (manifest and pointer under tmp, the stand-in tools as
real subprocesses), so the job is checked against what the stage engine itself records.
"""

import copy
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, registry
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import (
    engine, locks, progress, state)
from unit_support.paths import RUNTIME
from unit_support.runtime import ALL, HOST_TELEMETRY, RUN_ID, assert_clean, assert_state_shape, do_prime

PROGRESS_HOST = "%s/container_runs/%s/progress.json" % (HOST_TELEMETRY, RUN_ID)
PROGRESS_KEYS = {"schema_version", "run_id", "pid", "started_at", "updated_at", "state", "stages", "index", "count",
                 "stage", "step", "elapsed_s", "stage_elapsed_s", "eta_s", "log_file", "finished", "error_type", "message"}


@pytest.fixture
def writes(monkeypatch):
    """Every progress file write, as written (the file itself only keeps the last one)."""
    seen = []
    real = progress.ProgressWriter.write

    def recording(self):
        real(self)
        seen.append(copy.deepcopy(self.data))

    monkeypatch.setattr(progress.ProgressWriter, "write", recording)
    return seen


def progress_file(run):
    with open(os.path.join(run.run_dir, "progress.json")) as handle:
        return json.load(handle)


def test_prime_runs_every_stage_in_order_with_one_progress_file(run, writes):
    model = do_prime(run)
    assert_state_shape(model)
    assert model["command"] == "prime" and model["status"] == "changed"
    assert model["error_type"] is None and model["failed_stage"] is None
    # the stand-in stack (triton 3.4.0, no torch) is not the pinned one: the plan says so, and nothing else warns
    assert [w for w in model["warnings"] if "priming tables were checked against" not in w] == []
    assert len(model["warnings"]) == 1 and "triton 3.4.0 (checked against 3.8.0)" in model["warnings"][0]
    assert model["to_run"] == ALL and model["order"] == ALL
    for stage in ALL:
        row = model["stages"][stage]
        assert row["status"] == "ok" and row["ran"] is True and row["mode"] == "ensure"
        assert row["action"] == "run" and row["planned_mode"] == "ensure"
        assert row["reason"].startswith("%s ran and succeeded in" % stage) and "no signature recorded" in row["reason"]
        assert row["stage_json_host"] == "%s/container_runs/%s/models/%s/stages/%s.json" % (HOST_TELEMETRY, RUN_ID, contract.model_key(run.model), stage)
        assert run.stage_json(stage)["status"] == "ok"
    # the one aggregate, rebuilt by the job and carried as is
    assert model["prep_result"] == run.prep_result() and model["aggregate"] == "ok"
    assert model["prep_result_path"] == "%s/container_runs/%s/models/%s/prep_result.json" % (
        HOST_TELEMETRY, RUN_ID, contract.model_key(run.model))
    assert model["gpu"] == {"device_name": "NVIDIA H100 80GB HBM3", "compute_capability": "sm_90",
                            "driver_version": "570.148.08", "cuda": "12.8"}
    assert model["signature_group"] == model["prep_result"]["run"]["signature_group"]
    assert model["caches"]["total_bytes"] > 0 and model["stages"]["inductor"]["cache"]["files"] > 0
    assert model["run"]["progress_file"] == PROGRESS_HOST

    # the progress file: written at each change only, and its last state is the model's
    final = progress_file(run)
    assert set(final) == PROGRESS_KEYS and final == model["progress"]
    assert final["state"] == "done" and final["index"] == final["count"] == len(contract.STAGE_ORDER)
    assert final["stage"] == "serve_check"
    assert [f["stage"] for f in final["finished"]] == ALL and all(f["status"] == "ok" for f in final["finished"])
    assert final["pid"] == os.getpid() and final["stages"] == ALL
    starts = [(w["index"], w["stage"]) for w in writes if w["step"] is None and w["stage_elapsed_s"] is not None
              and len(w["finished"]) == w["index"] - 1]
    assert starts == list(enumerate(contract.STAGE_ORDER, 1))
    steps = [w["step"] for w in writes if w["stage"] == "moe_tune" and w["step"] and len(w["finished"]) == 1]
    assert steps == [{"index": 1, "count": 2, "label": "batch size 1"}, {"index": 2, "count": 2, "label": "batch size 2"}]
    requests = [w["step"] for w in writes if w["stage"] == "serve_check" and w["step"]
                and len(w["finished"]) == len(ALL) - 1]
    assert len(requests) == model["stages"]["serve_check"]["server"]["generate"]["requests"] > 1
    assert requests[0] == {"index": 1, "count": len(requests), "label": "prompt of 1 tokens"}
    assert all(w["state"] == "running" for w in writes[:-1]) and writes[-1]["state"] == "done"
    # stage starts, moe_tune steps, serve_check requests, stage ends, the end
    assert len(writes) == len(ALL) + 2 + len(requests) + len(ALL) + 1
    assert model["zero_jit"] is True and model["zero_jit_reason"].startswith("yes: %d requests (" % len(requests))
    assert model["prep_result"]["zero_jit"] is True
    assert all(writes[i] != writes[i + 1] for i in range(len(writes) - 1))
    assert all(w["eta_s"] is None for w in writes)  # nothing ran before: no duration to go by


def test_the_session_log_is_named_before_the_first_stage(run):
    do_prime(run, stages=["deep_gemm"])
    text = open(run.stderr_path).read()
    first = [line for line in text.splitlines() if line.startswith("sglang_prep prime: run %s: session log" % RUN_ID)]
    assert first and text.index(first[0]) < text.index("sglang_prep deep_gemm: ensure deep_gemm for")
    assert "/home/u/obs/telemetry/logs/%s.log" % RUN_ID in first[0] and PROGRESS_HOST in first[0]
    with open(run.log) as handle:
        log = handle.read()
    assert "[prime] run %s: session log /home/u/obs/telemetry/logs/%s.log" % (RUN_ID, RUN_ID) in log
    assert log.index("[prime] run ") < log.index("[stage:deep_gemm]")


def test_a_primed_host_has_nothing_to_run_and_launches_nothing(run, writes):
    do_prime(run)
    lines = {stage: len(run.server_lines(stage)) for stage in ("deep_gemm", "flashinfer", "inductor")}
    prep = run.prep_result()
    del writes[:]
    again = do_prime(run)
    assert_state_shape(again)
    assert again["status"] == "ok" and again["to_run"] == []
    assert all(again["stages"][s]["action"] == "none" and again["stages"][s]["ran"] is False for s in ALL)
    assert all(again["stages"][s]["status"] == "noop" for s in ALL)
    assert all(again["stages"][s]["stage_json"] == contract.stage_json_path(RUN_ID, s, run.model) for s in ALL)
    assert again["stages"]["deep_gemm"]["reason"] == (
        "deep_gemm is primed: the recorded signature matches, nothing was launched")
    assert {stage: len(run.server_lines(stage)) for stage in lines} == lines
    # nothing ran, yet the aggregate is rebuilt from the stage files (a damaged one never survives a prime)
    rebuilt = run.prep_result()
    assert rebuilt["generated_at"] >= prep["generated_at"]
    assert dict(rebuilt, generated_at=None) == dict(prep, generated_at=None)
    assert again["aggregate"] == "ok" and again["prep_result"] == rebuilt
    assert [w["state"] for w in writes] == ["done"] and writes[0]["count"] == 0


def test_a_failing_stage_stops_the_job_and_the_rest_is_not_run(run):
    model = do_prime(run, env={"SGLANG_STANDIN_FAULT": "oom"}, stages=["moe_tune", "flashinfer", "inductor"])
    assert_state_shape(model)
    assert model["status"] == "error" and model["failed_stage"] == "flashinfer"
    assert model["error_type"] == "not_enough_memory" and "Not enough memory" in model["message"]
    rows = model["stages"]
    assert rows["moe_tune"]["status"] == "ok"
    assert rows["flashinfer"]["status"] == "error" and rows["flashinfer"]["log_tail"]
    assert rows["flashinfer"]["reason"].startswith("flashinfer failed (not_enough_memory): ")
    assert rows["inductor"]["status"] == "not_run" and rows["inductor"]["ran"] is False
    assert rows["inductor"]["mode"] is None and rows["inductor"]["planned_mode"] == "ensure"
    assert rows["inductor"]["reason"] == "inductor did not run: flashinfer failed first (not_enough_memory)"
    assert rows["inductor"]["reprime_reasons"][0]["field"] == "signature"  # why it would have run is kept
    assert not os.path.exists(os.path.join(run.model_dir(), "stages", "inductor.json"))
    assert model["aggregate"] == "partial" == run.prep_result()["status"]
    final = progress_file(run)
    assert final["state"] == "failed" and final["stage"] == "flashinfer" and final["index"] == 2
    assert final["error_type"] == "not_enough_memory" and final["stage_elapsed_s"] == pytest.approx(
        model["stages"]["flashinfer"]["duration_s"], abs=0.1)
    assert [(f["stage"], f["status"]) for f in final["finished"]] == [("moe_tune", "ok"), ("flashinfer", "error")]
    assert_clean(run, "flashinfer")


def test_rebuild_and_record_actions(run, writes):
    do_prime(run)
    for stage in ("moe_tune", "inductor"):
        os.remove(os.path.join(run.model_dir(), "stages", stage + ".json"))  # as in a new container run
    del writes[:]
    model = do_prime(run, rebuild=["deep_gemm"])
    assert model["to_run"] == ["deep_gemm", "moe_tune", "inductor"]
    dg = model["stages"]["deep_gemm"]
    assert dg["mode"] == "rebuild" and dg["status"] == "ok" and dg["ran"]
    assert dg["reprime_reasons"] == [{"field": "mode", "old": None, "new": "rebuild"}]
    assert dg["reason"].endswith("(because: rebuild asked)")
    for stage in ("moe_tune", "inductor"):  # recorded as a noop, nothing launched
        assert model["stages"][stage]["action"] == "record" and model["stages"][stage]["status"] == "noop"
        assert run.stage_json(stage)["status"] == "noop"
    assert model["stages"]["flashinfer"]["action"] == "none"
    assert model["status"] == "changed"
    # the rebuilt stage's ETA comes from its previous successful run; a record has none
    eta = {w["stage"]: w["eta_s"] for w in writes if w["step"] is None and len(w["finished"]) == w["index"] - 1}
    assert eta["deep_gemm"] is not None and eta["deep_gemm"] > 0
    assert eta["moe_tune"] is None and eta["inductor"] is None


def test_a_new_tuning_re_warms_the_stages_that_depend_on_it_in_the_same_job(run):
    """The warm-ups are planned against the signature moe_tune is about to record, not the one it had."""
    do_prime(run)
    model = do_prime(run, moe_batch_sizes=[4])
    # moe_tune and what depends on it
    assert model["to_run"] == ["moe_tune"] + [s for s in contract.STAGE_ORDER if "moe_tune" in registry.get(s).depends_on]
    for stage in ("flashinfer", "inductor"):
        row = model["stages"][stage]
        assert row["status"] == "ok" and row["ran"] and row["action"] == "run"
        assert [r["field"] for r in row["reprime_reasons"]] == ["moe_tune_signature"]
    # the serve check proves again what changed: the tuning and the warm-ups built on it
    check = model["stages"]["serve_check"]
    assert check["status"] == "ok" and check["zero_jit"] is True
    assert [r["field"] for r in check["reprime_reasons"]] == sorted(
        registry.dependency_field(stage) for stage in model["to_run"] if stage != "serve_check")
    assert model["stages"]["deep_gemm"]["action"] == "none"
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import plan
    after = plan.plan(ALL, run.model, {"pointer": run.pointer, "port": run.port, "moe_batch_sizes": [4]},
                      stream=open(os.devnull, "w"), env=run.env)
    assert after["to_run"] == []  # nothing left stale
    # a rebuild of moe_tune with the same inputs records the same fields: the warm-ups stay primed
    same = do_prime(run, moe_batch_sizes=[4], rebuild=["moe_tune"])
    assert same["to_run"] == ["moe_tune"]


def test_eta_comes_from_the_recorded_signature_in_a_new_run(run, writes):
    do_prime(run, stages=["deep_gemm"])
    recorded = json.load(open(run.p(contract.signature_path("deep_gemm", run.model))))
    assert recorded["duration_s"] > 0
    os.remove(os.path.join(run.model_dir(), "stages", "deep_gemm.json"))
    del writes[:]
    do_prime(run, stages=["deep_gemm"], env={"SGLANG_STANDIN_DRIVER": "575.51.03"})
    assert writes[0]["stage"] == "deep_gemm" and writes[0]["eta_s"] == pytest.approx(recorded["duration_s"], abs=0.1)


def test_a_progress_write_failure_never_fails_a_stage(run):
    os.makedirs(os.path.join(run.run_dir, "progress.json"))  # the file cannot be replaced
    model = do_prime(run, stages=["moe_tune"])
    assert model["status"] == "changed" and model["stages"]["moe_tune"]["status"] == "ok"
    assert any("progress file" in w and "could not be written" in w for w in model["warnings"])
    assert len([w for w in model["warnings"] if "progress file" in w]) == 1
    assert "warning: the progress file" in open(run.stderr_path).read()


def test_a_failing_progress_callback_is_a_stage_warning(run, monkeypatch):
    def broken(self, stage, index, count, label):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(progress.ProgressWriter, "step", broken)
    model = do_prime(run, stages=["moe_tune"])
    row = model["stages"]["moe_tune"]
    assert row["status"] == "ok"
    assert any("progress could not be reported: disk on fire" in w for w in row["warnings"])


def test_report_returns_the_same_model_from_what_is_recorded(run):
    primed = do_prime(run, env={"SGLANG_STANDIN_FAULT": "oom"}, stages=["moe_tune", "flashinfer", "inductor"])
    before = run.tree()
    model = state.report(ALL, run.model, run.pointer)
    assert run.tree() == before  # no checks, no probes, no writes
    assert_state_shape(model)
    assert model["command"] == "report"
    assert model["status"] == "error" and model["failed_stage"] == "flashinfer"
    assert model["error_type"] == primed["error_type"] and model["message"] == primed["message"]
    assert model["stages"]["deep_gemm"]["status"] == "not_run"
    assert model["stages"]["deep_gemm"]["reason"] == "deep_gemm did not run: no record of it in this run"
    assert model["stages"]["inductor"]["status"] == "not_run"
    for stage in ("moe_tune", "flashinfer"):
        for key in ("status", "ran", "duration_s", "error_type", "message", "reprime_reasons", "signature", "reason"):
            assert model["stages"][stage][key] == primed["stages"][stage][key], (stage, key)
    assert model["aggregate"] == primed["aggregate"] == "partial"
    assert model["progress"] == primed["progress"] and model["to_run"] == primed["to_run"]
    assert model["gpu"] == primed["gpu"] and model["signature_group"] == primed["signature_group"]
    other = state.report(["moe_tune"], os.path.join(run.base, "models", "other"), run.pointer)
    assert other["stages"]["moe_tune"]["status"] == "not_run"
    # records are kept per model: another model has none of its own, and the first model's are untouched
    assert other["stages"]["moe_tune"]["reason"] == "moe_tune did not run: no record of it in this run"
    assert run.stage_json("moe_tune")["status"] == "ok"


# ---------------------------------------------------------------- the CLI as the host module calls it

def cli_env(run, **extra):
    env = dict(run.env, PYTHONPATH=RUNTIME + os.pathsep + run.env["PYTHONPATH"])
    env.update(extra)
    return env


def base_args(run, command, *stages):
    return [sys.executable, "-m", "sglang_prep", command, "--model", run.model, "--pointer", run.pointer,
            "--port", str(run.port), "--disk-headroom-mb", "1", "--moe-batch-sizes", "1", "2",
            "--telemetry-timeout", "0.5", "--stages"] + list(stages)


def result_of(stdout):
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(contract.RESULT_PREFIX)
    return json.loads(last[len(contract.RESULT_PREFIX):])


def test_cli_prime_and_report(run):
    out = subprocess.run(base_args(run, "prime", "deep_gemm", "moe_tune") + ["--rebuild", "moe_tune"], env=cli_env(run),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    model = result_of(out.stdout)
    assert model["status"] == "changed" and model["to_run"] == ["deep_gemm", "moe_tune"]
    assert model["stages"]["moe_tune"]["mode"] == "rebuild"
    assert out.stderr.index("sglang_prep prime: run ") < out.stderr.index("sglang_prep deep_gemm: ensure deep_gemm for")
    assert model["progress"]["state"] == "done" and model["progress"]["pid"] != os.getpid()
    report = subprocess.run([sys.executable, "-m", "sglang_prep", "report", "--pointer", run.pointer, "--stages",
                             "deep_gemm", "moe_tune", "--model", run.model], env=cli_env(run),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    recorded = result_of(report.stdout)
    assert recorded["command"] == "report" and recorded["order"] == ["deep_gemm", "moe_tune"]
    assert recorded["status"] == "changed" and recorded["stages"]["moe_tune"]["mode"] == "rebuild"
    failing = subprocess.run(base_args(run, "prime", "flashinfer"), env=cli_env(run, SGLANG_STANDIN_FAULT="generate_500"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert failing.returncode == 1
    failed = result_of(failing.stdout)
    assert failed["status"] == "error" and failed["error_type"] == "generate_failed" and failed["failed_stage"] == "flashinfer"
    missing = subprocess.run([sys.executable, "-m", "sglang_prep", "report", "--pointer", run.pointer + ".missing"],
                             env=cli_env(run), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert missing.returncode == 1 and result_of(missing.stdout)["error_type"] == "bad_pointer"
    for command in ("prime", "report"):
        assert subprocess.run([sys.executable, "-m", "sglang_prep", command, "--stages", "nope"], env=cli_env(run),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE).returncode == 2


def test_sigterm_to_prime_records_interrupted_and_the_progress_file_says_failed(run):
    env = cli_env(run, SGLANG_STANDIN_START_DELAY_S="60")
    proc = subprocess.Popen(base_args(run, "prime", "flashinfer", "inductor"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    marker = run.p(contract.marker_path("flashinfer"))
    deadline = time.monotonic() + 20
    while not (os.path.exists(marker) and locks.read_marker(marker).get("server_pid")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    running = progress_file(run)
    assert running["state"] == "running" and running["stage"] == "flashinfer" and running["pid"] == proc.pid
    proc.send_signal(signal.SIGTERM)
    out, _err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    model = result_of(out)
    assert model["status"] == "error" and model["error_type"] == "interrupted" and model["failed_stage"] == "flashinfer"
    assert "signal 15" in model["message"]
    assert model["stages"]["inductor"]["status"] == "not_run"
    assert run.stage_json("flashinfer")["error_type"] == "interrupted"
    final = progress_file(run)
    assert final["state"] == "failed" and final["error_type"] == "interrupted"
    assert os.path.exists(marker)  # the next ensure re-runs the stage
    assert_clean(run, "flashinfer")


def test_a_signal_between_stages_ends_the_job_as_interrupted(run, monkeypatch):
    """The signal lands after one stage ended and before the next started: the next one is reported, not run."""
    real = engine.run_stage
    calls = []

    def then_signal(stage, model, options, **kwargs):
        if options["mode"] != "check":
            calls.append(stage)
            if len(calls) == 2:  # delivered here, to prime's own handler: the stage's handlers are not in place yet
                os.kill(os.getpid(), signal.SIGTERM)
        return real(stage, model, options, **kwargs)

    monkeypatch.setattr(engine, "run_stage", then_signal)
    model = do_prime(run, stages=["deep_gemm", "moe_tune", "inductor"])
    assert calls == ["deep_gemm", "moe_tune"]
    assert model["stages"]["deep_gemm"]["status"] == "ok"
    assert model["status"] == "error" and model["failed_stage"] == "moe_tune" and model["error_type"] == "interrupted"
    assert model["stages"]["inductor"]["status"] == "not_run"
    assert model["stages"]["moe_tune"]["reason"] == (
        "moe_tune failed (interrupted): the prime job got signal 15 before moe_tune started, so it did not run; "
        "run prime again")
    assert not os.path.exists(os.path.join(run.model_dir(), "stages", "moe_tune.json"))
    final = progress_file(run)
    assert final["state"] == "failed" and final["error_type"] == "interrupted"
    assert [(f["stage"], f["status"]) for f in final["finished"]] == [("deep_gemm", "ok"), ("moe_tune", "error")]


def test_a_defect_in_the_job_is_recorded_as_internal_error_not_lost(run, monkeypatch):
    real = engine.run_stage

    def broken_second(stage, model, options, **kwargs):
        if options["mode"] != "check" and stage == "moe_tune":
            raise RuntimeError("boom")
        return real(stage, model, options, **kwargs)

    monkeypatch.setattr(engine, "run_stage", broken_second)
    model = do_prime(run, stages=["deep_gemm", "moe_tune", "inductor"])
    assert model["status"] == "error" and model["failed_stage"] == "moe_tune" and model["error_type"] == "internal_error"
    assert "unexpected RuntimeError in the prime job: boom" in model["message"] and model["stages"]["inductor"]["status"] == "not_run"
    assert progress_file(run)["state"] == "failed"
    assert "Traceback" in open(run.log).read()


def test_a_port_out_of_range_is_a_usage_error_not_a_crash(run):
    for command in ("prime", "plan"):
        proc = subprocess.run([sys.executable, "-m", "sglang_prep", command, "--model", run.model, "--port", "70000"],
                              env=cli_env(run), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        assert proc.returncode == 2 and "1 to 65535" in proc.stderr and "Traceback" not in proc.stderr


def test_a_trailing_slash_names_the_same_model(run):
    primed = subprocess.run(base_args(run, "prime", "moe_tune"), env=cli_env(run), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, timeout=120)
    assert primed.returncode == 0, primed.stderr
    args = base_args(run, "plan", "moe_tune")
    args[args.index("--model") + 1] += "/"
    plan = result_of(subprocess.run(args, env=cli_env(run), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    timeout=120).stdout)
    assert plan["to_run"] == [] and plan["stages"]["moe_tune"]["status"] == "noop"

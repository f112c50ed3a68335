"""The stage engine end to end on a temporary /telemetry and /profiles, with the repo's GPU stand-ins.

The roots come from the run manifest (paths.container), exactly as in the container; the
stand-in server, nvidia-smi, triton and MoE tuner from tests/standins run as real subprocesses.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import argv, engine, locks, procs, state
from unit_support.runtime import FP8_BLOCK, INT8, RUN_ID, RUNTIME, STANDINS, TUNED, TUNED_DOWN, assert_clean, cli
from harness import free_port


def test_first_ensure_runs_then_a_second_is_a_noop_without_a_server(run):
    first = run.stage("deep_gemm")
    assert first["status"] == "ok" and first["ran"] is True, first["message"]
    assert first["server"]["argv"] == argv.server_argv("deep_gemm", run.model, port=run.port)
    assert "--enable-metrics" not in first["server"]["argv"] and "--enable-trace" not in first["server"]["argv"]
    assert first["validation"]["kv_cache_dtypes"] == ["torch.float8_e4m3fn"]
    assert first["reprime_reasons"][0]["field"] == "signature"
    stored = run.stage_json("deep_gemm")
    assert stored["status"] == "ok" and stored["signature"] == first["signature"]
    assert first["stage_json"] == contract.stage_json_path(RUN_ID, "deep_gemm", run.model)
    assert first["artifacts"]["compile_log"]["host_path"] == "/home/u/obs/profiles/deep_gemm/%s/compile.log" % contract.model_key(run.model)
    compile_log = open(run.p(contract.stage_model_dir("deep_gemm", run.model)) + "/compile.log").read()
    assert "KV Cache is allocated. dtype: torch.float8_e4m3fn" in compile_log
    assert os.path.exists(run.p(contract.signature_path("deep_gemm", run.model)))
    assert not os.path.exists(run.p(contract.marker_path("deep_gemm")))
    assert run.prep_result()["status"] == "ok"
    assert_clean(run, "deep_gemm")
    lines_before = len(run.server_lines("deep_gemm"))

    second = run.stage("deep_gemm")
    assert second["status"] == "noop" and second["ran"] is False
    assert second["server"] is None and second["reprime_reasons"] == []
    assert len(run.server_lines("deep_gemm")) == lines_before  # no server started
    assert run.stage_json("deep_gemm")["status"] == "noop"
    # compile.log is append-only: a noop adds nothing and the first run's text is still there
    assert open(run.p(contract.stage_model_dir("deep_gemm", run.model)) + "/compile.log").read() == compile_log


def test_check_mode_reports_why_and_writes_nothing(run):
    before = run.tree()
    result = run.stage("flashinfer", mode="check")
    assert result["status"] == "would_run" and result["would_run"] is True
    assert result["reprime_reasons"][0]["field"] == "signature"
    assert result["server"] is None
    assert run.tree() == before  # no stage JSON, no directories, no lock files, no log lines
    assert run.stage("flashinfer")["status"] == "ok"
    before = run.tree()
    again = run.stage("flashinfer", mode="check")
    assert again["status"] == "noop" and again["would_run"] is False
    assert run.tree() == before


def test_a_changed_input_reruns_exactly_that_stage_and_names_the_field(run):
    for stage in ("deep_gemm", "flashinfer"):
        assert run.stage(stage)["status"] == "ok"
    newer = {"SGLANG_STANDIN_DRIVER": "575.51.03"}
    for stage in ("deep_gemm", "flashinfer"):
        result = run.stage(stage, env=newer)
        assert result["status"] == "ok" and result["ran"]
        assert result["reprime_reasons"] == [{"field": "driver_version", "old": "570.148.08", "new": "575.51.03"}]
    extra = run.stage("flashinfer", env=newer, extra_server_args=["--log-level=info"])
    assert [r["field"] for r in extra["reprime_reasons"]] == ["extra_server_args"]
    assert run.stage("deep_gemm", env=newer)["status"] == "noop"



def files_holding(root, needle):
    """Every regular file under ``root`` whose bytes contain ``needle``."""
    found = []
    for where, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(where, name)
            if not os.path.islink(path):
                with open(path, "rb") as handle:
                    if needle.encode("utf-8") in handle.read():
                        found.append(path)
    return found


def test_a_secret_server_option_reaches_the_server_but_no_record_and_still_reprimes(run):
    key, admin = "sk-planted-4f1c", "adm-planted-9e2b"
    first = run.stage("flashinfer", extra_server_args=["--api-key", key, "--admin-api-key=" + admin])
    assert first["status"] == "ok", first["message"]
    assert first["server"]["argv"][-3:] == ["--api-key", "<redacted>", "--admin-api-key=<redacted>"]
    for secret in (key, admin):
        assert not files_holding(run.base, secret)  # session log, stage JSON, signature.json, prep_result.json
        assert secret not in json.dumps(first) and secret not in run.stderr.getvalue()
    assert "--api-key <redacted> --admin-api-key=<redacted>" in open(run.log).read()
    assert run.stage("flashinfer", extra_server_args=["--api-key", key, "--admin-api-key=" + admin])["status"] == "noop"
    rotated = run.stage("flashinfer", extra_server_args=["--api-key", "sk-rotated-77aa", "--admin-api-key=" + admin])
    assert rotated["status"] == "ok" and [r["field"] for r in rotated["reprime_reasons"]] == ["extra_server_args"]
    assert "sk-rotated-77aa" not in json.dumps(rotated) and not files_holding(run.base, "sk-rotated-77aa")

def test_a_failure_keeps_earlier_results_and_leaves_the_marker(run):
    assert run.stage("deep_gemm")["status"] == "ok"
    earlier = run.stage_json("deep_gemm")
    failed = run.stage("flashinfer", env={"SGLANG_STANDIN_FAULT": "oom"})
    assert failed["status"] == "error" and failed["status_code"] == 1
    assert failed["error_type"] == "not_enough_memory"
    assert "Not enough memory" in failed["message"]
    assert any("Not enough memory" in line for line in failed["log_tail"]) and len(failed["log_tail"]) <= 20
    assert run.stage_json("deep_gemm") == earlier
    agg = run.prep_result()
    assert agg["status"] == "partial"
    assert agg["stages"]["deep_gemm"]["status"] == "ok"
    assert agg["errors"] == [{"stage": "flashinfer", "error_type": "not_enough_memory", "message": failed["message"]}]
    assert os.path.exists(run.p(contract.marker_path("flashinfer")))
    assert_clean(run, "flashinfer")

    retry = run.stage("flashinfer")
    assert retry["status"] == "ok"
    assert "in_progress_marker" in [r["field"] for r in retry["reprime_reasons"]]
    assert not os.path.exists(run.p(contract.marker_path("flashinfer")))
    assert run.prep_result()["status"] == "ok"


@pytest.mark.parametrize("fault,error_type", [
    ("exit_at_start", "server_exited_early"),
    ("kv_dtype_drift", "config_drift"),
    ("generate_500", "generate_failed"),
    ("nvrtc_missing", "deepgemm_inactive"),  # import deep_gemm fails: SGLang runs without DeepGEMM, no log line
    ("libcuda_missing", "libcuda_missing"),
])
def test_server_faults_are_classified(run, fault, error_type):
    result = run.stage("deep_gemm", env={"SGLANG_STANDIN_FAULT": fault})
    assert result["status"] == "error" and result["error_type"] == error_type, result["message"]
    assert result["log_tail"] and result["message"]
    assert_clean(run, "deep_gemm")


def test_hang_is_a_readiness_timeout_and_the_server_is_stopped(run):
    result = run.stage("inductor", env={"SGLANG_STANDIN_FAULT": "hang"}, ready_timeout=1.0)
    assert result["error_type"] == "readiness_timeout"
    assert result["server"]["teardown"]["signal"] == "SIGTERM"
    assert result["duration_s"] < 5
    assert_clean(run, "inductor")


def test_missing_pointer_is_bad_pointer_and_writes_nothing(run):
    os.unlink(run.pointer)
    before = run.tree()
    result = run.stage("deep_gemm")
    assert result["error_type"] == "bad_pointer" and "does not exist" in result["message"]
    assert run.tree() == before


def test_incomplete_manifest_is_bad_manifest(run):
    path = os.path.join(run.tel, "container_runs", RUN_ID + ".json")
    data = json.load(open(path))
    del data["paths"]["container"]["log_file"]
    json.dump(data, open(path, "w"))
    result = run.stage("deep_gemm")
    assert result["error_type"] == "bad_manifest" and "log_file" in result["message"]


def test_missing_model_is_reported_before_anything_starts(run):
    result = run.stage("deep_gemm", model=os.path.join(run.base, "models", "nope"))
    assert result["error_type"] == "model_not_found" and "nope" in result["message"]
    assert result["server"] is None


def test_disk_headroom_is_checked_before_the_server(run):
    result = run.stage("deep_gemm", disk_headroom_mb=10 ** 9)
    assert result["error_type"] == "insufficient_disk"
    assert result["errors"][0]["required_bytes"] == 10 ** 9 * 1024 * 1024
    assert result["errors"][0]["free_bytes"] > 0
    assert "free" in result["message"] and result["server"] is None
    assert run.stage_json("deep_gemm")["error_type"] == "insufficient_disk"


def test_unwritable_directory_is_permissions_unexpected(run, monkeypatch):
    """EACCES on the test file (simulated: these tests may run as root) names path and owners."""
    blocked = run.p(contract.stage_cache_dir("deep_gemm"))
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if str(path).startswith(blocked + "/.sglang-prep-write-test"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    result = run.stage("deep_gemm")
    assert result["error_type"] == "permissions_unexpected"
    error = result["errors"][0]
    assert error["path"] == blocked and error["host_path"] == "/home/u/obs/profiles/deep_gemm"
    assert error["owner_expected"] == "%d:%d" % (os.getuid(), os.getgid())
    assert "Owner seen" in result["message"] and result["server"] is None


def test_moe_tune_writes_the_real_file_name_merged_and_seeded(run):
    result = run.stage("moe_tune", moe_batch_sizes=[1, 2])
    assert result["status"] == "ok", result["message"]
    assert [r["batch_size"] for r in result["tuner"]["runs"]] == [1, 2]
    assert all(r["argv"][r["argv"].index("--batch-size") + 1] == str(r["batch_size"]) for r in result["tuner"]["runs"])
    tree = run.p("/profiles/moe_configs/configs")
    tuned = os.path.join(tree, "triton_3_4_0", TUNED)
    assert sorted(json.load(open(tuned)), key=int) == ["1", "2"]
    shipped = os.path.join(STANDINS, "python", "sglang", "srt", "layers", "moe", "moe_runner", "triton_utils", "configs")
    for root, _dirs, files in os.walk(shipped):
        for name in files:
            assert os.path.exists(os.path.join(tree, os.path.relpath(root, shipped), name))  # nothing lost
    assert not os.listdir(run.p("/profiles/moe_configs/.work"))  # scratch removed
    again = run.stage("moe_tune", moe_batch_sizes=[4])
    assert [r["field"] for r in again["reprime_reasons"]] == ["moe_batch_sizes"]
    assert sorted(json.load(open(tuned)), key=int) == ["1", "2", "4"]  # merged, not replaced

    # the down projection is tuned too (tune_down_moe.py), installed beside the up config, and recorded
    down = os.path.join(tree, "triton_3_4_0", TUNED_DOWN)
    assert sorted(json.load(open(down)), key=int) == ["1", "2", "4"]
    assert [r["down"]["file"] for r in again["tuner"]["runs"]] == [TUNED_DOWN]
    assert "--gate-up-config" in again["tuner"]["runs"][0]["down"]["argv"]
    assert sorted((f["file"], f["projection"]) for f in again["validation"]["tuned_files"]) == [
        (TUNED, "up"), (TUNED_DOWN, "down")]
    assert again["artifacts"]["config:" + TUNED_DOWN]["exists"] is True

    warm = run.stage("flashinfer")
    assert warm["validation"]["moe_config_used"] == "/profiles/moe_configs/configs/triton_3_4_0/" + TUNED
    assert warm["validation"]["verified_in_log"] is True
    lookups = warm["validation"]["moe_lookups"]
    assert lookups["up"]["source"] == "tuned" and lookups["down"]["source"] == "tuned"
    assert lookups["down"]["config_used"] == "/profiles/moe_configs/configs/triton_3_4_0/" + TUNED_DOWN
    # a new tuning re-warms the warm-ups, and says why
    run.stage("moe_tune", moe_batch_sizes=[8])
    rewarm = run.stage("flashinfer")
    assert rewarm["ran"] and [r["field"] for r in rewarm["reprime_reasons"]] == ["moe_tune_signature"]
    # a rebuild of moe_tune with the same inputs leaves the warm-ups primed
    assert run.stage("moe_tune", mode="rebuild", moe_batch_sizes=[8])["status"] == "ok"
    assert run.stage("flashinfer")["status"] == "noop"


def test_moe_tune_failures(run, tmp_path):
    failed = run.stage("moe_tune", env={"SGLANG_STANDIN_TUNER_FAULT": "fail"})
    assert failed["error_type"] == "tuner_failed"
    assert any("illegal memory access" in line for line in failed["log_tail"])
    failed_down = run.stage("moe_tune", env={"SGLANG_STANDIN_TUNER_FAULT": "fail_down"})
    assert failed_down["error_type"] == "tuner_failed" and "tune_down_moe.py exited with code 1" in failed_down["message"]
    missing = run.stage("moe_tune", env={"SGLANG_PREP_MOE_TUNER": str(tmp_path / "nope.py")})
    assert missing["error_type"] == "tuner_unavailable" and "SGLANG_PREP_MOE_TUNER" in missing["message"]
    no_triton = tmp_path / "no_triton"
    no_triton.mkdir()
    for name in ("sglang", "ray"):
        os.symlink(os.path.join(STANDINS, "python", name), str(no_triton / name))
    result = run.stage("moe_tune", env={"PYTHONPATH": str(no_triton)})
    assert result["error_type"] == "tuner_failed" and "Triton version could not be probed" in result["message"]


def test_moe_tune_preflight_names_the_missing_piece(run, tmp_path):
    # the tuner without tune_down_moe.py beside it
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(run.env["SGLANG_PREP_MOE_TUNER"], str(lone / "tuning_fused_moe_triton.py"))
    result = run.stage("moe_tune", env={"SGLANG_PREP_MOE_TUNER": str(lone / "tuning_fused_moe_triton.py")})
    assert result["error_type"] == "tuner_unavailable" and "tune_down_moe.py is missing" in result["message"]
    assert not result.get("tuner")  # refused before any tuner ran
    # a python that cannot import ray (the tuner imports it at top level)
    no_ray = tmp_path / "no_ray"
    no_ray.mkdir()
    for name in ("sglang", "triton"):
        os.symlink(os.path.join(STANDINS, "python", name), str(no_ray / name))
    result = run.stage("moe_tune", env={"PYTHONPATH": str(no_ray)})
    assert result["error_type"] == "tuner_unavailable"
    assert "cannot import ray" in result["message"] and "ray[default]" in result["message"]
    assert not run.server_lines("moe_tune")


def test_moe_tune_fp8_block_checkpoint_writes_the_names_the_server_looks_up(run):
    model = run.model  # the default test model: FP8-block weights
    result = run.stage("moe_tune", model=model, moe_batch_sizes=[1, 2])
    assert result["status"] == "ok", result["message"]
    first = result["tuner"]["runs"][0]["argv"]
    assert first[first.index("--dtype") + 1] == "fp8_w8a8" and "--per-channel-quant" not in first
    down_argv = result["tuner"]["runs"][0]["down"]["argv"]
    assert down_argv[down_argv.index("--dtype") + 1] == "fp8_w8a8"
    tree = run.p("/profiles/moe_configs/configs/triton_3_4_0")
    assert os.path.isfile(os.path.join(tree, FP8_BLOCK + ".json"))
    assert os.path.isfile(os.path.join(tree, FP8_BLOCK + "_down.json"))
    assert result["signature"]["moe_tuner"]["dtype"] == "fp8_w8a8"
    assert result["signature"]["moe_tuner"]["block_shape"] == [128, 128]
    warm = run.stage("flashinfer", model=model)
    lookups = warm["validation"]["moe_lookups"]
    assert warm["validation"]["verified_in_log"] is True
    assert lookups["up"]["config_used"].endswith(FP8_BLOCK + ".json") and lookups["up"]["source"] == "tuned"
    assert lookups["down"]["config_used"].endswith(FP8_BLOCK + "_down.json") and lookups["down"]["source"] == "tuned"


def test_moe_tune_int8_checkpoint_tunes_the_up_file_and_says_why_not_the_down_one(run):
    model = run.add_model("tiny-moe-int8")
    result = run.stage("moe_tune", model=model, moe_batch_sizes=[1])
    assert result["status"] == "ok", result["message"]
    argv = result["tuner"]["runs"][0]["argv"]
    assert argv[argv.index("--dtype") + 1] == "int8_w8a8" and "--per-channel-quant" in argv
    assert result["tuner"]["runs"][0]["down"] is None
    assert [f["file"] for f in result["validation"]["tuned_files"]] == [INT8 + ".json"]
    down = result["validation"]["down_projection"]
    assert down["tuned"] is False and "reuses the tuned up-projection config" in down["reason"]
    warm = run.stage("flashinfer", model=model)
    lookups = warm["validation"]["moe_lookups"]
    assert lookups["up"]["config_used"].endswith(INT8 + ".json") and warm["validation"]["verified_in_log"] is True
    assert lookups["down"] == {"config_used": None, "source": "up_config_reused", "fallback": None,
                               "looked_up": lookups["up"]["config_used"][:-len(".json")] + "_down.json"}


def test_moe_tune_follows_the_serving_args_and_refuses_a_dtype_the_server_never_reads(run):
    model = run.add_model("tiny-moe")  # bf16 weights: the server looks up no dtype= file
    result = run.stage("moe_tune", model=model, moe_batch_sizes=[1],
                       extra_server_args=["--ep-size", "1", "--disable-shared-experts-fusion"])
    assert result["status"] == "ok", result["message"]
    assert "--disable-shared-experts-fusion" in result["tuner"]["runs"][0]["argv"]
    again = run.stage("moe_tune", model=model, moe_batch_sizes=[1])
    reasons = dict((r["field"], (r["old"], r["new"])) for r in again["reprime_reasons"])
    # the serving arg is recorded and re-tunes; the tuner is told not to fuse either way: SGLang fuses no shared
    # expert for this model, and the tuner would otherwise count one it never reads
    assert reasons["disable_shared_experts_fusion"] == (True, False)
    assert "--disable-shared-experts-fusion" in again["tuner"]["runs"][0]["argv"]
    bad = run.stage("moe_tune", model=model, moe_batch_sizes=[1], moe_dtype="fp8_w8a8")
    assert bad["error_type"] == "bad_input" and "never reads" in bad["message"]
    assert not bad.get("tuner")  # refused before any tuner ran
    checked = run.stage("moe_tune", model=model, mode="check", moe_batch_sizes=[1], moe_dtype="fp8_w8a8")
    assert checked["status"] == "would_run" and "the run would fail: moe_tune: --moe-dtype fp8_w8a8" in run.stderr.getvalue()


def test_moe_tune_with_a_local_triton_version_avoids_a_directory_sglang_cannot_sort(run, tmp_path):
    local = tmp_path / "local_triton"
    (local / "triton").mkdir(parents=True)
    (local / "triton" / "__init__.py").write_text('__version__ = "3.4.0+git0123abcd"\n')
    for name in ("sglang", "ray"):
        os.symlink(os.path.join(STANDINS, "python", name), str(local / name))
    env = {"PYTHONPATH": str(local)}
    result = run.stage("moe_tune", moe_batch_sizes=[1], env=env)
    assert result["status"] == "ok", result["message"]
    configs = os.listdir(run.p("/profiles/moe_configs/configs"))
    assert "triton_3_4_0" in configs and not [d for d in configs if "+" in d]
    assert "local version suffix" in result["tuner"]["config_dir_note"]
    assert result["tuner"]["shadowed_by"] == {}
    warm = run.stage("flashinfer", env=env)  # the server's lookup does not crash, and falls back to our file
    assert warm["status"] == "ok", warm["message"]
    assert warm["validation"]["moe_lookups"]["up"]["fallback"]["triton_version"] == "3.4.0"
    assert warm["validation"]["moe_lookups"]["up"]["source"] == "tuned"
    # a newer directory holding the same name is what SGLang's fallback reads first: moe_tune says so
    newer = run.p("/profiles/moe_configs/configs/triton_3_8_0")
    os.makedirs(newer)
    shutil.copy(os.path.join(run.p("/profiles/moe_configs/configs/triton_3_4_0"), TUNED), newer)
    again = run.stage("moe_tune", mode="rebuild", moe_batch_sizes=[1], env=env)
    assert again["tuner"]["shadowed_by"] == {TUNED: "/profiles/moe_configs/configs/triton_3_8_0/" + TUNED}
    assert "will read /profiles/moe_configs/configs/triton_3_8_0/" + TUNED in run.stderr.getvalue()


def test_dbrx_nested_expert_count_is_a_moe_model(run):
    config = json.load(open(os.path.join(run.model, "config.json")))
    for key in ("num_local_experts", "num_experts_per_tok"):
        del config[key]
    config.update(architectures=["DbrxForCausalLM"], model_type="dbrx",
                  ffn_config={"moe_num_experts": 8, "moe_top_k": 2, "ffn_hidden_size": 256})
    json.dump(config, open(os.path.join(run.model, "config.json"), "w"))
    result = run.stage("moe_tune", moe_batch_sizes=[1])
    assert result["status"] == "ok", result["message"]
    assert [f["file"] for f in result["validation"]["tuned_files"]] == [TUNED, TUNED_DOWN]


def test_stages_that_do_not_apply_are_skipped_with_the_reason(run):
    config = json.load(open(os.path.join(run.model, "config.json")))
    del config["num_local_experts"]
    json.dump(config, open(os.path.join(run.model, "config.json"), "w"))
    moe = run.stage("moe_tune")
    assert moe["status"] == "skipped" and "not a MoE model" in moe["message"] and moe["status_code"] == 0
    dg = run.stage("deep_gemm", env={"SGLANG_STANDIN_COMPUTE_CAP": "8.0"})
    assert dg["status"] == "skipped" and "sm_80" in dg["message"] and dg["server"] is None


def test_failed_aggregation_never_touches_the_stage_file(run):
    os.makedirs(os.path.join(run.run_dir, "prep_result.json"))  # unwritable aggregate
    result = run.stage("deep_gemm")
    assert result["status"] == "ok"
    assert any("prep_result.json could not be rebuilt" in w for w in result["warnings"])
    assert run.stage_json("deep_gemm")["status"] == "ok"


def test_a_dead_runners_server_group_is_cleaned_up_before_rerun(run):
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "sglang.launch_server-orphan"],
                              start_new_session=True)
    os.makedirs(run.p(contract.IN_PROGRESS_DIR))
    locks.write_marker(run.p(contract.marker_path("inductor")), {
        "owner_pid": 999999, "started_at": "2026-01-01T00:00:00.000Z", "run_id": RUN_ID,
        "server_pid": orphan.pid, "server_pgid": orphan.pid, "process_hint": "sglang"})
    try:
        result = run.stage("inductor")
        assert result["status"] == "ok"
        assert orphan.wait(5) != 0
        assert any("killed process group %d" % orphan.pid in w for w in result["warnings"])
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_without_a_port_a_stage_uses_the_runs_server_port(run):
    """The manifest's server_port (SGLANG_PREP_SERVER_PORT at init) is where Prometheus scrapes: the default."""
    path = os.path.join(run.tel, "container_runs", RUN_ID + ".json")
    data = json.load(open(path))
    data["server_port"] = run.port
    json.dump(data, open(path, "w"))
    result = run.stage("flashinfer", port=None)
    assert result["status"] == "ok", result["message"]
    assert result["server"]["port"] == run.port
    assert result["server"]["argv"][result["server"]["argv"].index("--port") + 1] == str(run.port)
    assert not [w for w in result["warnings"] if "server port" in w]
    other = free_port()
    elsewhere = run.stage("inductor", port=other, mode="check")
    assert any("port %d is not the run's server port %d" % (other, run.port) in w and contract.ENV_SERVER_PORT in w
               for w in elsewhere["warnings"])
    assert not [w for w in run.stage("deep_gemm", port=other, mode="check")["warnings"] if "server port" in w]


def test_report_and_aggregate(run):
    run.stage("deep_gemm", env={"SGLANG_STANDIN_FAULT": "oom"})
    out = state.report(pointer=run.pointer)
    assert out["run"]["run_id"] == RUN_ID and out["stages"]["deep_gemm"]["error_type"] == "not_enough_memory"
    assert out["stages"]["deep_gemm"]["cache"]["partial"] is True
    agg = engine.aggregate(run.pointer)
    assert agg["status"] == "error" and agg["stages_missing"] == list(contract.STAGE_ORDER[1:])
    assert agg["run"]["device_name"] == "NVIDIA H100 80GB HBM3" and agg["run"]["settings"]["source"] == "flags"


# ---------------------------------------------------------------- the CLI as the host module calls it

def test_cli_help_explains_itself():
    top = cli("--help")
    assert top.returncode == 0
    for word in ("stage", "report", "aggregate", "argv", "exit codes", "docker exec -u devuser"):
        assert word in top.stdout
    stage = cli("stage", "--help")
    for word in ("ensure", "rebuild", "check", "prep_result.json", "RESULT", "port_busy", "compile.log"):
        assert word in stage.stdout


def test_cli_argv_prints_the_server_argv():
    out = cli("argv", "inductor", "--model", "/models/M", "--tp", "2")
    assert out.returncode == 0
    assert json.loads(out.stdout) == argv.server_argv("inductor", "/models/M", tp=2)
    assert "--enable-torch-compile" in json.loads(out.stdout)


def test_cli_argv_prints_the_tuner_argv_the_checkpoint_needs():
    models = os.path.join(STANDINS, "models")
    for name, dtype, per_channel in (("tiny-moe", "auto", False), ("tiny-moe-fp8-block", "fp8_w8a8", False),
                                     ("tiny-moe-int8", "int8_w8a8", True)):
        out = cli("argv", "moe_tune", "--model", os.path.join(models, name), "--tp", "2")
        assert out.returncode == 0, out.stderr
        tuner = json.loads(out.stdout)
        assert tuner[1].endswith("tuning_fused_moe_triton.py") and tuner[tuner.index("--tp-size") + 1] == "2"
        assert tuner[tuner.index("--dtype") + 1] == dtype and ("--per-channel-quant" in tuner) is per_channel
        assert tuner[-3:] == ["--batch-size", "B", "--tune"]
    ep = json.loads(cli("argv", "moe_tune", "--model", os.path.join(models, "tiny-moe"), "--tp", "4",
                        "--extra-server-arg=--ep=2").stdout)
    assert ep[ep.index("--ep-size") + 1] == "2"
    bad = cli("argv", "moe_tune", "--model", os.path.join(models, "tiny-moe-int8"), "--moe-dtype", "fp8_w8a8")
    assert bad.returncode == 2 and "dtype=int8_w8a8" in bad.stderr


def test_cli_usage_errors_exit_2():
    assert cli("stage", "deep_gemm").returncode == 2  # --model missing
    bad = cli("stage", "deep_gemm", "--model", "/m", "--extra-server-arg=--kv-cache-dtype=auto")
    assert bad.returncode == 2 and "kv-cache-dtype" in bad.stderr


def test_cli_stage_prints_one_result_line_last(run):
    ok = cli("stage", "deep_gemm", "--model", run.model, "--pointer", run.pointer, "--port", str(run.port),
             "--disk-headroom-mb", "1", env={"SGLANG_STANDIN_START_DELAY_S": "0.05", "SGLANG_STANDIN_WARMUP_S": "0.05"})
    assert ok.returncode == 0, ok.stderr
    last = ok.stdout.strip().splitlines()[-1]
    assert last.startswith(contract.RESULT_PREFIX)
    assert json.loads(last[len(contract.RESULT_PREFIX):])["status"] == "ok"
    assert "sglang_prep deep_gemm:" in ok.stderr
    bad = cli("stage", "deep_gemm", "--model", run.model, "--pointer", run.pointer + ".missing")
    assert bad.returncode == 1
    payload = json.loads(bad.stdout.strip().splitlines()[-1][len(contract.RESULT_PREFIX):])
    assert payload["error_type"] == "bad_pointer"
    report = cli("report", "--pointer", run.pointer)
    assert report.returncode == 0
    assert json.loads(report.stdout.strip().splitlines()[-1][len(contract.RESULT_PREFIX):])["run"]["run_id"] == RUN_ID


def test_noop_is_fast(run):
    assert run.stage("deep_gemm")["status"] == "ok"
    start = time.monotonic()
    assert run.stage("deep_gemm")["status"] == "noop"
    assert time.monotonic() - start < 3.0


def test_sigterm_to_the_runner_tears_the_server_down_and_records_interrupted(run):
    env = dict(run.env)
    env["PYTHONPATH"] = RUNTIME + ":" + env["PYTHONPATH"]
    env["SGLANG_STANDIN_START_DELAY_S"] = "60"
    proc = subprocess.Popen([sys.executable, "-m", "sglang_prep", "stage", "flashinfer", "--model", run.model,
                             "--pointer", run.pointer, "--port", str(run.port), "--disk-headroom-mb", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    marker = run.p(contract.marker_path("flashinfer"))
    deadline = time.monotonic() + 20
    while not (os.path.exists(marker) and locks.read_marker(marker).get("server_pid")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    server_pid = locks.read_marker(marker)["server_pid"]
    start = time.monotonic()
    proc.send_signal(15)
    out, _err = proc.communicate(timeout=30)
    assert time.monotonic() - start < 3.0
    assert proc.returncode == 1
    result = json.loads(out.strip().splitlines()[-1][len(contract.RESULT_PREFIX):])
    assert result["error_type"] == "interrupted" and "signal 15" in result["message"]
    assert not procs.alive(server_pid)
    assert run.stage_json("flashinfer")["error_type"] == "interrupted"
    assert os.path.exists(marker)  # the next ensure re-runs the stage
    assert_clean(run, "flashinfer")


def test_a_disk_that_fills_while_the_server_runs_is_insufficient_disk_and_keeps_the_last_success(run):
    """The server's own write fails with ENOSPC (its FlashInfer JIT log is /dev/full, which answers every write as a
    full file system does): its traceback names the errno, not the file, so the free space of the caches is given."""
    first = run.stage("flashinfer")
    assert first["status"] == "ok", first["message"]
    good = json.load(open(os.path.join(run.model_dir(), "stages", "flashinfer.last_ok.json")))
    logs = [os.path.join(top, name) for top, _d, names in os.walk(run.p(contract.stage_cache_dir("flashinfer")))
            for name in names if name == "flashinfer_jit.log"]
    assert logs
    os.unlink(logs[0])
    os.symlink("/dev/full", logs[0])
    full = run.stage("flashinfer", mode="rebuild")
    assert full["status"] == "error" and full["error_type"] == "insufficient_disk", full["message"]
    assert "No space left on device" in full["message"] and "bytes" in full["message"] and "free" in full["message"]
    assert run.stage_json("flashinfer")["error_type"] == "insufficient_disk"
    assert json.load(open(os.path.join(run.model_dir(), "stages", "flashinfer.last_ok.json"))) == good
    assert_clean(run, "flashinfer")


def test_a_session_log_the_disk_refuses_fails_the_stage_naming_the_log(run):
    first = run.stage("deep_gemm")
    assert first["status"] == "ok", first["message"]
    os.unlink(run.log)
    os.symlink("/dev/full", run.log)
    full = run.stage("deep_gemm", mode="rebuild")
    assert full["status"] == "error" and full["error_type"] == "insufficient_disk", full["message"]
    assert run.log in full["message"] or contract.session_log_path(RUN_ID) in full["message"], full["message"]
    assert "free on its file system" in full["message"]
    assert run.stage_json("deep_gemm")["status"] == "error"
    assert json.load(open(os.path.join(run.model_dir(), "stages", "deep_gemm.last_ok.json")))["status"] == "ok"


def test_a_model_symlink_the_container_cannot_follow_names_the_link(run):
    link = os.path.join(run.base, "models", "elsewhere")
    os.symlink("/nonexistent/models/m", link)
    result = run.stage("deep_gemm", model=link)
    assert result["error_type"] == "model_invalid" and "is a symlink to /nonexistent/models/m" in result["message"]
    assert result["server"] is None


def test_the_cli_takes_extra_server_args_from_the_environment_and_drops_the_variable(monkeypatch, capsys):
    """The host passes secret-bearing extra server args in contract.ENV_EXTRA_SERVER_ARGS (never on argv): the runtime
    appends them to any --extra-server-arg, in order, and no server it starts inherits the variable."""
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import cli
    monkeypatch.setenv(contract.ENV_EXTRA_SERVER_ARGS, json.dumps(["--api-key", "sk-env-5a1e", "--admin-api-key=adm"]))
    assert cli.main(["argv", "flashinfer", "--model", "/models/m", "--extra-server-arg=--log-level=info"]) == 0
    served = json.loads(capsys.readouterr().out)
    assert served[-4:] == ["--log-level=info", "--api-key", "sk-env-5a1e", "--admin-api-key=adm"]
    assert contract.ENV_EXTRA_SERVER_ARGS not in os.environ
    monkeypatch.setenv(contract.ENV_EXTRA_SERVER_ARGS, '{"--api-key": "x"}')
    with pytest.raises(SystemExit) as exited:
        cli.main(["argv", "flashinfer", "--model", "/models/m"])
    assert exited.value.code == 2
    assert "%s must hold a JSON list of strings" % contract.ENV_EXTRA_SERVER_ARGS in capsys.readouterr().err

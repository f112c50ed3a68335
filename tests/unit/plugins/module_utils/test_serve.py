"""The serving server's pure parts (container/serve.py): the not_primed refusal names stage and field, the settings
digest and why a running server restarts, the serve log read into the JIT scan, and the request driver the serve
check and the live server share (servecheck.drive)."""

import json

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, registry
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import ledger, metrics, serve, servecheck


class Checked(object):
    def __init__(self, rows):
        self.rows = rows


def test_a_stage_primed_with_another_tp_is_refused_naming_the_stage_and_the_field():
    rows = {
        "deep_gemm": {"action": "run", "status": "would_run",
                      "reprime_reasons": [{"field": "tp", "old": 1, "new": 2}]},
        "moe_tune": {"action": "none", "status": "noop", "reprime_reasons": []},
        "serve_check": {"action": "run", "status": "would_run", "reprime_reasons": [
            {"field": "extra_server_args", "old": [], "new": ["--enable-mixed-chunk"]}]},
    }
    missing = serve.unprimed(Checked(rows))
    assert [stage for stage, _row in missing] == ["deep_gemm", "serve_check"]
    error = serve.refusal(missing)
    assert error.error_type == "not_primed"
    assert "deep_gemm: tp: 1 -> 2" in error.message
    assert 'serve_check: extra_server_args: [] -> ["--enable-mixed-chunk"]' in error.message
    assert "serve_prime=true" in error.message
    assert error.details["reasons"][0] == {"stage": "deep_gemm", "field": "tp", "old": 1, "new": 2}


def test_a_host_never_primed_is_refused_saying_so():
    rows = {"deep_gemm": {"action": "run", "status": "would_run", "reprime_reasons": [
        {"field": "signature", "old": None, "new": "no signature at /profiles/deep_gemm/m/signature.json"}]}}
    error = serve.refusal(serve.unprimed(Checked(rows)))
    assert "deep_gemm: never primed (no signature)" in error.message


def test_a_stage_whose_check_failed_is_refused_with_the_failure():
    rows = {"moe_tune": {"action": "run", "status": "error", "error_type": "bad_input", "message": "no tuner"}}
    assert "moe_tune: the check failed (bad_input: no tuner)" in serve.refusal(serve.unprimed(Checked(rows))).message


def test_primed_and_recorded_elsewhere_is_not_a_refusal():
    # a new container run (after stop.yml) has no records yet, but the caches are primed: 'record' serves
    assert serve.unprimed(Checked({"deep_gemm": {"action": "record"}, "inductor": {"action": "none"}})) == []


def settings(argv=("python3", "-m", "sglang.launch_server", "--tp-size", "1"), **env):
    return {"argv": list(argv), "env": dict({"SGLANG_CACHE_DIR": "/profiles/sglang"}, **env), "image": "img:1"}


def test_the_settings_digest_is_stable_and_follows_every_setting():
    assert serve.settings_digest(settings()) == serve.settings_digest(json.loads(json.dumps(settings())))
    assert serve.settings_digest(settings()) != serve.settings_digest(settings(SGLANG_CRASH_ON_JIT_COMPILE="1"))
    assert serve.settings_digest(settings()) != serve.settings_digest(
        settings(argv=("python3", "-m", "sglang.launch_server", "--tp-size", "2")))


def test_a_restart_says_which_settings_changed():
    changes = serve.settings_changes(settings(), dict(settings(TRITON_CACHE_AUTOTUNING="1"), image="img:2"))
    assert {"field": "image", "old": "img:1", "new": "img:2"} in changes
    assert {"field": "env TRITON_CACHE_AUTOTUNING", "old": None, "new": "1"} in changes
    assert serve.settings_changes(settings(), settings()) == []


def test_the_settings_cover_the_cache_variables_and_the_fail_on_miss_switch():
    for name in [env for _path, env in contract.CACHES.values()] + list(contract.SERVE_CHECK_ENV):
        assert name in serve.SETTINGS_ENV


def test_the_serve_log_feeds_only_the_server_lines_to_the_jit_scan(tmp_path):
    log = tmp_path / "server.log"
    log.write_bytes(b"old line before this server\n")
    tail = serve.LogTail(str(log), log.stat().st_size)
    with open(log, "ab") as handle:
        handle.write(serve.LOG_PREFIX + b"[2026-01-01] Using default MoE kernel config. Performance might be "
                     b"sub-optimal! Config file not found at /profiles/moe_configs/configs/x.json, you can create them\n")
        handle.write(b"[serve supervisor] server pid 7 started\n")
        handle.write(serve.LOG_PREFIX + b"half a li")
    tail.read()
    assert len(tail.lines) == 1 and tail.lines[0].startswith("[2026-01-01] Using default MoE kernel config")
    assert [line["kind"] for line in tail.scan.jit_lines] == ["moe_default"]
    with open(log, "ab") as handle:
        handle.write(b"ne\n")
    tail.read()
    assert tail.lines[-1] == "half a line"


def test_the_request_driver_opens_one_window_per_request_and_reads_the_log_between_them():
    plan = servecheck.requests([1, 2], [16], 4096)
    sent, reads, windows, log = [], [], [], []
    servecheck.drive(plan, lambda body, label: sent.append(label), windows, log,
                     before_each=lambda: reads.append(len(sent)), end_label="end")
    assert sent == [r["label"] for r in plan]
    assert [label for _t, label in windows] == sent + ["end"]
    assert reads == [0, 1, 2, 3]  # before each request, and once after the last
    assert all(entry["ok"] for entry in log)


def test_a_failing_request_ends_the_drive_with_its_error_and_an_unfinished_entry():
    plan = servecheck.requests([1], [16, 32], 4096)

    def generate(body, label):
        if "32" in label:
            raise RuntimeError("boom")

    windows, log = [], []
    with pytest.raises(RuntimeError):
        servecheck.drive(plan, generate, windows, log)
    assert [entry["ok"] for entry in log] == [True, False]


def test_the_aggregate_and_the_metrics_carry_the_live_servers_verdict():
    record = {"model": "/models/tiny", "status": "ok", "zero_jit": True, "first_text": " the",
              "server": {"port": 30000, "server_pid": 42, "digest": "abc"}}
    summary = ledger.serve_summary(record)
    assert summary["zero_jit"] is True and summary["port"] == 30000 and summary["first_text"] == " the"
    assert ledger.serve_summary(None) is None
    text = metrics.render({"order": [], "stages": {}, "serve": summary})
    assert 'sglang_prep_serve_zero_jit{stage="serve",model="tiny"} 1' in text
    failed = metrics.render({"order": [], "stages": {}, "serve": dict(summary, zero_jit=False)})
    assert 'sglang_prep_serve_zero_jit{stage="serve",model="tiny"} 0' in failed
    assert "sglang_prep_serve_zero_jit" not in metrics.render({"order": [], "stages": {}, "serve": None})


def test_the_serve_record_is_not_a_stage():
    assert ledger.SERVE_RECORD == serve.RECORD and serve.RECORD not in registry.ORDER

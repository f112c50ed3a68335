"""serve_report: the serve entry point's fact and the lines the play (and make demo) prints."""

from ansible_collections.sglang.prep.plugins.filter.serve_report import serve_report

SERVED = {"status": "ok", "changed": True, "action": "start", "zero_jit": True, "first_text": " hello",
          "server": {"port": 30000, "server_pid": 12, "digest": "d1"}, "msg": "serving"}


def test_a_started_server_reports_serving_the_verdict_and_the_first_text():
    report = serve_report(SERVED, None, "c1")
    assert report["status"] == "serving" and report["serving"] and report["zero_jit"] is True
    assert report["lines"] == ["serving in c1 on port 30000 (pid 12)", "zero JIT on the live server: yes",
                               "first generated text: ' hello'"]


def test_an_unchanged_server_says_so():
    report = serve_report(dict(SERVED, status="noop", changed=False), None, "c1")
    assert report["status"] == "already_serving" and report["lines"][0].startswith("already serving (unchanged)")


def test_a_refusal_names_its_error_type_and_says_nothing_of_a_verdict():
    failure = {"error_type": "not_primed", "msg": "deep_gemm: tp: 1 -> 2", "task": "x"}
    report = serve_report({"status": "error", "zero_jit": None, "error_type": "not_primed"}, failure, "c1")
    assert report["status"] == "failed" and not report["serving"]
    assert report["lines"] == ["serve failed in c1: not_primed: deep_gemm: tp: 1 -> 2"]


def test_jit_on_the_live_server_says_no_and_that_the_server_keeps_serving():
    result = dict(SERVED, status="error", zero_jit=False, server=dict(SERVED["server"], left_running=True))
    report = serve_report(result, {"error_type": "jit_at_serve_time", "msg": "compiled"}, None)
    assert report["serving"] and "zero JIT on the live server: NO" in report["lines"]
    assert "the server is left running on port 30000 (pid 12)" in report["lines"]


def test_a_host_that_failed_before_serve_ran():
    report = serve_report({}, {"error_type": "container_not_running", "msg": "down"}, None)
    assert report["status"] == "failed" and report["lines"] == ["serve failed: container_not_running: down"]

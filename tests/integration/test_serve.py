"""serve.yml: the long-lived SGLang server of a primed container, refused where the caches were not primed for it.

One fully primed host (the prime role against this machine's Docker engine, stand-in image) serves; the tests
then change what a user changes (a kernel-relevant extra server arg, the tensor-parallel size) and stop it. A
second host that was never primed is refused, then served with serve_prime=true.
"""

import json
import os

import pytest

import role_harness as rh
from docker_util import docker

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates a host user and runs Docker as root, like molecule")

HOST_USER = "sglang-serve-it"
HOST_UID = 48361
STAGES = list(rh.contract.STAGE_ORDER)


@pytest.fixture(scope="module")
def primed():
    with rh.primed_host(HOST_USER, HOST_UID, "sglang-prep-serve-it", stages=STAGES) as host:
        yield host


def serve_record(host):
    run_id, _manifest = host.run()
    return host.stage_json(run_id, "serve")


def container_processes(host):
    """[(user, args)] of the container's processes, as the host sees them."""
    out = docker("top", host.container, "-eo", "pid,uid,args").stdout.splitlines()[1:]
    return [(int(line.split(None, 2)[1]), line.split(None, 2)[2]) for line in out if line.strip()]


def test_serve_after_prime_proves_zero_jit_on_the_live_server_and_a_second_serve_changes_nothing(primed):
    play = primed.serve()
    assert play.rc == 0 and play.recap["failed"] == 0, play
    assert "zero JIT on the live server: yes" in play.text, play
    assert "first generated text:" in play.text, play
    record = serve_record(primed)
    assert record["status"] == "ok" and record["zero_jit"] is True, record
    assert record["serve_check"]["requests"] and all(r["ok"] for r in record["serve_check"]["requests"])
    assert "--enable-metrics" in record["server"]["argv"]
    servers = [(uid, args) for uid, args in container_processes(primed) if "sglang.launch_server" in args]
    assert servers and all(uid == HOST_UID for uid, _args in servers), servers  # devuser has the host user's uid
    # the aggregate and the metrics carry the live server's verdict
    run_id, _manifest = primed.run()
    prep = json.load(open(primed.path("telemetry", "container_runs", run_id, "prep_result.json"), encoding="utf-8"))
    assert prep["serve"]["zero_jit"] is True and prep["serve"]["status"] == "ok", prep["serve"]
    metrics = open(primed.path("telemetry", "container_runs", run_id, "metrics.prom"), encoding="utf-8").read() \
        if os.path.exists(primed.path("telemetry", "container_runs", run_id, "metrics.prom")) else ""
    if metrics:
        assert 'sglang_prep_serve_zero_jit{stage="serve"' in metrics, metrics

    inspected = primed.playbook("inspect.yml")
    assert "zero JIT on the live server: yes" in inspected.text, inspected

    again = primed.serve()
    assert again.rc == 0 and again.recap["changed"] == 0, again
    assert "already serving (unchanged)" in again.text, again
    # a no-op serve is one module call: the first look asked what sglang_serve would do, so sglang_serve is skipped
    serve_task = again.output.split("Start the serving server from the primed caches", 1)[1].split("TASK [", 1)[0]
    assert "skipping: [" in serve_task, serve_task
    assert serve_record(primed)["server"]["server_pid"] == record["server"]["server_pid"]


def test_serve_with_a_changed_kernel_relevant_extra_arg_is_refused_naming_the_field(primed):
    before = serve_record(primed)
    play = primed.serve(prime_extra_server_args=["--enable-mixed-chunk"])
    assert play.rc != 0 and play.recap["failed"] == 1, play
    assert "serve failed" in play.text and "not_primed" in play.text, play
    assert "serve_check: " in play.text and "extra_server_args: [] -> [" in play.text, play
    assert "--enable-mixed-chunk" in play.text, play
    # the refusal starts nothing and stops nothing: the server with the primed settings still serves
    assert serve_record(primed)["server"]["server_pid"] == before["server"]["server_pid"]


def test_serve_with_another_tp_is_refused_naming_tp(primed):
    play = primed.serve(prime_tp=2)
    assert play.rc != 0 and "not_primed" in play.text, play
    assert "tp: 1 -> 2" in play.text, play


def test_check_diff_says_what_would_change_and_starts_nothing(primed):
    before = serve_record(primed)
    play = primed.serve("--check", "--diff", prime_serve_max_prompt_tokens=64)
    # the longest prompt of the check is a serve_check input: not primed with 64, so refused in check mode too
    assert play.rc != 0 and "serve_max_prompt_tokens" in play.text, play
    assert serve_record(primed) == before


def test_stop_stops_the_serving_server_and_proves_the_port_free(primed):
    play = primed.playbook("stop.yml")
    assert play.rc == 0, play
    assert "the serving server" in play.text and "port 30000 is free" in play.text, play
    assert not primed.container_state()[1]


@pytest.fixture(scope="module")
def unprimed():
    host = rh.RoleHost(HOST_USER + "2", HOST_UID + 1, "sglang-prep-serve-new-it", stages=STAGES)
    try:
        yield host
    finally:
        host.remove()


def test_a_host_never_primed_is_refused_then_serve_prime_primes_and_serves(unprimed):
    play = unprimed.serve()
    assert play.rc != 0 and "not_primed" in play.text, play
    assert "never primed" in play.text, play
    play = unprimed.serve(serve_prime=True)
    assert play.rc == 0, play
    assert "zero JIT on the live server: yes" in play.text, play
    record = serve_record(unprimed)
    assert record["status"] == "ok" and record["zero_jit"] is True
    run_id, _manifest = unprimed.run()
    assert unprimed.stage_json(run_id, "serve_check")["status"] == "ok"

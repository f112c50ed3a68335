"""serve-verify (container/serve.py verify): serve's live zero-JIT check against a server started by other means from
the serving settings, here the stand-in server run as a plain process with the spec's argv and cache environment."""

import io
import os
import subprocess

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import serve
from unit_support.runtime import do_prime


def own_server(run, log):
    """The stand-in server started the way a user's own server is: the serving argv and environment, its output in
    ``log`` (what `docker logs -f` gives)."""
    options, env = run.options({})
    serving = serve.Serving(run.model, options, stream=io.StringIO(), env=env)
    server_env = dict(env)
    server_env.update(serving.env())
    handle = open(log, "wb")
    return subprocess.Popen(serving.argv(), env=server_env, stdout=handle, stderr=subprocess.STDOUT), handle


@pytest.fixture
def server(run):
    started = []

    def start():
        log = os.path.join(run.base, "own-server.log")
        proc, handle = own_server(run, log)
        started.append((proc, handle))
        return log

    yield start
    for proc, handle in started:
        proc.terminate()
        proc.wait(timeout=30)
        handle.close()


def verify(run, log, ready_timeout=60):
    options, env = run.options({"ready_timeout": ready_timeout})
    return serve.verify(run.model, log=log, options=options, stream=io.StringIO(), env=env)


def test_a_server_of_ones_own_on_primed_caches_serves_with_zero_jit(run, server):
    assert do_prime(run)["status"] != "error"
    result = verify(run, server())
    assert result["status"] == "ok" and result["zero_jit"] is True, result["message"]
    assert result["serve_check"]["requests"] and all(r["ok"] for r in result["serve_check"]["requests"])
    assert result["first_text"] and result["status_code"] == 0
    assert not os.path.exists(os.path.join(run.model_dir(), "stages", "serve.json"))  # it reads only


def test_a_server_on_caches_that_were_never_primed_fails_the_check_with_its_log(run, server):
    # SGLANG_CRASH_ON_JIT_COMPILE (the serving environment) stops the server at its first missing kernel: it never
    # becomes ready, and the check says so with the server's own words
    result = verify(run, server(), ready_timeout=3)
    assert result["status"] == "error" and result["zero_jit"] is not True and result["status_code"] == 1, result
    assert result["error_type"] == "readiness_timeout", result
    assert any("SGLANG_CRASH_ON_JIT_COMPILE forbids compiling" in line for line in result["log_tail"]), result["log_tail"]


def test_a_log_that_is_not_there_is_refused_before_any_request(run):
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError
    with pytest.raises(PrepError) as raised:
        verify(run, os.path.join(run.base, "no-such.log"))
    assert raised.value.error_type == "bad_input" and "no-such.log" in raised.value.message

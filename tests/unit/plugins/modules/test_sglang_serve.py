"""sglang_serve: bad input is refused before anything runs, the runtime's argv carries exactly the serving settings
(secret extra args by environment), and its record becomes the module's result."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sglang.prep.plugins.module_utils import _serve
from ansible_collections.sglang.prep.plugins.modules import sglang_serve


def run(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            sglang_serve.main()
    return json.loads(capsys.readouterr().out)


def params(**over):
    base = dict((key, spec.get("default")) for key, spec in _serve.argument_spec().items())
    base.update(container="c", model="/models/m", state="started")
    base.update(over)
    return base


@pytest.mark.parametrize("args, error_type, words", [
    ({"container": "c", "model": "m"}, "model_not_found", "not under /models"),
    ({"container": "c", "model": "/models/m", "tp": 0}, "bad_input", "tp must be 1 or more"),
    ({"container": "c"}, "bad_input", "state=started needs model"),
    ({"container": "c", "model": "/models/m", "extra_server_args": ["--tp-size", "2"]}, "bad_input", "--tp-size"),
])
def test_bad_input_is_refused_before_docker_is_asked(args, error_type, words, capsys):
    out = run(dict(args, docker_cli="/nonexistent/docker"), capsys)
    assert out["failed"] and out["error_type"] == error_type and words in out["msg"], out
    assert out["changed"] is False


def test_the_runtime_argv_carries_the_serving_settings_and_the_switches():
    argv = _serve.serve_argv(params(tp=2, port=30001, extra_server_args=["--enable-mixed-chunk"], prime=True,
                                    stop_on_jit=True), check_mode=True)
    assert argv[:4] == ["python3", "-m", "sglang_prep", "serve"]
    assert argv[argv.index("--tp") + 1] == "2" and argv[argv.index("--port") + 1] == "30001"
    assert "--extra-server-arg=--enable-mixed-chunk" in argv
    assert {"--prime", "--stop-on-jit", "--check"} <= set(argv)
    plain = _serve.serve_argv(params(), check_mode=False)
    assert not {"--prime", "--stop-on-jit", "--check"} & set(plain)


def test_stopped_asks_serve_stop():
    assert _serve.serve_argv(params(state="stopped", model=None), False) == ["python3", "-m", "sglang_prep", "serve-stop"]


def test_a_noop_is_not_a_change_and_a_restart_shows_the_changed_settings_as_a_diff():
    noop = _serve.outcome({"status": "noop", "changed": False, "zero_jit": True, "server": {"port": 1}}, diff=True)
    assert noop["changed"] is False and noop["zero_jit"] is True
    restart = _serve.outcome({"status": "would_run", "changed": True, "action": "restart", "settings_changes": [
        {"field": "argv", "old": "a --tp-size 1", "new": "a --tp-size 2"}]}, diff=True)
    assert restart["changed"] and restart["diff"]["before"] == {"argv": "a --tp-size 1"}
    assert restart["diff"]["after"] == {"argv": "a --tp-size 2"}


def test_a_stop_that_leaves_the_port_busy_fails():
    assert _serve.stop_outcome({"stopped": True, "port_free": False, "message": "m"})["error_type"] == "port_busy"
    assert _serve.stop_outcome({"stopped": False, "message": "none"}) == {
        "changed": False, "msg": "none", "stopped": False, "port": None, "port_free": None}


def test_a_server_left_alone_is_a_change_when_the_container_was_switched_to_serving_mode():
    mode = {"mode": "serving", "previous": "caching", "changed": True, "reloaded": True}
    switched = _serve.outcome({"status": "noop", "changed": True, "container_mode": mode}, diff=True)
    assert switched["changed"] is True and switched["container_mode"] == mode
    assert switched["diff"]["before"] == "container mode: caching\n" and switched["diff"]["after"] == "container mode: serving\n"
    same = _serve.outcome({"status": "noop", "changed": False,
                           "container_mode": dict(mode, previous="serving", changed=False)}, diff=True)
    assert same["changed"] is False and "diff" not in same

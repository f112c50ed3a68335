# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""The body of the sglang_serve module: validate, ``docker exec`` the runtime's serve / serve-stop, translate.

The runtime (sglang_prep.container.serve) does the work inside the container as devuser; this file only builds its
argument list, runs it, and turns its RESULT line into the module's result.
"""

from __future__ import annotations

from ansible_collections.sglang.prep.plugins.module_utils import _docker_exec as dx
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, server_flags
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError

ENV_NOT_RECORDED = "VALUE_NOT_RECORDED"


def argument_spec():
    """The module's options: the stage options (the serving settings are planned with exactly these) and its own."""
    spec = dx.stage_options_spec()
    spec.update(
        container=dict(type="str", required=True),
        state=dict(type="str", default="started", choices=["started", "stopped"]),
        model=dict(type="str"),
        prime=dict(type="bool", default=False),
        stop_on_jit=dict(type="bool", default=False),
    )
    return spec


def problems(params, raw_env, raw_extra):
    """Bad input, found before anything runs: [(error_type, message)]."""
    out = []
    if params["state"] == "started" and not params["model"]:
        return [("bad_input", "state=started needs model: the model path inside the container, e.g. %s/<name>"
                 % contract.MODELS_ROOT)]
    refused = dx.model_problem(params["model"]) if params["model"] else None
    if refused is not None:
        out.append((refused.error_type, refused.message))
    if params["tp"] < 1:
        out.append(("bad_input", "tp must be 1 or more, got %d" % params["tp"]))
    for refused in server_flags.extra_args_problems(raw_extra):
        out.append(("bad_input", refused))
    for key, value in raw_env.items():
        if not isinstance(value, str):
            out.append(("bad_input", "env value of %s must be a string; quote it in YAML" % key))
    if contract.ENV_EXTRA_SERVER_ARGS in raw_env:
        out.append(("bad_input", "env may not set %s: the module passes extra_server_args in it" % contract.ENV_EXTRA_SERVER_ARGS))
    return out


def serve_argv(params, check_mode):
    """``python3 -m sglang_prep serve ...`` (or ``serve-stop``)."""
    if params["state"] == "stopped":
        return dx.runtime_argv("serve-stop", *(["--pointer", params["pointer"]] if params["pointer"] else []))
    args = dx.stage_options_argv(params)
    if params["prime"]:
        args.append("--prime")
    if params["stop_on_jit"]:
        args.append("--stop-on-jit")
    if check_mode:
        args.append("--check")
    return dx.runtime_argv("serve", *args)


def outcome(result, diff):
    """The module's result keys from the runtime's serve record."""
    status = result.get("status")
    server = result.get("server") or {}
    mode = result.get("container_mode") or {}
    out = {
        "status": status,
        "action": result.get("action"),
        # a server left alone changes nothing, unless the container was switched to serving mode
        "changed": bool(result.get("changed")) and (status != "noop" or bool(mode.get("changed"))),
        "container_mode": mode,
        "zero_jit": result.get("zero_jit"),
        "first_text": result.get("first_text"),
        "server": server,
        "serve_result": result,
        "stage_json": result.get("stage_json"),
        "error_type": result.get("error_type"),
        "msg": result.get("message") or "serve: %s" % status,
    }
    if diff and result.get("settings_changes"):
        before = dict((c["field"], c["old"]) for c in result["settings_changes"])
        after = dict((c["field"], c["new"]) for c in result["settings_changes"])
        out["diff"] = {"before": before, "after": after, "before_header": "serving server (running)",
                       "after_header": "serving server (these settings)"}
    elif diff and status == "noop" and mode.get("changed"):
        out["diff"] = {"before": "container mode: %s\n" % mode.get("previous"), "after": "container mode: %s\n" % mode.get("mode"),
                       "before_header": "container", "after_header": "container"}
    elif diff and status == "would_run":
        out["diff"] = {"before": "", "after": result.get("message") or "", "before_header": "serving server",
                       "after_header": "serving server"}
    return out


def stop_outcome(result):
    if result.get("status") == "error":
        return dict(failed=True, changed=False, msg=result.get("message"), error_type=result.get("error_type"))
    out = dict(changed=bool(result.get("stopped")), msg=result.get("message"), stopped=bool(result.get("stopped")),
               port=result.get("port"), port_free=result.get("port_free"))
    if result.get("stopped") and not result.get("port_free"):
        out.update(failed=True, error_type="port_busy")
    return out


def require_container(module, docker, cmd):
    """A running container, or the module's answer: nothing to stop, or container_not_running."""
    params = module.params
    try:
        state = dx.container_state(module, docker, params["container"])
    except PrepError as exc:
        module.fail_json(msg=exc.message, error_type=exc.error_type, changed=False, cmd=cmd)
    running = bool(state and state.get("Running") and not state.get("Paused"))
    if params["state"] == "stopped":
        if not running:
            module.exit_json(changed=False, stopped=False, cmd=cmd,
                             msg="container %s is %s: no serving server runs" % (params["container"], dx.describe_state(state)))
        if module.check_mode:
            module.exit_json(changed=False, cmd=cmd, msg="check mode: the serving server (if one runs) would be stopped")
    elif not running:
        module.fail_json(msg="serve: container %s is not running (%s); start it with the prime role (serve.yml does)"
                         % (params["container"], dx.describe_state(state)), error_type="container_not_running",
                         changed=False, cmd=cmd)


def run(module):
    """The whole module: one call from sglang_serve."""
    params = module.params
    raw_env = dict(params["env"])
    params["env"] = dict.fromkeys(raw_env, ENV_NOT_RECORDED)  # no env value in any result
    raw_extra = dx.hide_secret_args(params)
    bad = problems(params, raw_env, raw_extra)
    if bad:
        module.fail_json(msg="; ".join(m for _t, m in bad), error_type=bad[0][0], changed=False)
    env = dict(raw_env)
    env.update(dx.extra_args_env(raw_extra))
    docker = dx.docker_binary(module, params["docker_cli"])
    argv = serve_argv(dict(params, extra_server_args=raw_extra), module.check_mode)
    cmd = dx.shown_cmd(dx.exec_argv(docker, params["container"], argv, user=params["user"], env=env))
    require_container(module, docker, cmd)
    rc, result, out, err = dx.run_runtime(module, docker, params["container"], argv, user=params["user"], env=env)
    if result is None and params["state"] == "stopped":  # a runtime deployed before serve existed runs no server
        module.exit_json(changed=False, stopped=False, cmd=cmd, msg="no serving server: the container's runtime has no "
                         "serve command (exit code %d)" % rc)
    if result is None:
        module.fail_json(msg="serve: the runtime gave no RESULT line (exit code %d): %s" % (
            rc, " | ".join(dx.tail(err) or dx.tail(out)) or "no output"), error_type="internal_error", rc=rc, cmd=cmd,
            changed=False)
    finish(module, rc, result, cmd)


def finish(module, rc, result, cmd):
    """The module's exit from the runtime's result."""
    if module.params["state"] == "stopped":
        answer = stop_outcome(result)
        answer["cmd"] = cmd
        if answer.pop("failed", False):
            module.fail_json(**answer)
        module.exit_json(**answer)
    answer = outcome(result, module._diff)
    answer["cmd"] = cmd
    for warning in result.get("warnings") or []:
        module.warn(warning)
    if answer["status"] == "error" or rc != 0:
        answer["error_type"] = answer["error_type"] or "internal_error"
        answer["log_tail"] = result.get("log_tail") or []
        for key in ("reasons", "stages"):
            if key in result:
                answer[key] = result[key]
        module.fail_json(**answer)
    module.exit_json(**answer)

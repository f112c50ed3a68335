# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""Running the sglang_prep runtime inside the container with ``docker exec`` (argument lists only).

Ansible-specific glue: everything goes through ``module.run_command`` with a list, never a shell
string. The runtime contract itself (paths, error types, the RESULT line) lives in sglang_prep.
"""

from __future__ import annotations

import json

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, server_flags
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError

LOG_TAIL_LINES = 20


def docker_binary(module, docker_cli):
    """Absolute path of the docker CLI (a bare name is looked up on PATH)."""
    if "/" in docker_cli:
        return docker_cli
    return module.get_bin_path(docker_cli, required=True)


def container_state(module, docker, container):
    """The container's State dict from ``docker inspect``, or None when no such container exists.

    Raises PrepError(engine_unreachable) when the engine itself does not answer.
    """
    rc, out, err = module.run_command([docker, "inspect", "--type", "container", "--format", "{{json .State}}", container])
    if rc == 0:
        try:
            return json.loads(out)
        except ValueError:
            raise PrepError("engine_unreachable", "docker inspect %s returned no JSON state: %r" % (container, out[:200]))
    text = (err or out or "").strip()
    if "no such" in text.lower():
        return None
    raise PrepError("engine_unreachable", "cannot inspect container %s: %s (is the Docker engine running and "
                    "may this user use it?)" % (container, text or "docker inspect exited %d" % rc))


def model_problem(model):
    """contract.model_path's refusal of ``model`` (its one check and message), or None."""
    try:
        contract.model_path(model)
    except PrepError as exc:
        return exc
    return None


def container_look(module, docker, container, spec_label, spec, image):
    """Whether ``container`` runs with the settings digest ``spec`` (its label ``spec_label``) on the image ``image``
    currently names: two inspects, no change. A dict with ``current`` and, when it is not, the ``reason``. With ``spec``
    None the label is returned (``spec``) but not compared: the caller compares it."""
    rc, out, err = module.run_command([docker, "inspect", "--type", "container", "--format", "{{json .}}", container])
    if rc != 0:
        text = (err or out or "").strip()
        return {"current": False, "exists": False,
                "reason": "no container %s" % container if "no such" in text.lower() else "docker inspect: %s" % text}
    try:
        seen = json.loads(out)
    except ValueError:
        return {"current": False, "exists": True, "reason": "docker inspect %s returned no JSON" % container}
    state = seen.get("State") or {}
    labels = (seen.get("Config") or {}).get("Labels") or {}
    look = {"exists": True, "running": bool(state.get("Running")) and not state.get("Paused"),
            "spec": labels.get(spec_label), "image_id": seen.get("Image")}
    rc, out, err = module.run_command([docker, "image", "inspect", "--format", "{{.Id}}", image])
    look["wanted_image_id"] = out.strip() if rc == 0 else None
    if not look["running"]:
        look["reason"] = "container %s is %s" % (container, describe_state(state))
    elif spec is not None and look["spec"] != spec:
        look["reason"] = "container %s was started with other settings (label %s)" % (container, spec_label)
    elif look["image_id"] != look["wanted_image_id"]:
        look["reason"] = "image %s is not the one container %s runs" % (image, container)
    look["current"] = "reason" not in look
    return look


def logs_tail(module, docker, container, lines=LOG_TAIL_LINES):
    """Last lines of ``docker logs`` (stdout and stderr of the container's init), oldest first."""
    rc, out, err = module.run_command([docker, "logs", "--tail", str(int(lines)), container])
    if rc != 0:
        return []
    return [line for line in ((out or "") + (err or "")).splitlines() if line.strip()][-lines:]


def describe_state(state):
    if state is None:
        return "does not exist"
    parts = [state.get("Status") or ("running" if state.get("Running") else "not running")]
    if not state.get("Running"):
        parts.append("exit code %s" % state.get("ExitCode"))
        if state.get("Error"):
            parts.append("error %r" % state.get("Error"))
        if state.get("OOMKilled"):
            parts.append("killed by the OOM killer")
    return ", ".join(parts)


def require_running(module, docker, container):
    """PrepError(container_not_running), carrying the last log lines, unless the container runs."""
    state = container_state(module, docker, container)
    if state is not None and state.get("Running") and not state.get("Paused"):
        return state
    tail = logs_tail(module, docker, container) if state is not None else []
    message = "container %s is not running (%s)" % (container, describe_state(state))
    if tail:
        message += "; last lines of `docker logs %s`:\n  %s" % (container, "\n  ".join(tail))
    else:
        message += "; start it with the sglang.prep.prime role (the playbook sglang.prep.prime)"
    raise PrepError("container_not_running", message, container=container, state=state, log_tail=tail)


def exec_argv(docker, container, argv, user=contract.DEVUSER, env=None):
    """``docker exec -u <user> [-e KEY ...] <container> <argv...>`` as a list.

    Only the names of ``env`` are on the command line: ``docker exec -e KEY`` takes the value from the docker
    CLI's own environment (run_runtime sets it), so values are never in an argv, a process list or a result.
    """
    cmd = [docker, "exec", "-u", user]
    for key in sorted(env or {}):
        cmd.extend(["-e", key])
    cmd.append(container)
    cmd.extend(argv)
    return cmd


def runtime_argv(subcommand, *args):
    """``python3 -m sglang_prep <subcommand> ...`` (contract.RUNTIME_ENTRY_POINT: the package mounted in the container)."""
    return list(contract.RUNTIME_ENTRY_POINT) + [subcommand] + [str(a) for a in args]


def stage_options_spec():
    """The argument spec of the options a stage run, a plan and a bundle install share (read by stage_options_argv,
    plus the runtime's environment, user and docker CLI): one home for sglang_stage and sglang_cache_bundle."""
    return dict(
        model=dict(type="str", required=True),
        tp=dict(type="int", default=1),
        port=dict(type="int", default=contract.SERVER_PORT),
        lock_timeout=dict(type="float"),
        ready_timeout=dict(type="float"),
        disk_headroom_mb=dict(type="int"),
        moe_batch_sizes=dict(type="list", elements="int"),
        moe_dtype=dict(type="str"),
        extra_server_args=dict(type="list", elements="str", default=[]),
        serve_max_prompt_tokens=dict(type="int", no_log=False),
        require_pinned_stack=dict(type="bool", default=False),
        env=dict(type="dict", default={}),
        user=dict(type="str", default=contract.DEVUSER),
        pointer=dict(type="str"),
        docker_cli=dict(type="str", default="docker"),
    )


def stage_options_argv(params):
    """Runtime CLI options that a stage run, a plan and a bundle install share (the signature depends on them), written
    from contract.STAGE_OPTION_FLAGS."""
    args = []
    for option, flag, form in contract.STAGE_OPTION_FLAGS:
        value = params[option]
        if form == "value" and value is not None:
            args.extend([flag, value])
        elif form == "switch" and value:
            args.append(flag)
        elif form == "values" and value:
            args.append(flag)
            args.extend(value)
        elif form == "repeat" and not extra_args_env(value):  # else they travel in the environment (extra_args_env)
            args.extend("%s=%s" % (flag, item) for item in value)
    return args


def extra_args_env(extra_args):
    """``{contract.ENV_EXTRA_SERVER_ARGS: <JSON list>}`` when the extra server args carry a secret (``--api-key ...``),
    else ``{}``. Then all of them (in their order) reach the runtime through ``docker exec -e`` and the docker CLI's
    environment, and none is on the command line (stage_options_argv leaves them out): no secret in a process list."""
    extra = [str(arg) for arg in extra_args]
    if server_flags.redact_args(extra) == extra:
        return {}
    return {contract.ENV_EXTRA_SERVER_ARGS: json.dumps(extra)}


EXTRA_ARG_PREFIX = "--extra-server-arg="


def shown_cmd(cmd):
    """``cmd`` as a result may show it: the values of secret server options among its extra server args masked."""
    at = [i for i, arg in enumerate(cmd) if isinstance(arg, str) and arg.startswith(EXTRA_ARG_PREFIX)]
    shown = list(cmd)
    masked = server_flags.redact_args([cmd[i][len(EXTRA_ARG_PREFIX):] for i in at])
    for i, extra in zip(at, masked):
        shown[i] = EXTRA_ARG_PREFIX + extra
    return shown


def hide_secret_args(params):
    """The extra server args as given, after masking secret values in ``params`` (so in every result's invocation,
    and an async job's result file): the caller builds the runtime's argv from ``dict(params, extra_server_args=...)``."""
    raw = list(params["extra_server_args"])
    params["extra_server_args"] = server_flags.redact_args(raw)
    return raw


def parse_result(stdout):
    """The JSON of the last ``RESULT `` line on stdout, or None when there is none (or it is not JSON)."""
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(contract.RESULT_PREFIX):
            try:
                return json.loads(line[len(contract.RESULT_PREFIX):])
            except ValueError:
                return None
    return None


def tail(text, lines=LOG_TAIL_LINES):
    return [line for line in (text or "").splitlines() if line.strip()][-lines:]


def run_runtime(module, docker, container, argv, user=contract.DEVUSER, env=None):
    """Run the runtime in the container; returns (rc, result dict or None, stdout, stderr)."""
    rc, out, err = module.run_command(exec_argv(docker, container, argv, user=user, env=env),
                                      environ_update=dict(env or {}))
    return rc, parse_result(out), out, err

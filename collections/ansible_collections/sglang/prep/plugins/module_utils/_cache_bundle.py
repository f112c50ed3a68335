# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""The body of the module sglang_cache_bundle (its file holds the argument spec and the documentation)."""

from __future__ import annotations

from ansible_collections.sglang.prep.plugins.module_utils import _docker_exec as dx
from ansible_collections.sglang.prep.plugins.module_utils._priming import ENV_NOT_RECORDED, check_model
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import registry
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError


KEEP = ("digest", "group_key", "stages", "skipped_stages", "host_path", "path", "archive_bytes", "total_bytes", "file_count",
        "source_host", "source_run_id", "status", "install_s", "unpack_s", "pack_s", "records", "restored", "recovered",
        "added", "kept", "swapped", "created_at",
        "collection_version", "message")


def bundle_argv(params):
    """``python3 -m sglang_prep bundle create|install ...``."""
    args = ["create" if params["state"] == "packed" else "install"]
    if params["state"] == "packed":
        if params["source_host"]:
            args.extend(["--source-host", params["source_host"]])
        if params["stages"]:
            args.append("--stages")
            args.extend(params["stages"])
    else:
        args.extend(["--bundle", params["bundle"]])
        if params["sha256"]:
            args.extend(["--sha256", params["sha256"]])
    return dx.runtime_argv("bundle", *(args + dx.stage_options_argv(params)))


def refuse(module, params):
    """Bad input, before anything runs."""
    check_model(module, params["model"])
    if params["state"] == "installed" and not params["bundle"]:
        module.fail_json(msg="state=installed needs bundle: the bundle's path inside the container", error_type="bad_input")
    if params["sha256"] and (len(params["sha256"]) != 64 or any(c not in "0123456789abcdef" for c in params["sha256"])):
        module.fail_json(msg="sha256 %r is not 64 lowercase hex digits" % params["sha256"], error_type="bad_input")
    unknown = [s for s in params["stages"] or [] if s not in registry.priming_stages()]
    if unknown:
        module.fail_json(msg="stages %s: only priming stages travel in a bundle (%s)" % (", ".join(unknown), ", ".join(registry.priming_stages())),
                         error_type="bad_input")
    for key, value in params["env"].items():
        if not isinstance(value, str):
            module.fail_json(msg="env value of %s must be a string; quote it in YAML" % key, error_type="bad_input")


def run(module):
    """The module's work, on its checked arguments."""
    params = module.params
    refuse(module, params)
    raw_env = dict(params["env"])
    params["env"] = dict.fromkeys(raw_env, ENV_NOT_RECORDED)  # env values appear in no result (nor its invocation)
    raw_extra = dx.hide_secret_args(params)  # nor does a secret server option's value
    docker = dx.docker_binary(module, params["docker_cli"])
    argv = bundle_argv(dict(params, extra_server_args=raw_extra))
    env = dict(raw_env, **dx.extra_args_env(raw_extra))  # secret-bearing extra server args: by environment
    cmd = dx.shown_cmd(dx.exec_argv(docker, params["container"], argv, user=params["user"], env=env))
    try:
        dx.require_running(module, docker, params["container"])
    except PrepError as exc:
        module.fail_json(msg="bundle: %s" % exc.message, error_type=exc.error_type, cmd=cmd)
    if module.check_mode:
        module.exit_json(changed=True, cmd=cmd, status="would_" + ("pack" if params["state"] == "packed" else "install"),
                         msg="check mode: would %s (nothing run)" % ("pack this host's primed caches" if params["state"] == "packed"
                                                                     else "install %s" % params["bundle"]))
    rc, result, out, err = dx.run_runtime(module, docker, params["container"], argv, user=params["user"], env=env)
    if result is None:
        stderr_tail = dx.tail(err) or dx.tail(out)
        module.fail_json(msg="bundle: the runtime gave no RESULT line (exit code %d); its last output:\n  %s"
                             % (rc, "\n  ".join(stderr_tail) or "(none)"), error_type="internal_error", rc=rc, cmd=cmd, log_tail=stderr_tail)
    if result.get("status") == "error" or rc != 0:
        answer = dict((k, result[k]) for k in ("reasons", "path", "field", "conflicts", "stages", "missing", "free_bytes",
                                               "required_bytes") if k in result)
        module.fail_json(msg=result.get("message") or "bundle failed (exit code %d)" % rc, changed=False,
                         error_type=result.get("error_type") or "internal_error", cmd=cmd, log_tail=dx.tail(err), **answer)
    answer = dict((k, result[k]) for k in KEEP if k in result)
    answer["msg"] = result.get("message") or "packed %d stages into %s" % (len(result.get("stages") or []), result.get("host_path"))
    answer.pop("message", None)
    module.exit_json(changed=bool(result.get("changed")), cmd=cmd, **answer)

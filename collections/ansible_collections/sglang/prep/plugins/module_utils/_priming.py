# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""The bodies of the priming modules: sglang_stage (one stage) and sglang_prime (plan and prime a host's stages);
sglang_prime_info's (the priming state as recorded, read on the host) is _prime_info, which shares the checks here.

Each module file holds its argument spec and documentation and calls one function here. The runtime in the
container decides everything (plan, state, wording); this file checks the input, builds the runtime's command
line, runs it with ``docker exec`` (_docker_exec) and turns its RESULT line into an Ansible result.
"""

from __future__ import annotations

import time

from ansible_collections.sglang.prep.plugins.module_utils import _docker_exec as dx
from ansible_collections.sglang.prep.plugins.module_utils import _host_info
from ansible_collections.sglang.prep.plugins.module_utils import _serve
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import server_flags
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError

ENV_NOT_RECORDED = "VALUE_NOT_RECORDED"
# exit codes of a runtime killed by a signal: docker exec reports 128 + N, a local runner -N
KILLED = {137: 9, 143: 15, 130: 2, 129: 1, -9: 9, -15: 15, -2: 2, -1: 1}
MODES = ["ensure", "rebuild"]
DEPRECATED_IN = "2.0.0"


# ---------------------------------------------------------------- argument specs
def stage_spec():
    """Options of sglang_stage: the shared stage options, the container, the stage and its mode."""
    return dict(dx.stage_options_spec(), container=dict(type="str", required=True),
                mode=dict(type="str", default="ensure", choices=MODES))


def several_spec():
    """Options of sglang_prime: the shared stage options, the container, the stages, their modes, the look."""
    return dict(stage_spec(), stages=dict(type="list", elements="str"), stage_modes=dict(type="dict", default={}),
                container_spec=dict(type="str"), image=dict(type="str"), serving=dict(type="bool", default=False),
                host=dict(type="dict", options=_host_info.argument_spec()))


def info_spec():
    """Options of sglang_prime_info (reads on the host; the container only for the look)."""
    return dict(pointer=dict(type="path", required=True), expected_uid=dict(type="int"), model=dict(type="str"),
                stages=dict(type="list", elements="str"), container=dict(type="str"),
                container_spec=dict(type="str"), image=dict(type="str"),
                docker_cli=dict(type="str", default="docker"))


# ---------------------------------------------------------------- input
def _fail_bad(module, msg, **extra):
    module.fail_json(msg=msg, error_type="bad_input", **extra)


def check_stages(module, names):
    unknown = [s for s in names if s not in contract.STAGE_ORDER]
    if unknown:
        _fail_bad(module, "unknown stage %s: the stages are %s" % (", ".join(unknown), ", ".join(contract.STAGE_ORDER)))


def check_stage_modes(module, stage_modes):
    bad = sorted("%s: %s" % (k, v) for k, v in stage_modes.items() if k not in contract.STAGE_ORDER or v not in MODES)
    if bad:
        module.fail_json(msg="stage_modes maps stages (%s) to ensure or rebuild; got %s"
                             % (", ".join(contract.STAGE_ORDER), ", ".join(bad)))


def check_model(module, model):
    refused = dx.model_problem(model) if model is not None else None
    if refused is not None:
        module.fail_json(msg=refused.message, error_type=refused.error_type)


def take_env(module):
    """The runtime's environment (env values, and secret-bearing extra server args) and the extra server args as
    given. From here on the values live only there: every result's invocation (and an async job's result file on
    the host) names the keys only, and masks a secret server option's value."""
    params = module.params
    raw_env = dict(params["env"])
    params["env"] = dict.fromkeys(raw_env, ENV_NOT_RECORDED)
    raw_extra = dx.hide_secret_args(params)
    if params["tp"] < 1:
        module.fail_json(msg="tp must be 1 or more, got %d" % params["tp"])
    refused = server_flags.extra_args_problems(raw_extra)
    if refused:
        _fail_bad(module, "; ".join(refused), refused=refused)
    for key, value in raw_env.items():
        if not isinstance(value, str):
            module.fail_json(msg="env value of %s must be a string; quote it in YAML (%s: \"...\")" % (key, key))
    if contract.ENV_EXTRA_SERVER_ARGS in raw_env:
        _fail_bad(module, "env may not set %s: the module passes extra_server_args in it" % contract.ENV_EXTRA_SERVER_ARGS)
    raw_env.update(dx.extra_args_env(raw_extra))  # secret-bearing extra server args: by environment, not argv
    return raw_env, raw_extra


def stage_names(module):
    """sglang_prime's stages: as given (checked), else every stage in the registry's order."""
    names = module.params["stages"]
    if names is None:
        return list(contract.STAGE_ORDER)
    if not names:
        _fail_bad(module, "stages is empty: name at least one stage, or leave stages out for all of them")
    check_stages(module, names)
    return list(names)


# ---------------------------------------------------------------- the runtime's command lines
def stage_argv(params, mode):
    """``python3 -m sglang_prep stage <stage> --mode <mode> ...``."""
    return dx.runtime_argv("stage", params["stage"], "--mode", mode, *dx.stage_options_argv(params))


def several_argv(params, command, stages):
    """``python3 -m sglang_prep plan|prime --stages ... [--rebuild STAGE ...] ...``."""
    args = ["--stages"] + list(stages)
    for stage in stages:
        if params["stage_modes"].get(stage, params["mode"]) == "rebuild":
            args.extend(["--rebuild", stage])
    return dx.runtime_argv(command, *(args + dx.stage_options_argv(params)))


def report_argv(params, stages):
    """``python3 -m sglang_prep report --stages ... --model M [--pointer P]`` (reads only)."""
    args = ["--stages"] + list(stages) + ["--model", params["model"]]
    if params["pointer"]:
        args.extend(["--pointer", params["pointer"]])
    return dx.runtime_argv("report", *args)


class Call(object):
    """One runtime call in the container: the docker CLI, the argv, the environment and the command as shown."""

    def __init__(self, module, argv, env, what):
        params = module.params
        self.module, self.argv, self.env, self.what = module, argv, env, what
        self.container, self.user = params["container"], params["user"]
        self.docker = dx.docker_binary(module, params["docker_cli"])
        self.cmd = dx.shown_cmd(dx.exec_argv(self.docker, self.container, argv, user=self.user, env=env))

    def require_running(self, **seen):
        try:
            dx.require_running(self.module, self.docker, self.container)
        except PrepError as exc:
            self.module.fail_json(msg="%s: %s" % (self.what, exc.message), error_type=exc.error_type,
                                  log_tail=exc.details.get("log_tail", []), cmd=self.cmd, **seen)

    def run(self, **seen):
        """(rc, result, stderr); no RESULT line fails the task, saying why."""
        rc, result, out, err = dx.run_runtime(self.module, self.docker, self.container, self.argv, user=self.user,
                                              env=self.env)
        if result is None:
            self.no_result(rc, out, err, **seen)
        return rc, result, err

    def settled_state(self, rc, settle_s=3.0):
        """The container's state; after a kill code, the state once the engine has caught up (a dying container
        still reads as running for a moment after its exec ended), for at most ``settle_s``."""
        deadline = time.monotonic() + (settle_s if rc in KILLED else 0)
        while True:
            try:
                state = dx.container_state(self.module, self.docker, self.container)
            except PrepError:
                return None
            if state is None or not state.get("Running") or time.monotonic() >= deadline:
                return state
            time.sleep(0.2)

    def no_result(self, rc, out, err, **extra):
        """The runtime ended without its RESULT line: the container died, or the runner was killed (interrupted),
        else a defect of the runtime (internal_error)."""
        stderr_tail = dx.tail(err) or dx.tail(out)
        last = "; its last output:\n  %s" % ("\n  ".join(stderr_tail) or "(none)")
        state = self.settled_state(rc)
        extra.update(rc=rc, log_tail=stderr_tail, cmd=self.cmd)
        if state is None or not state.get("Running"):
            self.module.fail_json(
                msg="%s: container %s stopped while the runtime ran (%s), so it gave no RESULT line (exit code %d); "
                    "what it recorded is kept: start the container again (run the role) and prime again%s"
                    % (self.what, self.container, dx.describe_state(state), rc, last),
                error_type="interrupted", **extra)
        if rc in KILLED:
            self.module.fail_json(
                msg="%s: the runtime was killed by signal %d, so it gave no RESULT line (exit code %d); the stage it "
                    "ran keeps its in-progress marker and re-runs at the next prime%s" % (self.what, KILLED[rc], rc, last),
                error_type="interrupted", **extra)
        self.module.fail_json(msg="%s: the runtime gave no RESULT line (exit code %d)%s" % (self.what, rc, last),
                              error_type="internal_error", **extra)


# ---------------------------------------------------------------- results
def signature_diff(stage, result):
    return {"before": result.get("previous_signature") or {}, "after": result.get("signature") or {},
            "before_header": "%s signature (recorded)" % stage, "after_header": "%s signature (current)" % stage}


def stage_outcome(module, result):
    """Ansible result keys from a runtime stage result."""
    status = result.get("status")
    out = {
        "status": status,
        "ran": bool(result.get("ran")),
        "error_type": result.get("error_type"),
        "duration_s": result.get("duration_s"),
        "reprime_reasons": result.get("reprime_reasons") or [],
        "stage_json": result.get("stage_json"),
        "stage_result": result,
        "changed": (status == "ok" and bool(result.get("ran"))) or status == "would_run",
        "msg": result.get("reason") or "%s: %s" % (module.params["stage"], status),
    }
    if "zero_jit" in result:
        out["zero_jit"] = result["zero_jit"]
    if module._diff:
        out["diff"] = signature_diff(module.params["stage"], result)
    return out


def repeated_keys(plan):
    """The result keys of a plan that repeat parts of its state (left out with ``state_only``)."""
    return {"plan": plan.get("stages") or {}, "run": plan.get("run") or {}, "prep_result": plan.get("prep_result") or {},
            "caches": plan.get("caches") or {}}


def plan_outcome(module, plan, order):
    """Ansible result keys from a runtime plan; with ``state_only``, without the keys that repeat parts of the state
    (plan, run, prep_result, caches): half the result to register."""
    stages = plan.get("stages") or {}
    missing = [stage for stage in order if stage not in stages]
    if missing:
        module.fail_json(msg="the runtime's plan has no entry for %s" % ", ".join(missing), error_type="internal_error",
                         plan=plan)
    would_run = [stage for stage in order if stages[stage].get("status") == "would_run"]
    out = {
        "state": plan,
        "to_run": list(plan.get("to_run") or []),
        # a plan changes nothing; in check mode it is the answer, and a stage that would run is the change
        "changed": bool(module.check_mode and would_run),
        "msg": "; ".join(stages[stage].get("reason") or stage for stage in order),
    }
    if not module.params.get("state_only"):
        out.update(repeated_keys(plan))
    if module._diff and module.check_mode:
        out["diff"] = [signature_diff(stage, stages[stage]) for stage in would_run]
    for warning in plan.get("warnings") or []:
        module.warn(warning)
    return out


def plan(module, call, order, seen):
    """The runtime's plan; ``seen`` (the look at the container, when one was asked for) goes into every answer."""
    rc, result, err = call.run(**seen)
    if rc != 0 or result.get("status") == "error":
        module.fail_json(msg="plan: %s" % (result.get("message") or "the runtime exited with code %d" % rc),
                         error_type=result.get("error_type") or "internal_error", rc=rc, cmd=call.cmd,
                         log_tail=dx.tail(err), **seen)
    answer = plan_outcome(module, result, order)
    answer.update(seen, cmd=call.cmd)
    failed = [stage for stage in order if answer["state"]["stages"][stage].get("status") == "error"]
    if module.check_mode and failed:
        # in check mode the plan is the answer, so a stage that cannot even be checked fails the task
        first = answer["state"]["stages"][failed[0]]
        answer.update(error_type=first.get("error_type") or "internal_error", log_tail=first.get("log_tail") or [])
        module.fail_json(**answer)
    module.exit_json(**answer)


def state_answer(module, call, order, operation):
    """prime (every stage the plan sends to run, as one job) or report: the runtime's priming state, as is."""
    rc, state, err = call.run()
    rows = state.get("stages") or {}
    order = state.get("order") or order
    ran = [stage for stage in order if (rows.get(stage) or {}).get("ran")]
    answer = {
        "state": state,
        "cmd": call.cmd,
        "changed": any((rows[stage].get("status") == "ok") for stage in ran),
        "msg": "; ".join((rows.get(stage) or {}).get("reason") or stage for stage in order),
    }
    for warning in state.get("warnings") or []:
        module.warn(warning)
    if rc != 0 or state.get("status") == "error":
        failed = rows.get(state.get("failed_stage")) or {}
        answer.update(error_type=state.get("error_type") or "internal_error",
                      log_tail=failed.get("log_tail") or dx.tail(err),
                      msg=failed.get("reason") or state.get("message")
                      or "%s: the runtime exited with code %d" % (operation, rc))
        module.fail_json(**answer)
    module.exit_json(**answer)


def serve_probe(module, call, seen):
    """serving: the runtime's serve in check mode (every stage planned against the serving settings, then whether the
    serving server runs with them), in place of the priming plan: what sglang_serve would do, with nothing started or
    written. Its answer is sglang_serve's, as ``serve``: serve.yml needs no other call when it is a no-op. A refusal
    (not_primed) or an unusable run pointer fails the look, as a failed plan does (``error_type``)."""
    rc, result, err = call.run(**seen)
    answer = _serve.outcome(result, False)
    answer["cmd"] = call.cmd
    out = dict(seen, serve=answer, cmd=call.cmd, changed=False, msg=answer["msg"])
    if rc != 0 or answer["status"] == "error":
        out.update(error_type=answer["error_type"] or "internal_error", log_tail=result.get("log_tail") or dx.tail(err))
        module.fail_json(**out)
    module.exit_json(**out)


def look(module, docker, params):
    """The look at the container (container_spec and image): a dict for the result."""
    return dx.container_look(module, docker, params["container"], contract.CONTAINER_SPEC_LABEL,
                             params["container_spec"], params["image"])


# ---------------------------------------------------------------- sglang_stage
def run_stage(module):
    """sglang_stage: one stage, in the mode asked (check mode: the runtime's check)."""
    params = module.params
    if params.get("stages") is not None or params.get("operation") is not None:
        return _deprecated_modes(module)
    if not params["stage"]:
        _fail_bad(module, "stage is required: name the stage to run (sglang.prep.sglang_prime runs all of them)")
    check_stages(module, [params["stage"]])
    check_model(module, params["model"])
    env, raw_extra = take_env(module)
    given = dict(params, extra_server_args=raw_extra)
    call = Call(module, stage_argv(given, "check" if module.check_mode else params["mode"]), env, params["stage"])
    call.require_running()
    rc, result, err = call.run()
    answer = stage_outcome(module, result)
    answer["cmd"] = call.cmd
    if answer["status"] == "error" or rc != 0:
        if answer["status"] != "error":
            answer["msg"] = "%s: the runtime exited with code %d although it reported status %s" % (
                params["stage"], rc, answer["status"])
        answer.update(changed=False, error_type=answer["error_type"] or "internal_error",
                      log_tail=result.get("log_tail") or dx.tail(err))
        module.fail_json(**answer)
    module.exit_json(**answer)


def _deprecated_modes(module):
    """sglang_stage with stages (plan, prime, report): kept for one deprecation cycle, routed to sglang_prime's
    body (plan, prime) and the runtime's report."""
    params = module.params
    operation = params.get("operation") or "plan"
    if params["stage"]:
        _fail_bad(module, "stage and stages are mutually exclusive: sglang_stage runs one stage; "
                          "sglang.prep.sglang_prime plans and primes several")
    if params.get("stages") is None:
        _fail_bad(module, "operation goes with stages, which is deprecated: use sglang.prep.sglang_prime")
    if params["container_spec"] and operation != "plan":
        _fail_bad(module, "container_spec goes with operation=plan only")
    new = "sglang.prep.sglang_prime_info" if operation == "report" else "sglang.prep.sglang_prime"
    module.deprecate("sglang.prep.sglang_stage with stages (operation=%s) is deprecated: use %s%s"
                     % (operation, new, " (plan_only=true for a plan)" if operation == "plan" else ""),
                     version=DEPRECATED_IN, collection_name="sglang.prep")
    params["plan_only"] = operation == "plan"
    if operation == "report":
        return _exec_report(module)
    return run_prime(module)


def _exec_report(module):
    """The deprecated operation=report: the runtime's report, read inside the container."""
    params = module.params
    order = stage_names(module)
    check_model(module, params["model"])
    env, _raw_extra = take_env(module)
    call = Call(module, report_argv(params, order), env, "report")
    call.require_running()
    state_answer(module, call, order, "report")


# ---------------------------------------------------------------- sglang_prime
def answer_with(module, extra):
    """Every answer of ``module`` from here on, result or failure, also carries ``extra``."""
    exit_json, fail_json = module.exit_json, module.fail_json
    module.exit_json = lambda **answer: exit_json(**dict(extra, **answer))
    module.fail_json = lambda msg, **answer: fail_json(msg=msg, **dict(extra, **answer))


def run_prime(module):
    """sglang_prime: plan (check mode, plan_only) or prime the stages, as one job; with host, the look at the host
    first (what sglang_host_info returns, in every answer as ``host``), so that one call looks at the host, the
    container and plans."""
    params = module.params
    if params.get("host") is not None:
        answer_with(module, {"host": _host_info.host_info(params["host"])})
    order = stage_names(module)
    check_stage_modes(module, params["stage_modes"])
    check_model(module, params["model"])
    if params["container_spec"] and not params["image"]:
        _fail_bad(module, "container_spec needs image: the look compares the image the container runs with it")
    env, raw_extra = take_env(module)
    planning = module.check_mode or params["plan_only"]
    if (params["container_spec"] or params["image"]) and not planning:
        _fail_bad(module, "container_spec and image go with a plan only (plan_only=true, or check mode)")
    serving = bool(params.get("serving"))  # (sglang_stage's deprecated modes have no serving option)
    if serving and not (params["plan_only"] and params["image"]):
        _fail_bad(module, "serving goes with a look at the container: plan_only=true and image")
    given = dict(params, extra_server_args=raw_extra)
    if serving:
        call = Call(module, _serve.serve_argv(dict(given, state="started", prime=False, stop_on_jit=False), True), env,
                    "serve")
    else:
        call = Call(module, several_argv(given, "plan" if planning else "prime", order), env, "plan" if planning else "prime")
    seen = {}
    if params["image"]:
        seen_look = look(module, call.docker, params)
        if not seen_look["current"]:
            module.exit_json(changed=False, planned=False, container_look=seen_look,
                             msg="not planned: %s (the container is about to change)" % seen_look["reason"])
        seen = {"container_look": seen_look, "planned": True}  # (a current container was just seen running)
    else:
        call.require_running()
    if serving:
        serve_probe(module, call, seen)
    if planning:
        plan(module, call, order, seen)
    state_answer(module, call, order, "prime")

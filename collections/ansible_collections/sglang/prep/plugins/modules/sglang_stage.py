#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_stage
short_description: Run cache-priming stages inside the SGLang prime container, or plan them
version_added: 1.0.0
description:
  - Runs one priming stage (DeepGEMM compile, fused-MoE Triton tuning, FlashInfer or TorchInductor
    warm-up) inside a running prime container, as O(user), through the container's C(sglang_prep)
    runtime (C(docker exec -u devuser <container> python3 -m sglang_prep stage ...)).
  - Stage V(serve_check) primes nothing. It starts the serving configuration, drives the shapes serving meets
    and fails with RV(error_type=jit_at_serve_time) when any cache grew or a JIT log line appeared. Its result
    carries C(zero_jit) and the evidence (C(serve_check)).
  - With O(stages) instead of O(stage) it runs nothing and asks the runtime, in one C(docker exec)
    (C(python3 -m sglang_prep plan)), what each of those stages would do and why; see RV(plan) and
    RV(to_run). In check mode that plan is the answer (C(changed=true) when a stage would run, and
    C(--diff) shows each such stage's recorded signature against the current one). Outside check mode a
    plan changes nothing.
  - With O(stages) and O(operation=prime) it runs every stage the plan sends to run, in order, as one job
    (C(python3 -m sglang_prep prime)). The runtime stops at the first failure and returns the priming state
    (RV(state)). It writes a progress file (the run directory's C(progress.json)) that
    M(sglang.prep.sglang_stage_wait) reads while the job runs. The prime role runs it with C(async) and
    C(poll=0), so that each host runs its whole stage list without waiting for the others.
  - With O(stages) and O(operation=report) it runs nothing and returns the priming state of the current run
    as recorded.
  - The runtime records the outcome in the run's stage JSON and prints it as its last C(RESULT) line;
    this module returns that result as RV(stage_result).
  - With O(mode=ensure) a stage whose recorded signature matches the current hardware, toolchain
    and model, and which has no in-progress marker, is a no-op that launches nothing
    (RV(status=noop), C(changed=false)).
  - C(changed) is true only when the stage actually ran and succeeded. A failed stage fails the task
    with RV(error_type) and a message that says what to do.
  - In check mode nothing runs and nothing is written. The module reports whether the stage would
    run (C(changed=true), RV(status=would_run)) and why, in RV(reprime_reasons).
  - With C(--diff) the diff shows the recorded signature (before) against the current one (after).
  - Stages can take a long time on a GPU; run them with C(async) and C(poll).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - sglang.prep._container
attributes:
  check_mode:
    support: full
    details: Runs the stage in the runtime's C(check) mode, which writes nothing and launches no server.
  diff_mode:
    support: full
  platform:
    platforms: posix
  async:
    support: full
  action:
    support: none
  bypass_host_loop:
    support: none
options:
  container:
    description:
      - Name or ID of the running prime container.
      - If it is not running the task fails with RV(error_type=container_not_running) and the last lines of C(docker logs).
    type: str
    required: true
  stage:
    description:
      - The stage to run, a name from the runtime's stage registry (C(lookup('sglang.prep.contract', 'STAGE_ORDER'))
        lists them in their order, for example V(deep_gemm), V(moe_tune), V(flashinfer), V(inductor)).
      - Exactly one of O(stage) and O(stages) is required.
    type: str
  stages:
    description:
      - Plan these stages (in this order) instead of running one; nothing runs and nothing is written.
      - Each stage is checked as the runtime's C(check) mode checks it (one toolchain probe for all of them)
        and compared with what the current container run has recorded for it.
    type: list
    elements: str
  operation:
    description:
      - What to do with O(stages). V(plan) asks what each would do and why; V(prime) runs those that need it,
        as one job; V(report) returns the priming state as recorded. In check mode V(prime) is a plan.
    type: str
    choices: [plan, prime, report]
    default: plan
  stage_modes:
    description:
      - "With O(stages), per-stage overrides of O(mode), for example C({deep_gemm: rebuild}). A stage planned
        for V(rebuild) would run whatever its signature says."
    type: dict
    default: {}
  model:
    description:
      - Model path inside the container, under C(/models) (the host's C(<host root>/models)).
    type: str
    required: true
  tp:
    description:
      - Tensor-parallel size the stage server (or tuner) runs with. Part of the stage signature.
    type: int
    default: 1
  mode:
    description:
      - V(ensure) runs the stage only when its recorded signature differs from the current one, or
        an earlier run of it did not finish.
      - V(rebuild) runs it regardless.
      - Check mode (C(--check)) always uses the runtime's C(check) mode.
    type: str
    default: ensure
    choices: [ensure, rebuild]
  port:
    description:
      - Port of the short-lived stage server inside the container. The policy is strict; a busy port
        fails the stage with RV(error_type=port_busy), there is no fallback port.
    type: int
    default: 30000
  lock_timeout:
    description:
      - Seconds to wait for the stage lock held by a concurrent run before failing with
        RV(error_type=lock_timeout). Unset means the runtime default.
    type: float
  ready_timeout:
    description:
      - Seconds to wait for the stage server to become ready before failing with
        RV(error_type=readiness_timeout). Unset means the runtime default.
    type: float
  disk_headroom_mb:
    description:
      - Free space (MiB) the stage requires under C(/profiles) before it starts. Unset means the runtime default.
    type: int
  moe_batch_sizes:
    description:
      - Batch sizes the fused-MoE tuner tunes, one per tuner run. Only used by O(stage=moe_tune).
        Unset means the runtime default.
    type: list
    elements: int
  moe_dtype:
    description:
      - The tuner's C(--dtype) (for example V(auto) or V(fp8_w8a8)). Only used by O(stage=moe_tune).
      - V(auto) (the runtime default) follows the checkpoint's C(quantization_config) (and C(hf_quant_config.json)),
        so the tuner writes the file name SGLang looks up; another value must agree with it, else V(bad_input).
    type: str
  extra_server_args:
    description:
      - Additional SGLang server arguments, one list item per argument (for example C(--attention-backend=flashinfer)).
      - Flags the priming policy sets itself (model, port, TP, memory, KV dtype, CUDA graph, metrics), any abbreviation of
        one (SGLang's parser accepts unambiguous prefixes), C(--config) and C(--cuda-graph-config) fail with C(bad_input)
        before the container is called.
    type: list
    elements: str
    default: []
  serve_max_prompt_tokens:
    description:
      - The longest prompt the V(serve_check) stage sends. Unset means the server's chunked-prefill size.
      - A longer value proves longer contexts (the prompt is sent in chunks); it is part of the check's signature.
    type: int
  require_pinned_stack:
    description:
      - The plan (and so the prime job) compares the container's sglang, torch, triton, flashinfer and deep_gemm
        versions with the ones the priming tables were checked against (SGLang 0.5.23 and its pins).
      - V(false) names each difference in the warnings of the plan and the priming state; V(true) refuses with error_type C(stack_unpinned) before any
        stage runs.
    type: bool
    default: false
  env:
    description:
      - Extra environment variables for the runtime process. Only their names are on the command line
        (C(docker exec -e KEY)); the values reach C(docker exec) through its own environment, so they are in no
        process list, and the module's result (C(cmd), C(invocation), also an async job's result file) shows
        C(VALUE_NOT_RECORDED) in their place.
      - Secrets still belong in the container's env file (the prime role's C(prime_env_file)); the stage processes
        and their logs see these values.
    type: dict
    default: {}
  user:
    description:
      - User the stage runs as inside the container. Every file the stage writes to the bind mounts
        is authored by this user, which the container init maps to the host user's UID.
    type: str
    default: devuser
  pointer:
    description:
      - Container path of the run pointer, if not the default C(/telemetry/container_run_meta.env).
    type: str
  container_spec:
    description:
      - With O(stages) and O(operation=plan) only. The digest of the settings the container should run with (the
        prime role puts it in the container's label C(sglang.prep.spec)); requires O(image).
      - The module first looks whether O(container) runs with exactly these settings on the image O(image) names
        now (RV(container_look)). Only when it does is the plan made; otherwise it returns at once, with
        RV(planned=false), since the container is about to be replaced and a plan for it would be stale.
    type: str
  image:
    description:
      - The image the container should run (a name, resolved to its ID on the host). Used with O(container_spec).
    type: str
notes:
  - A stage that exceeds the task's C(async) limit is abandoned by Ansible but keeps running in the
    container until the runtime's own timeouts end it. Keep C(async) above O(ready_timeout).
seealso:
  - module: sglang.prep.sglang_pointer_wait
  - module: sglang.prep.sglang_cache_inspect
author:
  - Seed 0be3ddc0 maintainers (@maintainers)
"""

EXAMPLES = r"""
- name: Compile DeepGEMM kernels unless they are already primed
  sglang.prep.sglang_stage:
    container: sglang-prep
    stage: deep_gemm
    model: /models/Qwen3-30B-A3B
    tp: 2
  async: 7200
  poll: 5
  register: deep_gemm

- name: Re-tune the fused-MoE configs for two batch sizes
  sglang.prep.sglang_stage:
    container: sglang-prep
    stage: moe_tune
    model: /models/Qwen3-30B-A3B
    mode: rebuild
    moe_batch_sizes: [1, 64]

- name: Show which stages would run, and why, without running anything
  sglang.prep.sglang_stage:
    container: sglang-prep
    stage: "{{ item }}"
    model: /models/Qwen3-30B-A3B
  loop: [deep_gemm, moe_tune, flashinfer, inductor, serve_check]
  check_mode: true
  diff: true

- name: Ask once which stages need to run (the plan), then run only those
  sglang.prep.sglang_stage:
    container: sglang-prep
    stages: [deep_gemm, moe_tune, flashinfer, inductor, serve_check]
    model: /models/Qwen3-30B-A3B
    stage_modes:
      moe_tune: rebuild
  register: plan

- name: Prove that serving compiles nothing, again, now
  sglang.prep.sglang_stage:
    container: sglang-prep
    stage: serve_check
    model: /models/Qwen3-30B-A3B
    mode: rebuild
  register: proof

- name: Run what the plan says, in order
  sglang.prep.sglang_stage:
    container: sglang-prep
    stage: "{{ item }}"
    model: /models/Qwen3-30B-A3B
    mode: "{{ plan.plan[item].planned_mode }}"
  loop: "{{ plan.to_run }}"
"""

RETURN = r"""
status:
  description:
    - Outcome of the stage, V(ok) (ran and succeeded), V(noop) (signature matches, nothing launched),
      V(would_run) (check mode), V(skipped) or V(error).
  returned: with O(stage), when the runtime answered
  type: str
  sample: ok
zero_jit:
  description:
    - With O(stage=serve_check), whether serving compiled nothing (V(true)), compiled something (V(false), the stage
      fails with V(jit_at_serve_time)), or there is no verdict (null, when the check did not run or did not complete).
  returned: with O(stage=serve_check), when the runtime answered
  type: bool
  sample: true
ran:
  description: Whether the stage actually ran (launched a server or the tuner).
  returned: with O(stage), when the runtime answered
  type: bool
  sample: true
error_type:
  description:
    - Classified failure, for example V(port_busy), V(readiness_timeout), V(server_exited_early),
      V(not_enough_memory), V(config_drift), V(lock_timeout), V(container_not_running).
  returned: on failure (of the stage, or of the plan)
  type: str
  sample: readiness_timeout
duration_s:
  description: Wall time of the stage in seconds, as the runtime measured it.
  returned: with O(stage), when the runtime answered
  type: float
  sample: 41.8
reprime_reasons:
  description:
    - Why the stage runs (or would run), one entry per signature field that differs from the recorded one.
    - Empty when nothing was recorded before or nothing differs.
  returned: with O(stage), when the runtime answered
  type: list
  elements: dict
  sample: [{"field": "tp", "old": 1, "new": 2}]
stage_json:
  description: Container path of the stage JSON this result was written to (not written in check mode).
  returned: with O(stage), when the runtime answered
  type: str
  sample: /telemetry/container_runs/container-run-20261129T160000Z-1a2b3c4d/models/tiny-moe-1a2b3c4d/stages/deep_gemm.json
stage_result:
  description:
    - The full stage result from the runtime (the same dict as the stage JSON), with C(signature),
      C(previous_signature), C(artifacts), C(server), C(validation), C(warnings), C(errors) and, on
      failure, C(log_tail) (the last 20 lines of the stage's log).
  returned: with O(stage), when the runtime answered
  type: dict
  sample: {"stage": "deep_gemm", "status": "noop", "ran": false, "duration_s": 0.02}
log_tail:
  description: The last log lines of a failed stage, or the runtime's stderr when it gave no result.
  returned: on failure
  type: list
  elements: str
  sample: ["RuntimeError: Not enough memory. Please try to increase --mem-fraction-static."]
plan:
  description:
    - With O(stages), per stage the runtime's check result (the keys of RV(stage_result)) plus C(planned_mode)
      (V(ensure) or V(rebuild)), C(action), C(action_reason) and C(reason) (one line, worded by the runtime, saying what it would do, and why).
    - C(action) is V(run) (the stage would run, or its check failed and a run records the failure),
      V(record) (primed, but the current container run has no matching stage JSON yet, so an ensure records
      a noop without launching anything) or V(none) (primed and recorded).
  returned: with O(stages), when the runtime answered
  type: dict
  sample:
    flashinfer:
      status: would_run
      action: run
      planned_mode: ensure
      reprime_reasons: [{"field": "signature", "old": null, "new": "no signature at /profiles/flashinfer/tiny-moe-4ee15864/signature.json"}]
to_run:
  description: With O(stages), the stages whose C(action) is not V(none), in the order given.
  returned: with O(stages), when the runtime answered
  type: list
  elements: str
  sample: [flashinfer]
run:
  description:
    - With O(stages), the container run the plan was made for, with the keys M(sglang.prep.sglang_pointer_wait)
      returns (read inside the container) C(run_id), C(manifest) (host path), C(manifest_container),
      C(log_file) (host path of the session log), C(paths.container) and C(paths.host).
  returned: with O(stages), when the runtime answered
  type: dict
  sample:
    run_id: container-run-20261129T160000Z-1a2b3c4d
    log_file: /home/ubuntu/sglang-observability/telemetry/logs/container-run-20261129T160000Z-1a2b3c4d.log
prep_result:
  description: With O(stages), the run's C(prep_result.json) as recorded (empty when no stage has recorded a result yet).
  returned: with O(stages), when the runtime answered
  type: dict
  sample: {"status": "ok", "run": {"signature_group": "6bb7c4ffeb53"}}
state:
  description:
    - With O(stages), the priming state the runtime builds (one model for the plan, the run and the report
      alike; C(docs/runtime.md) describes every key), returned as is. C(run), C(order), C(stages) (one row per
      stage with C(status), C(reason), C(duration_s), C(error_type), C(reprime_reasons), C(cache)),
      C(to_run), C(caches), C(aggregate), C(prep_result_path), C(gpu), C(signature_group).
  returned: with O(stages), when the runtime answered
  type: dict
  sample: {"aggregate": "ok", "to_run": [], "stages": {"deep_gemm": {"status": "noop", "reason": "deep_gemm is primed"}}}
caches:
  description:
    - With O(stages), the cache snapshot, in the shape M(sglang.prep.sglang_cache_inspect) returns (C(caches),
      C(total_bytes), C(partial_stages), C(profiles_root)).
  returned: with O(stages), when the runtime answered
  type: dict
  sample: {"total_bytes": 1503238553, "partial_stages": []}
container_look:
  description:
    - With O(container_spec), whether O(container) runs with those settings on the image O(image) (C(current)),
      and when not, C(reason); also C(exists), C(running), C(spec) (the label seen), C(image_id), C(wanted_image_id).
  returned: with O(container_spec)
  type: dict
  sample: {"current": false, "exists": true, "running": true, "reason": "image sglang:v2 is not the one container sglang-prep runs"}
planned:
  description: With O(container_spec), whether the plan was made (the container is current).
  returned: with O(container_spec)
  type: bool
  sample: true
cmd:
  description: The command that was run, as a list.
  returned: when the command was run
  type: list
  elements: str
  sample: ["/usr/bin/docker", "exec", "-u", "devuser", "sglang-prep", "python3", "-m", "sglang_prep", "stage", "deep_gemm"]
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _docker_exec as dx
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import server_flags
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError


def common_args(params):
    """Runtime CLI options that a stage run and a plan share."""
    return dx.stage_options_argv(params)


def stage_args(params, mode):
    """Runtime CLI arguments of ``python3 -m sglang_prep stage``."""
    return dx.runtime_argv("stage", params["stage"], "--mode", mode, *common_args(params))


def planned_mode(params, stage):
    return params["stage_modes"].get(stage, params["mode"])


def stages_args(params, operation):
    """Runtime CLI arguments of ``python3 -m sglang_prep plan|prime|report``."""
    args = ["--stages"] + list(params["stages"])
    if operation == "report":
        return dx.runtime_argv("report", *(args + ["--model", params["model"]] + (
            ["--pointer", params["pointer"]] if params["pointer"] else [])))
    for stage in params["stages"]:
        if planned_mode(params, stage) == "rebuild":
            args.extend(["--rebuild", stage])
    return dx.runtime_argv(operation, *(args + common_args(params)))


def outcome(module, result):
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


def signature_diff(stage, result):
    return {"before": result.get("previous_signature") or {}, "after": result.get("signature") or {},
            "before_header": "%s signature (recorded)" % stage, "after_header": "%s signature (current)" % stage}


def plan_outcome(module, plan):
    """Ansible result keys from a runtime plan."""
    order = module.params["stages"]
    stages = plan.get("stages") or {}
    missing = [stage for stage in order if stage not in stages]
    if missing:
        module.fail_json(msg="the runtime's plan has no entry for %s" % ", ".join(missing), error_type="internal_error", plan=plan)
    would_run = [stage for stage in order if stages[stage].get("status") == "would_run"]
    out = {
        "state": plan,
        "plan": stages,
        "to_run": list(plan.get("to_run") or []),
        "run": plan.get("run") or {},
        "prep_result": plan.get("prep_result") or {},
        "caches": plan.get("caches") or {},
        # a plan changes nothing; in check mode it is the answer, and a stage that would run is the change
        "changed": bool(module.check_mode and would_run),
        "msg": "; ".join(stages[stage].get("reason") or stage for stage in order),
    }
    if module._diff and module.check_mode:
        out["diff"] = [signature_diff(stage, stages[stage]) for stage in would_run]
    for warning in plan.get("warnings") or []:
        module.warn(warning)
    return out


ENV_NOT_RECORDED = "VALUE_NOT_RECORDED"
# exit codes of a runtime killed by a signal: docker exec reports 128 + N, a local runner -N
KILLED = {137: 9, 143: 15, 130: 2, 129: 1, -9: 9, -15: 15, -2: 2, -1: 1}


def _settled_state(module, docker, rc, settle_s=3.0):
    """The container's state; after a kill code, the state once the engine has caught up (a dying container still
    reads as running for a moment after its exec ended), for at most ``settle_s``."""
    deadline = time.monotonic() + (settle_s if rc in KILLED else 0)
    while True:
        try:
            state = dx.container_state(module, docker, module.params["container"])
        except PrepError:
            return None
        if state is None or not state.get("Running") or time.monotonic() >= deadline:
            return state
        time.sleep(0.2)


def no_result(module, docker, what, rc, out, err, cmd, **extra):
    """The runtime ended without its RESULT line: the container died, or the runner was killed (interrupted),
    else a defect of the runtime (internal_error)."""
    stderr_tail = dx.tail(err) or dx.tail(out)
    last = "; its last output:\n  %s" % ("\n  ".join(stderr_tail) or "(none)")
    state = _settled_state(module, docker, rc)
    if state is None or not state.get("Running"):
        module.fail_json(msg="%s: container %s stopped while the runtime ran (%s), so it gave no RESULT line (exit "
                             "code %d); what it recorded is kept: start the container again (run the role) and prime "
                             "again%s" % (what, module.params["container"], dx.describe_state(state), rc, last),
                         error_type="interrupted", rc=rc, log_tail=stderr_tail, cmd=cmd, **extra)
    if rc in KILLED:
        module.fail_json(msg="%s: the runtime was killed by signal %d, so it gave no RESULT line (exit code %d); the "
                             "stage it ran keeps its in-progress marker and re-runs at the next prime%s"
                             % (what, KILLED[rc], rc, last),
                         error_type="interrupted", rc=rc, log_tail=stderr_tail, cmd=cmd, **extra)
    module.fail_json(msg="%s: the runtime gave no RESULT line (exit code %d)%s" % (what, rc, last),
                     error_type="internal_error", rc=rc, log_tail=stderr_tail, cmd=cmd, **extra)


def run_plan(module, docker, cmd, argv, env, seen):
    """The runtime's plan; ``seen`` (the look at the container, when one was asked for) goes into every answer."""
    params = module.params
    rc, result, out, err = dx.run_runtime(module, docker, params["container"], argv, user=params["user"], env=env)
    if result is None:
        no_result(module, docker, "plan", rc, out, err, cmd, **seen)
    if rc != 0 or result.get("status") == "error":
        module.fail_json(msg="plan: %s" % (result.get("message") or "the runtime exited with code %d" % rc),
                         error_type=result.get("error_type") or "internal_error", rc=rc, cmd=cmd, log_tail=dx.tail(err),
                         **seen)
    answer = plan_outcome(module, result)
    answer.update(seen, cmd=cmd)
    failed = [stage for stage in params["stages"] if answer["plan"][stage].get("status") == "error"]
    if module.check_mode and failed:
        # in check mode the plan is the answer, so a stage that cannot even be checked fails the task
        first = answer["plan"][failed[0]]
        answer.update(error_type=first.get("error_type") or "internal_error", log_tail=first.get("log_tail") or [])
        module.fail_json(**answer)
    module.exit_json(**answer)


def run_stages(module, docker, cmd, argv, env, operation):
    """prime (every stage the plan sends to run, as one job) or report: the runtime's priming state, as is."""
    params = module.params
    rc, state, out, err = dx.run_runtime(module, docker, params["container"], argv, user=params["user"], env=env)
    if state is None:
        no_result(module, docker, operation, rc, out, err, cmd)
    rows = state.get("stages") or {}
    ran = [stage for stage in state.get("order") or params["stages"] if (rows.get(stage) or {}).get("ran")]
    answer = {
        "state": state,
        "cmd": cmd,
        "changed": any((rows[stage].get("status") == "ok") for stage in ran),
        "msg": "; ".join((rows.get(stage) or {}).get("reason") or stage for stage in state.get("order") or params["stages"]),
    }
    for warning in state.get("warnings") or []:
        module.warn(warning)
    if rc != 0 or state.get("status") == "error":
        failed = rows.get(state.get("failed_stage")) or {}
        answer.update(error_type=state.get("error_type") or "internal_error", log_tail=failed.get("log_tail") or dx.tail(err),
                      msg=failed.get("reason") or state.get("message") or "%s: the runtime exited with code %d" % (operation, rc))
        module.fail_json(**answer)
    module.exit_json(**answer)


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            dx.stage_options_spec(),
            container=dict(type="str", required=True),
            stage=dict(type="str"),
            stages=dict(type="list", elements="str"),
            operation=dict(type="str", default="plan", choices=["plan", "prime", "report"]),
            stage_modes=dict(type="dict", default={}),
            mode=dict(type="str", default="ensure", choices=["ensure", "rebuild"]),
            container_spec=dict(type="str"),
            image=dict(type="str"),
        ),
        mutually_exclusive=[("stage", "stages")],
        required_one_of=[("stage", "stages")],
        required_by={"container_spec": ("stages", "image")},
        supports_check_mode=True,
    )
    params = module.params
    # the env values live only in ``raw_env``/``env`` from here on: every result's invocation (and so an async job's
    # result file on the host) names the keys only
    raw_env = dict(params["env"])
    params["env"] = dict.fromkeys(raw_env, ENV_NOT_RECORDED)
    raw_extra = dx.hide_secret_args(params)  # and a secret server option's value is masked there too
    bad_modes = sorted("%s: %s" % (k, v) for k, v in params["stage_modes"].items()
                       if k not in contract.STAGE_ORDER or v not in ("ensure", "rebuild"))
    if bad_modes:
        module.fail_json(msg="stage_modes maps stages (%s) to ensure or rebuild; got %s" % (", ".join(contract.STAGE_ORDER), ", ".join(bad_modes)))
    if params["stages"] is not None and not params["stages"]:
        module.fail_json(msg="stages is empty: name at least one stage to plan", error_type="bad_input")
    unknown = [s for s in ([params["stage"]] if params["stage"] else []) + list(params["stages"] or []) if s not in contract.STAGE_ORDER]
    if unknown:
        module.fail_json(msg="unknown stage %s: the stages are %s" % (", ".join(unknown), ", ".join(contract.STAGE_ORDER)),
                         error_type="bad_input")
    if not params["model"].startswith(contract.MODELS_ROOT + "/"):
        module.fail_json(msg="model %r is not under %s: give the model's path inside the container, "
                             "e.g. %s/<name> for <host root>/models/<name> on the host"
                             % (params["model"], contract.MODELS_ROOT, contract.MODELS_ROOT),
                         error_type="model_not_found")
    if params["tp"] < 1:
        module.fail_json(msg="tp must be 1 or more, got %d" % params["tp"])
    refused = server_flags.extra_args_problems(raw_extra)
    if refused:
        module.fail_json(msg="; ".join(refused), error_type="bad_input", refused=refused)
    env = {}
    for key, value in raw_env.items():
        if not isinstance(value, str):
            module.fail_json(msg="env value of %s must be a string; quote it in YAML (%s: \"...\")" % (key, key))
        env[key] = value
    if contract.ENV_EXTRA_SERVER_ARGS in env:
        module.fail_json(msg="env may not set %s: the module passes extra_server_args in it" % contract.ENV_EXTRA_SERVER_ARGS,
                         error_type="bad_input")
    env.update(dx.extra_args_env(raw_extra))  # secret-bearing extra server args: by environment, not argv

    docker = dx.docker_binary(module, params["docker_cli"])
    operation = "plan" if params["operation"] == "prime" and module.check_mode else params["operation"]
    given = dict(params, extra_server_args=raw_extra)
    if params["stages"]:
        argv = stages_args(given, operation)
    else:
        argv = stage_args(given, "check" if module.check_mode else params["mode"])
    cmd = dx.shown_cmd(dx.exec_argv(docker, params["container"], argv, user=params["user"], env=env))
    if params["container_spec"]:
        if operation != "plan":
            module.fail_json(msg="container_spec goes with operation=plan only", error_type="bad_input")
        look = dx.container_look(module, docker, params["container"], contract.CONTAINER_SPEC_LABEL,
                                 params["container_spec"], params["image"])
        if not look["current"]:
            module.exit_json(changed=False, planned=False, container_look=look,
                             msg="not planned: %s (the container is about to change)" % look["reason"])
        seen = {"container_look": look, "planned": True}
    else:
        seen = {}
    try:
        if not seen:  # (a current container was just seen running)
            dx.require_running(module, docker, params["container"])
    except PrepError as exc:
        module.fail_json(msg="%s: %s" % (params["stage"] or "plan", exc.message), error_type=exc.error_type,
                         log_tail=exc.details.get("log_tail", []), cmd=cmd, **seen)
    if params["stages"] and operation == "plan":
        run_plan(module, docker, cmd, argv, env, seen)
    if params["stages"]:
        run_stages(module, docker, cmd, argv, env, operation)

    rc, result, out, err = dx.run_runtime(module, docker, params["container"], argv, user=params["user"], env=env)
    if result is None:
        no_result(module, docker, params["stage"], rc, out, err, cmd)

    answer = outcome(module, result)
    answer["cmd"] = cmd
    if answer["status"] == "error" or rc != 0:
        if answer["status"] != "error":
            answer["msg"] = "%s: the runtime exited with code %d although it reported status %s" % (
                params["stage"], rc, answer["status"])
        answer["changed"] = False
        answer["error_type"] = answer["error_type"] or "internal_error"
        answer["log_tail"] = result.get("log_tail") or dx.tail(err)
        module.fail_json(**answer)
    module.exit_json(**answer)


def main():
    run_module()


if __name__ == "__main__":
    main()

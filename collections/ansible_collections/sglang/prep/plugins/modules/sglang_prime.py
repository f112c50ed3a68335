#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_prime
short_description: Plan and prime all cache-priming stages of a host, as one job
version_added: 1.2.0
description:
  - Asks the runtime in the prime container, in one C(docker exec) (C(python3 -m sglang_prep plan)), what each of
    O(stages) would do and why, then runs every stage that plan sends to run, in order, as one job
    (C(python3 -m sglang_prep prime)). The runtime stops at the first failure and returns the priming state
    (RV(state)).
  - The job writes a progress file (the run directory's C(progress.json)) that M(sglang.prep.sglang_prime_wait)
    reads while it runs. The prime role runs it with C(async) and C(poll=0), so that each host runs its whole
    stage list without waiting for the others.
  - C(changed) is true when a stage ran and succeeded. A failed stage fails the task with RV(error_type) and a
    message that says what to do.
  - With O(plan_only=true), or in check mode, it runs nothing and returns the plan (RV(plan), RV(to_run)). In check
    mode that plan is the answer (C(changed=true) when a stage would run, and C(--diff) shows each such stage's
    recorded signature against the current one); outside check mode a plan changes nothing.
  - With O(container_spec) it first looks whether O(container) runs with exactly those settings on the image O(image)
    names now (RV(container_look)); only then is the plan made, in the same call. The look is made with a plan only
    (O(plan_only) or check mode); when the container is not current the module returns at once, with
    RV(planned=false), since the container is about to be replaced and a plan for it would be stale.
  - With O(image) but no O(container_spec), the look compares only whether the container runs and its image, plans
    only then, and returns the settings label it saw (C(spec) of RV(container_look)) without comparing it, for the
    caller to compare (the prime role, whose digest of the settings depends on what the look at the host, O(host),
    finds in the same call).
  - To run a single stage use M(sglang.prep.sglang_stage); to read the recorded state, M(sglang.prep.sglang_prime_info).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes.flow
  - sglang.prep._attributes
  - sglang.prep._attributes.runtime
  - sglang.prep._container
  - sglang.prep._container.look
  - sglang.prep._stage_options
options:
  stages:
    description:
      - The stages to plan and prime, in this order; default every stage of the runtime's registry, in its order
        (C(lookup('sglang.prep.contract', 'STAGE_ORDER'))).
      - Each stage is checked as the runtime's C(check) mode checks it (one toolchain probe for all of them) and compared
        with what the current container run has recorded for it.
    type: list
    elements: str
  mode:
    description:
      - V(ensure) runs a stage only when its recorded signature differs from the current one, or an earlier run of
        it did not finish; V(rebuild) runs it regardless.
    type: str
    default: ensure
    choices: [ensure, rebuild]
  stage_modes:
    description:
      - "Per-stage overrides of O(mode), for example C({deep_gemm: rebuild}). A stage planned for V(rebuild) runs
        whatever its signature says."
    type: dict
    default: {}
  plan_only:
    description:
      - Return the plan (what each stage would do, and why) and run nothing, as check mode does, but with
        C(changed=false) and without failing on a stage whose check failed (its plan row says so, and a prime
        would record the failure).
    type: bool
    default: false
  state_only:
    description:
      - With a plan, return it as RV(state) and RV(to_run) only, without RV(plan), RV(run), RV(prep_result) and
        RV(caches), which repeat parts of RV(state) (C(state.stages), C(state.run), C(state.prep_result),
        C(state.caches)), which is about half the result to register. The prime role's first look asks so.
    type: bool
    default: false
  serving:
    description:
      - With O(plan_only) and O(image), and a current container, ask what M(sglang.prep.sglang_serve) would do with these
        settings (the runtime's serve in check mode, which plans every stage against them, then asks whether the serving
        server runs with them) in place of the priming plan, and return its answer as RV(serve). Nothing is started or
        written. This is the serve entry point's first look, so a no-op serve needs no other call.
      - A stage that was not primed for these settings (C(not_primed)) or an unusable run pointer fails the look, with
        its C(error_type).
    type: bool
    default: false
  host:
    description:
      - Look at the host first, in the same call, as M(sglang.prep.sglang_host_info) does with these options, and
        return what it found (RV(host)) with every answer, also a failed one. The prime role's no-op re-prime asks
        the host, the container and the plan of every stage in this one call.
    type: dict
    suboptions:
      host_user:
        description: The account that owns the host directories; empty means the connecting user, or E(SUDO_USER) when
          that is root (O(sglang.prep.sglang_host_info#module:host_user)).
        type: str
        default: ""
      host_root:
        description: The host root, by default under the host user's home (O(sglang.prep.sglang_host_info#module:host_root)).
        type: str
        default: ""
      model:
        description: The model directory, relative to C(<host root>/models) (O(sglang.prep.sglang_host_info#module:model)).
        type: str
        default: ""
      env_file:
        description: The container's env file, looked at but never read into the result
          (O(sglang.prep.sglang_host_info#module:env_file)).
        type: str
        default: ""
      runtime_package:
        description: The runtime package to check against its manifest; empty means no check
          (O(sglang.prep.sglang_host_info#module:runtime_package)).
        type: str
        default: ""
seealso:
  - module: sglang.prep.sglang_stage
  - module: sglang.prep.sglang_prime_info
  - module: sglang.prep.sglang_prime_wait
"""

EXAMPLES = r"""
- name: Ask which stages need to run, and why (runs nothing)
  sglang.prep.sglang_prime:
    container: sglang-prep
    model: /models/Qwen3-30B-A3B
    stage_modes:
      moe_tune: rebuild
    plan_only: true
  register: plan

- name: Prime what the plan sends to run, as one job
  sglang.prep.sglang_prime:
    container: sglang-prep
    model: /models/Qwen3-30B-A3B
    stage_modes:
      moe_tune: rebuild
  async: 7200
  poll: 0
  register: job
  when: plan.to_run | length > 0

- name: Wait for the job, one line per progress change
  sglang.prep.sglang_prime_wait:
    jid: "{{ job.ansible_job_id }}"
    progress: "{{ plan.state.run.progress_file }}"
  when: plan.to_run | length > 0

- name: Preview a prime (nothing runs); --diff shows each changed signature
  sglang.prep.sglang_prime:
    container: sglang-prep
    model: /models/Qwen3-30B-A3B
  check_mode: true
  diff: true
"""

RETURN = r"""
extends_documentation_fragment:
  - sglang.prep._stage_options
error_type:
  description: Classified failure of the plan or of the first stage that failed (the job stops there).
  returned: on failure
  type: str
  sample: readiness_timeout
plan:
  description:
    - Per stage the runtime's check result (the keys of RV(sglang.prep.sglang_stage#module:stage_result)) plus C(planned_mode)
      (V(ensure) or V(rebuild)), C(action), C(action_reason) and C(reason) (one line, worded by the runtime, saying what it would do, and why).
    - C(action) is V(run) (the stage would run, or its check failed and a run records the failure),
      V(record) (primed, but the current container run has no matching stage JSON yet, so an ensure records
      a noop without launching anything) or V(none) (primed and recorded).
  returned: with a plan (check mode, O(plan_only)), unless O(state_only)
  type: dict
  sample:
    flashinfer:
      status: would_run
      action: run
      planned_mode: ensure
      reprime_reasons: [{"field": "signature", "old": null, "new": "no signature at /profiles/flashinfer/tiny-moe-4ee15864/signature.json"}]
to_run:
  description: The stages whose C(action) is not V(none), in the order given.
  returned: with a plan (check mode, O(plan_only))
  type: list
  elements: str
  sample: [flashinfer]
run:
  description:
    - The container run the plan was made for, with the keys M(sglang.prep.sglang_pointer_wait)
      returns (read inside the container) C(run_id), C(manifest) (host path), C(manifest_container),
      C(log_file) (host path of the session log), C(paths.container) and C(paths.host).
  returned: with a plan (check mode, O(plan_only)), unless O(state_only)
  type: dict
  sample:
    run_id: container-run-20261129T160000Z-1a2b3c4d
    log_file: /home/ubuntu/sglang-observability/telemetry/logs/container-run-20261129T160000Z-1a2b3c4d.log
prep_result:
  description: The run's C(prep_result.json) as recorded (empty when no stage has recorded a result yet).
  returned: with a plan (check mode, O(plan_only)), unless O(state_only)
  type: dict
  sample: {"status": "ok", "run": {"signature_group": "6bb7c4ffeb53"}}
state:
  description:
    - The priming state (of the plan, or the job's result) the runtime builds (one model for the plan, the run and the report
      alike; C(docs/runtime.md) describes every key), returned as is. C(run), C(order), C(stages) (one row per
      stage with C(status), C(reason), C(duration_s), C(error_type), C(reprime_reasons), C(cache)),
      C(to_run), C(caches), C(aggregate), C(prep_result_path), C(gpu), C(signature_group).
  returned: when the runtime answered
  type: dict
  sample: {"aggregate": "ok", "to_run": [], "stages": {"deep_gemm": {"status": "noop", "reason": "deep_gemm is primed"}}}
caches:
  description:
    - The cache snapshot, in the shape M(sglang.prep.sglang_cache_inspect) returns (C(caches),
      C(total_bytes), C(partial_stages), C(profiles_root)).
  returned: with a plan (check mode, O(plan_only)), unless O(state_only)
  type: dict
  sample: {"total_bytes": 1503238553, "partial_stages": []}
container_look:
  description:
    - With O(image), whether O(container) runs with the settings O(container_spec) (when given) on the image O(image)
      (C(current)), and when not, C(reason); also C(exists), C(running), C(spec) (the label seen), C(image_id),
      C(wanted_image_id).
  returned: with O(image)
  type: dict
  sample: {"current": false, "exists": true, "running": true, "reason": "image sglang:v2 is not the one container sglang-prep runs"}
planned:
  description: With O(image), whether the plan was made (the container is current).
  returned: with O(image)
  type: bool
  sample: true
serve:
  description:
    - With O(serving), what M(sglang.prep.sglang_serve) would answer in check mode (its return values), C(status) is
      C(noop) when the serving server already runs with these settings.
  returned: with O(serving) and a current container
  type: dict
  sample: {"status": "noop", "changed": false, "action": "none", "zero_jit": true}
host:
  description:
    - With O(host), what the look at the host found, with the keys M(sglang.prep.sglang_host_info) returns
      (C(connected_user), C(host_user), C(host_root), C(root), C(entries), C(env_file), C(runtime), C(model_dir),
      C(model_link)).
  returned: with O(host), also on failure
  type: dict
  sample: {"host_root": "/home/ubuntu/sglang-observability", "host_user": {"name": "ubuntu", "uid": 1000, "found": true}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _priming


def main():
    module = AnsibleModule(
        argument_spec=dict(_priming.several_spec(), plan_only=dict(type="bool", default=False),
                           state_only=dict(type="bool", default=False)),
        required_by={"container_spec": ("image",)},
        supports_check_mode=True,
    )
    _priming.run_prime(module)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_stage
short_description: Run one cache-priming stage inside the SGLang prime container
version_added: 1.0.0
description:
  - Runs one priming stage (DeepGEMM compile, fused-MoE Triton tuning, FlashInfer or TorchInductor
    warm-up) inside a running prime container, as O(user), through the container's C(sglang_prep)
    runtime (C(docker exec -u devuser <container> python3 -m sglang_prep stage ...)).
  - This is the single-stage primitive. To plan and prime every stage of a host as one job, use
    M(sglang.prep.sglang_prime); to read what a run recorded, M(sglang.prep.sglang_prime_info).
  - Stage V(serve_check) primes nothing. It starts the serving configuration, drives the shapes serving meets
    and fails with RV(error_type=jit_at_serve_time) when any cache grew or a JIT log line appeared. Its result
    carries RV(zero_jit) and the evidence (C(serve_check)).
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
  - ansible.builtin.action_common_attributes.flow
  - sglang.prep._attributes
  - sglang.prep._attributes.runtime
  - sglang.prep._container
  - sglang.prep._stage_options
options:
  stage:
    description:
      - The stage to run, a name from the runtime's stage registry (C(lookup('sglang.prep.contract', 'STAGE_ORDER'))
        lists them in their order, for example V(deep_gemm), V(moe_tune), V(flashinfer), V(inductor), V(serve_check)).
      - Required unless the deprecated O(stages) is given.
    type: str
  mode:
    description:
      - V(ensure) runs the stage only when its recorded signature differs from the current one, or
        an earlier run of it did not finish.
      - V(rebuild) runs it regardless.
      - Check mode (C(--check)) always uses the runtime's C(check) mode.
    type: str
    default: ensure
    choices: [ensure, rebuild]
  stages:
    description:
      - Deprecated, removed in 2.0.0. Plans (or with O(operation), primes or reports) several stages, with a
        deprecation warning; use M(sglang.prep.sglang_prime) (plan and prime) and M(sglang.prep.sglang_prime_info)
        (report), whose options and results are the same.
    type: list
    elements: str
  operation:
    description:
      - Deprecated, removed in 2.0.0; only with O(stages). V(plan) is M(sglang.prep.sglang_prime) with
        O(sglang.prep.sglang_prime#module:plan_only=true), V(prime) is M(sglang.prep.sglang_prime), V(report) is
        M(sglang.prep.sglang_prime_info). Unset means V(plan).
    type: str
    choices: [plan, prime, report]
  stage_modes:
    description:
      - Deprecated, removed in 2.0.0; only with O(stages). See O(sglang.prep.sglang_prime#module:stage_modes).
    type: dict
    default: {}
  container_spec:
    description:
      - Deprecated, removed in 2.0.0; only with O(stages). See O(sglang.prep.sglang_prime#module:container_spec).
    type: str
  image:
    description:
      - Deprecated, removed in 2.0.0; only with O(container_spec). See O(sglang.prep.sglang_prime#module:image).
    type: str
seealso:
  - module: sglang.prep.sglang_prime
    description: Plans and primes all stages of a host as one job (what role sglang.prep.prime runs).
  - module: sglang.prep.sglang_prime_info
    description: What the current run recorded, stage by stage.
  - module: sglang.prep.sglang_cache_inspect
    description: The snapshot of the caches the stages fill.
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

- name: Prove that serving compiles nothing, again, now
  sglang.prep.sglang_stage:
    container: sglang-prep
    stage: serve_check
    model: /models/Qwen3-30B-A3B
    mode: rebuild
  register: proof

- name: Show whether the serve check would run, and why, without running anything
  sglang.prep.sglang_stage:
    container: sglang-prep
    stage: serve_check
    model: /models/Qwen3-30B-A3B
  check_mode: true
  diff: true
  register: preview

- name: Name the signature fields that differ from the recorded ones
  ansible.builtin.debug:
    msg: "{{ preview.reprime_reasons | map(attribute='field') | list }}"
"""

RETURN = r"""
extends_documentation_fragment:
  - sglang.prep._stage_options
status:
  description:
    - Outcome of the stage, V(ok) (ran and succeeded), V(noop) (signature matches, nothing launched),
      V(would_run) (check mode), V(skipped) or V(error).
  returned: when the runtime answered
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
  returned: when the runtime answered
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
  returned: when the runtime answered
  type: float
  sample: 41.8
reprime_reasons:
  description:
    - Why the stage runs (or would run), one entry per signature field that differs from the recorded one.
    - Empty when nothing was recorded before or nothing differs.
  returned: when the runtime answered
  type: list
  elements: dict
  sample: [{"field": "tp", "old": 1, "new": 2}]
stage_json:
  description: Container path of the stage JSON this result was written to (not written in check mode).
  returned: when the runtime answered
  type: str
  sample: /telemetry/container_runs/container-run-20261129T160000Z-1a2b3c4d/models/tiny-moe-1a2b3c4d/stages/deep_gemm.json
stage_result:
  description:
    - The full stage result from the runtime (the same dict as the stage JSON), with C(signature),
      C(previous_signature), C(artifacts), C(server), C(validation), C(warnings), C(errors) and, on
      failure, C(log_tail) (the last 20 lines of the stage's log).
  returned: when the runtime answered
  type: dict
  sample: {"stage": "deep_gemm", "status": "noop", "ran": false, "duration_s": 0.02}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _priming


def main():
    module = AnsibleModule(
        argument_spec=dict(
            _priming.stage_spec(),
            stage=dict(type="str"),
            # deprecated, removed in 2.0.0 (sglang_prime and sglang_prime_info)
            stages=dict(type="list", elements="str"),
            operation=dict(type="str", choices=["plan", "prime", "report"]),
            stage_modes=dict(type="dict", default={}),
            container_spec=dict(type="str"),
            image=dict(type="str"),
        ),
        mutually_exclusive=[("stage", "stages")],
        required_one_of=[("stage", "stages")],
        required_by={"container_spec": ("stages", "image"), "operation": ("stages",)},
        supports_check_mode=True,
    )
    _priming.run_stage(module)


if __name__ == "__main__":
    main()

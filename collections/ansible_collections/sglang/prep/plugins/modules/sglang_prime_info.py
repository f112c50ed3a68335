#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_prime_info
short_description: The priming state of a host's current run, as recorded (info module)
version_added: 1.2.0
description:
  - Reads the run pointer on the host, the run manifest it names, and what the run recorded under the host's
    bind-mounted directories (stage JSONs, C(prep_result.json), the progress file, the caches and their
    in-progress markers), and returns the priming state (RV(state)) in the same shape as
    M(sglang.prep.sglang_prime) returns it, built by the same runtime code (C(report)); each stage's row says
    what the run recorded for it, or V(not_run).
  - It reads the host's files only, so it answers while the container is stopped too (the state its last run
    recorded). Nothing runs in the container; it never waits for a pointer (M(sglang.prep.sglang_pointer_wait) does).
  - With O(model), RV(signatures) holds each stage's recorded signature for that model.
  - With O(container), RV(container_state) says whether it runs (a warning when not); with O(container_spec) and
    O(image) too, RV(container_look) says whether it runs with exactly those settings on the image O(image) names now.
extends_documentation_fragment:
  - sglang.prep._attributes
  - sglang.prep._attributes.info
  - sglang.prep._container
  - sglang.prep._container.look
  - sglang.prep._container.pointer
options:
  pointer:
    required: true
  expected_uid:
    description:
      - UID that must own the pointer and the manifest it names (the host user that owns the host root), checked as
        M(sglang.prep.sglang_pointer_wait) checks it; another owner fails with C(error_type=permissions_unexpected),
        naming the owner seen and the C(chown) that fixes it.
      - Unset means ownership is not checked.
    type: int
  model:
    description:
      - Model path inside the container (under C(/models)) whose records to read; default the model whose stage
        finished last in the run.
    type: str
  stages:
    description:
      - The stages to report, in this order; default every stage of the runtime's registry.
    type: list
    elements: str
  container:
    description:
      - Name or ID of the prime container, to say whether it runs (RV(container_state)).
    type: str
seealso:
  - module: sglang.prep.sglang_prime
    description: Plans and primes the stages, and returns the priming state in this shape.
  - module: sglang.prep.sglang_cache_inspect
    description: The snapshot of the caches alone (files, sizes, partial stages).
  - module: sglang.prep.sglang_pointer_wait
    description: Waits for a run pointer that is not there yet.
"""

EXAMPLES = r"""
- name: Read the priming state of the current run
  sglang.prep.sglang_prime_info:
    pointer: /home/ubuntu/sglang-observability/telemetry/container_run_meta.env
    model: /models/Qwen3-30B-A3B
    container: sglang-prep
  register: info

- name: Show the session log and each stage's status
  ansible.builtin.debug:
    msg:
      - "run {{ info.state.run.run_id }}, session log {{ info.state.run.log_file }}"
      - "{{ info.state.stages | dict2items | map(attribute='value') | map(attribute='reason') | list }}"

- name: The stages that failed, with JMESPath
  ansible.builtin.debug:
    msg: "{{ info.state.stages | dict2items | community.general.json_query(\"[?value.status=='error'].key\") }}"
"""

RETURN = r"""
state:
  description:
    - The priming state of the current run as recorded, the runtime's C(report) (C(docs/runtime.md) describes every
      key). C(run) (run id, host paths of the manifest, the session log and the progress file), C(order), C(stages)
      (one row per stage with C(status), C(reason), C(duration_s), C(error_type), C(cache), C(primed_at)),
      C(caches) (the cache snapshot, as M(sglang.prep.sglang_cache_inspect) returns it), C(aggregate),
      C(prep_result) (the run's C(prep_result.json), null when no stage recorded one yet), C(prep_result_path),
      C(gpu), C(signature_group), C(zero_jit), C(progress), C(warnings).
  returned: success
  type: dict
  sample: {"aggregate": "ok", "run": {"run_id": "container-run-20261129T160000Z-1a2b3c4d"},
           "stages": {"deep_gemm": {"status": "noop", "reason": "deep_gemm is primed"}}}
signatures:
  description: With O(model), per stage its recorded C(signature.json) for that model (null when never primed for it).
  returned: with O(model)
  type: dict
  sample: {"deep_gemm": {"written_at": "2026-11-29T16:07:41Z", "run_id": "container-run-20261129T160000Z-1a2b3c4d",
                         "fields": {"tp": 1}}, "moe_tune": null}
container_state:
  description: With O(container), its state in words (C(running), or C(exited, exit code 1), or C(does not exist)).
  returned: with O(container)
  type: str
  sample: running
container_look:
  description:
    - With O(container_spec), whether O(container) runs with those settings on the image O(image) (C(current)), and
      when not, C(reason); also C(exists), C(running), C(spec), C(image_id), C(wanted_image_id).
  returned: with O(container_spec)
  type: dict
  sample: {"current": true, "exists": true, "running": true}
error_type:
  description: Classified failure, V(bad_pointer), V(bad_manifest) or (with O(expected_uid)) V(permissions_unexpected).
  returned: on failure
  type: str
  sample: bad_pointer
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _prime_info, _priming


def main():
    module = AnsibleModule(argument_spec=_priming.info_spec(), supports_check_mode=True)
    _prime_info.run_info(module)


if __name__ == "__main__":
    main()

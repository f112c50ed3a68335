#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_cache_inspect
short_description: Snapshot the kernel caches of a primed host (info module)
version_added: 1.0.0
description:
  - Reads the run manifest (named by the run pointer, or given directly) and reports every kernel
    cache under the host's profiles root, that is whether it exists, its size, file count and latest
    modification time, and whether a stage that writes it was interrupted (partial).
  - Cache locations come only from the manifest's canonical paths; there is no fallback to
    C(~/.cache) or any other default location. A missing pointer or manifest is an error.
extends_documentation_fragment:
  - sglang.prep._attributes
  - sglang.prep._attributes.info
  - sglang.prep._container
  - sglang.prep._container.pointer
options:
  manifest:
    description:
      - Host path of a run manifest, C(<host root>/telemetry/container_runs/<run_id>.json), to inspect
        the caches as seen from that run.
      - Exactly one of O(pointer) and O(manifest) is required.
    type: path
  model:
    description:
      - Model path inside the container (under C(/models)). When given, RV(signatures) holds each stage's
        recorded signature for this model.
    type: str
  container:
    description:
      - Name or ID of the prime container (the action group's shared setting). When given, RV(container_state)
        says whether it runs, and a snapshot taken while it does not run comes with a warning (the caches
        are those of its last run).
    type: str
seealso:
  - module: sglang.prep.sglang_stage
  - module: sglang.prep.sglang_pointer_wait
"""

EXAMPLES = r"""
- name: Snapshot the caches of the current run
  sglang.prep.sglang_cache_inspect:
    pointer: /home/ubuntu/sglang-observability/telemetry/container_run_meta.env
  register: caches

- name: Fail when a stage was interrupted
  ansible.builtin.assert:
    that: caches.partial_stages | length == 0
    fail_msg: "Interrupted stages {{ caches.partial_stages | join(', ') }}: re-run the prime playbook"

- name: Show the recorded DeepGEMM signature of a model
  sglang.prep.sglang_cache_inspect:
    pointer: /home/ubuntu/sglang-observability/telemetry/container_run_meta.env
    model: /models/Qwen3-30B-A3B
  register: primed
"""

RETURN = r"""
container_state:
  description: With O(container), the container's state as C(docker inspect) reports it (for example V(running)).
  returned: when O(container) is given
  type: str
  sample: running
run_id:
  description: The run whose manifest was read.
  returned: success
  type: str
  sample: container-run-20261129T160000Z-1a2b3c4d
manifest:
  description: Host path of the manifest that was read.
  returned: success
  type: str
  sample: /home/ubuntu/sglang-observability/telemetry/container_runs/container-run-20261129T160000Z-1a2b3c4d.json
profiles_root:
  description: Host path of the profiles root the snapshot was taken from.
  returned: success
  type: str
  sample: /home/ubuntu/sglang-observability/profiles
caches:
  description:
    - One entry per cache, keyed by cache name (C(deep_gemm), C(moe_configs), C(flashinfer),
      C(torchinductor), C(triton), ...), each with C(exists), C(size) (bytes), C(count) (files),
      C(latest_mtime) (epoch seconds), C(partial), C(partial_stages), C(path) (container) and C(host_path).
  returned: success
  type: dict
  sample: {"deep_gemm": {"exists": true, "size": 1048576, "count": 12, "latest_mtime": 1796000000.0,
           "partial": false, "partial_stages": [], "path": "/profiles/deep_gemm",
           "host_path": "/home/ubuntu/sglang-observability/profiles/deep_gemm"}}
partial_stages:
  description: Stages whose in-progress marker is present (started and not finished successfully).
  returned: success
  type: list
  elements: str
  sample: ["moe_tune"]
total_bytes:
  description: Sum of the sizes of all caches.
  returned: success
  type: int
  sample: 73400320
signatures:
  description:
    - Recorded signature per stage for O(model) (C(null) when the stage never succeeded for it).
  returned: when O(model) is given
  type: dict
  sample: {"deep_gemm": {"device_name": "NVIDIA H200", "tp": 1}, "moe_tune": null}
error_type:
  description: V(bad_pointer) or V(bad_manifest).
  returned: on failure
  type: str
  sample: bad_pointer
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _cache_inspect


def main():
    module = AnsibleModule(
        argument_spec=dict(
            pointer=dict(type="path"),
            manifest=dict(type="path"),
            model=dict(type="str"),
            container=dict(type="str"),
            docker_cli=dict(type="str", default="docker"),
        ),
        mutually_exclusive=[("pointer", "manifest")],
        required_one_of=[("pointer", "manifest")],
        supports_check_mode=True,
    )
    _cache_inspect.run(module)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_pointer_wait
short_description: Wait for the prime container to publish its run pointer, and read the run it names
version_added: 1.0.0
description:
  - Waits, like M(ansible.builtin.wait_for), until the run pointer C(telemetry/container_run_meta.env)
    exists on the host, then parses it, checks that the run manifest it names exists at its host path,
    and that pointer and manifest are owned by O(expected_uid).
  - The container init writes the pointer (as the unprivileged container user, atomically) only after
    the manifest is complete, so its existence means the run is ready for stages.
  - With O(container) the wait fails at once with RV(error_type=container_not_running) and the last
    lines of C(docker logs) when the container stops (for example because its init refused an
    unwritable directory), instead of waiting for the timeout.
  - Never changes anything, so it always returns C(changed=false).
  - In check mode it does not wait; if the pointer exists it is read as usual, otherwise the module
    returns at once with a note.
extends_documentation_fragment:
  - sglang.prep._attributes
  - sglang.prep._attributes.check_full
  - sglang.prep._container
options:
  path:
    description:
      - Host path of the pointer file, C(<host root>/telemetry/container_run_meta.env).
    type: path
    required: true
  timeout:
    description:
      - Seconds to wait for the pointer before failing with RV(error_type=pointer_timeout).
    type: float
    default: 300
  sleep:
    description:
      - Seconds between checks. Keep it short, the pointer appears as soon as the init is done.
    type: float
    default: 0.2
  expected_uid:
    description:
      - UID that must own the pointer and the manifest (the host user that owns the host root).
      - Defaults to the UID the module runs as.
    type: int
  container:
    description:
      - Name or ID of the prime container. When given, the wait fails fast if the container is not running.
    type: str
notes:
  - The prime role deletes a stale pointer before it (re)starts the container, so the pointer found
    here always belongs to the container's current run.
seealso:
  - module: ansible.builtin.wait_for
    description: The plain wait for a file; this module also reads and checks the run the pointer names.
  - module: sglang.prep.sglang_stage
    description: Runs a stage in the run it waited for.
"""

EXAMPLES = r"""
- name: Wait for the container to publish its run
  sglang.prep.sglang_pointer_wait:
    path: /home/ubuntu/sglang-observability/telemetry/container_run_meta.env
    container: sglang-prep
    timeout: 120
  register: run

- name: Show where this run logs
  ansible.builtin.debug:
    msg: "Run {{ run.run_id }} logs to {{ run.log_file }}"

- name: Wait for the run of a host primed by root for the user ubuntu (UID 1000)
  sglang.prep.sglang_pointer_wait:
    path: /home/ubuntu/sglang-observability/telemetry/container_run_meta.env
    expected_uid: 1000
    timeout: 60
"""

RETURN = r"""
run_id:
  description: The run ID of the container's current run.
  returned: when the pointer was found
  type: str
  sample: container-run-20261129T160000Z-1a2b3c4d
manifest:
  description: Host path of the run manifest.
  returned: when the pointer was found
  type: str
  sample: /home/ubuntu/sglang-observability/telemetry/container_runs/container-run-20261129T160000Z-1a2b3c4d.json
manifest_container:
  description: Container path of the run manifest.
  returned: when the pointer was found
  type: str
  sample: /telemetry/container_runs/container-run-20261129T160000Z-1a2b3c4d.json
log_file:
  description: Host path of the run's session log (one per run; init and every stage append to it).
  returned: when the pointer was found
  type: str
  sample: /home/ubuntu/sglang-observability/telemetry/logs/container-run-20261129T160000Z-1a2b3c4d.log
paths:
  description: The manifest's C(paths), with a C(container) and a C(host) dict of the same keys.
  returned: when the pointer was found
  type: dict
  sample: {"container": {"telemetry_root": "/telemetry"}, "host": {"telemetry_root": "/home/ubuntu/sglang-observability/telemetry"}}
run_manifest:
  description: The whole run manifest (services, telemetry surfaces, storage, cache snapshot at start).
  returned: when the pointer was found
  type: dict
  sample: {"container_run_id": "container-run-20261129T160000Z-1a2b3c4d", "image": "sglang-prep:latest"}
found:
  description: Whether the pointer was found (always true outside check mode, where a missing pointer fails).
  returned: always
  type: bool
  sample: true
elapsed:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 1.6
error_type:
  description: V(pointer_timeout), V(bad_pointer), V(bad_manifest), V(permissions_unexpected) or V(container_not_running).
  returned: on failure
  type: str
  sample: bad_manifest
log_tail:
  description: The last lines of C(docker logs) when the container is not running.
  returned: when O(container) is given and the container is not running
  type: list
  elements: str
  sample: ["permissions_unexpected: /profiles is owned by uid 0, expected 1000"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _pointer_wait


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            timeout=dict(type="float", default=300),
            sleep=dict(type="float", default=0.2),
            expected_uid=dict(type="int"),
            container=dict(type="str"),
            docker_cli=dict(type="str", default="docker"),
        ),
        supports_check_mode=True,
    )
    _pointer_wait.run(module)


if __name__ == "__main__":
    main()

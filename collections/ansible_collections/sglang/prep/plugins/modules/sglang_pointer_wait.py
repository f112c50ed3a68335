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
  - ansible.builtin.action_common_attributes
  - sglang.prep._container
attributes:
  check_mode:
    support: full
    details: Reads an existing pointer; returns at once (without waiting) when there is none.
  diff_mode:
    support: none
  platform:
    platforms: posix
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
  - module: sglang.prep.sglang_stage
author:
  - Seed 0be3ddc0 maintainers (@maintainers)
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

- name: Read the pointer of a host primed by root for the user ubuntu (UID 1000)
  sglang.prep.sglang_pointer_wait:
    path: /home/ubuntu/sglang-observability/telemetry/container_run_meta.env
    expected_uid: 1000
    timeout: 0
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

import os
import pwd
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _docker_exec as dx
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import manifest as manifests
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import pointer as pointers
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError

CONTAINER_CHECK_INTERVAL = 0.5


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_owner(path, expected_uid, what):
    seen = os.stat(path).st_uid
    if seen != expected_uid:
        raise PrepError("permissions_unexpected",
                        "%s %s is owned by %s (uid %d), expected %s (uid %d): only the container user, which has the "
                        "host user's UID, may write it. Remove it, fix ownership with `sudo chown -R %s: %s` and "
                        "restart the container" % (what, path, user_name(seen), seen, user_name(expected_uid), expected_uid,
                                                   user_name(expected_uid), os.path.dirname(path)),
                        path=path, owner_seen=seen, owner_expected=expected_uid)


def read_run(pointer_path, expected_uid):
    """Parse the pointer and its manifest on the host; PrepError says what is wrong."""
    ptr = pointers.read_pointer(pointer_path)
    check_owner(pointer_path, expected_uid, "pointer")
    if not ptr["host"]:
        raise PrepError("bad_pointer", "pointer %s has no %s line: the container was started without the host "
                        "telemetry root in its environment (start it with the sglang.prep.prime role)"
                        % (pointer_path, contract.POINTER_HOST_KEY), path=pointer_path)
    telemetry = os.path.dirname(os.path.abspath(pointer_path))
    if not os.path.abspath(ptr["host"]).startswith(telemetry + os.sep):
        raise PrepError("bad_pointer", "pointer %s names manifest %s, which is not under %s: the pointer belongs to a "
                        "container started with another host root" % (pointer_path, ptr["host"], telemetry),
                        path=pointer_path)
    data = manifests.read_manifest(ptr["host"])
    check_owner(ptr["host"], expected_uid, "manifest")
    cpaths = data["paths"]["container"]
    hpaths = data["paths"].get("host") or {}
    return {
        "run_id": data.get("container_run_id"),
        "manifest": ptr["host"],
        "manifest_container": ptr["container"],
        "log_file": hpaths.get("log_file") or manifests.host_path(data, cpaths.get("log_file")),
        "paths": {"container": cpaths, "host": hpaths},
        "run_manifest": data,
    }


def wait(module, docker, params, started):
    if params["timeout"] <= 0:
        return read_run(params["path"], params["expected_uid"])
    deadline = started + params["timeout"]
    next_container_check = started
    while True:
        if os.path.exists(params["path"]):
            return read_run(params["path"], params["expected_uid"])
        now = time.monotonic()
        if params["container"] and now >= next_container_check:
            dx.require_running(module, docker, params["container"])
            next_container_check = now + CONTAINER_CHECK_INTERVAL
        if now >= deadline:
            where = (" although container %s is running: its init has not finished; see `docker logs %s`"
                     % (params["container"], params["container"])) if params["container"] else ""
            raise PrepError("pointer_timeout", "pointer %s did not appear within %g s%s"
                            % (params["path"], params["timeout"], where), path=params["path"])
        time.sleep(min(params["sleep"], max(deadline - now, 0.01)))


def run_module():
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
    params = module.params
    if params["expected_uid"] is None:
        params["expected_uid"] = os.getuid()
    if params["sleep"] <= 0 or params["timeout"] < 0:
        module.fail_json(msg="sleep must be positive and timeout not negative")
    started = time.monotonic()
    result = {"changed": False, "found": False}
    try:
        if module.check_mode and not os.path.exists(params["path"]):
            result["msg"] = "pointer %s does not exist yet; in check mode the module does not wait for it" % params["path"]
            result["elapsed"] = 0.0
            module.exit_json(**result)
        docker = dx.docker_binary(module, params["docker_cli"]) if params["container"] else None
        result.update(wait(module, docker, params, started))
    except PrepError as exc:
        result.update(exc.as_dict())
        result["elapsed"] = round(time.monotonic() - started, 3)
        module.fail_json(msg=exc.message, **{k: v for k, v in result.items() if k != "message"})
    result["found"] = True
    result["elapsed"] = round(time.monotonic() - started, 3)
    result["msg"] = "run %s is ready (manifest %s)" % (result["run_id"], result["manifest"])
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()

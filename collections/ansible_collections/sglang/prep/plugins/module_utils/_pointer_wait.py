# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""The body of the module sglang_pointer_wait (its file holds the argument spec and the documentation)."""

from __future__ import annotations

import os
import pwd
import time
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


def load_run(pointer_path, expected_uid=None):
    """(pointer, manifest) of the run the pointer names, read on the host (sglang_pointer_wait and sglang_prime_info
    alike): the pointer has its host line, the manifest it names is under the pointer's telemetry root and, with
    ``expected_uid``, both are owned by that UID. PrepError says what is wrong."""
    ptr = pointers.read_pointer(pointer_path)
    if expected_uid is not None:
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
    if expected_uid is not None:
        check_owner(ptr["host"], expected_uid, "manifest")
    return ptr, data


def read_run(pointer_path, expected_uid):
    """The run the pointer names, as sglang_pointer_wait returns it; PrepError says what is wrong."""
    ptr, data = load_run(pointer_path, expected_uid)
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


def run(module):
    """The module's work, on its checked arguments."""
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

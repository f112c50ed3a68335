# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""The body of the module sglang_cache_inspect (its file holds the argument spec and the documentation)."""

from __future__ import annotations

import json
import os
from ansible_collections.sglang.prep.plugins.module_utils import _docker_exec as dx
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import caches, contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import manifest as manifests
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import pointer as pointers
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError


def manifest_host_path(params):
    if params["manifest"]:
        return params["manifest"]
    ptr = pointers.read_pointer(params["pointer"])
    if not ptr["host"]:
        raise PrepError("bad_pointer", "pointer %s has no %s line, so the manifest's host path is unknown; "
                        "restart the container with the sglang.prep.prime role" % (params["pointer"], contract.POINTER_HOST_KEY),
                        path=params["pointer"])
    return ptr["host"]


def read_signature(data, stage, model):
    path = manifests.host_path(data, contract.signature_path(stage, model))
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        return {"unreadable": "%s: %s" % (path, exc)}


def inspect(params):
    path = manifest_host_path(params)
    data = manifests.read_manifest(path)
    profiles_root = (data["paths"].get("host") or {}).get("profiles_root")
    if not profiles_root:
        raise PrepError("bad_manifest", "manifest %s has no paths.host.profiles_root: the container was started "
                        "without SGLANG_PREP_HOST_PROFILES_ROOT (start it with the sglang.prep.prime role)" % path, path=path)
    snap = caches.snapshot(profiles_root=profiles_root, host_profiles_root=profiles_root)
    result = {
        "run_id": data.get("container_run_id"),
        "manifest": path,
        "profiles_root": profiles_root,
        "caches": snap,
        "partial_stages": caches.in_progress_stages(profiles_root),
        "total_bytes": sum(entry["size"] for entry in snap.values()),
    }
    if params["model"]:
        result["signatures"] = {stage: read_signature(data, stage, params["model"]) for stage in contract.STAGE_ORDER}
    return result


def run(module):
    """The module's work, on its checked arguments."""
    try:
        result = inspect(module.params)
    except PrepError as exc:
        module.fail_json(msg=exc.message, changed=False, error_type=exc.error_type)
    if module.params["container"]:
        try:
            state = dx.container_state(module, dx.docker_binary(module, module.params["docker_cli"]), module.params["container"])
        except PrepError as exc:
            module.fail_json(msg=exc.message, changed=False, error_type=exc.error_type)
        result["container_state"] = dx.describe_state(state)
        if not (state or {}).get("Running"):
            module.warn("container %s is not running (%s): these are the caches as its last run left them"
                        % (module.params["container"], result["container_state"]))
    partial = result["partial_stages"]
    result["msg"] = "%d caches, %d bytes%s" % (len(result["caches"]), result["total_bytes"],
                                               "; interrupted stages: " + ", ".join(partial) if partial else "")
    module.exit_json(changed=False, **result)

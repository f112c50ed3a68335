# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""The body of sglang_prime_info: the priming state of the current run as recorded, read on the host.

Apart from _priming (the bodies of sglang_stage and sglang_prime) so that those modules do not import the host-side
state model (pointer, manifest, ledger, signatures) they never use: every no-op re-prime runs sglang_prime.
"""

from __future__ import annotations

import os

from ansible_collections.sglang.prep.plugins.module_utils import _docker_exec as dx
from ansible_collections.sglang.prep.plugins.module_utils import _pointer_wait as pointer_runs
from ansible_collections.sglang.prep.plugins.module_utils._priming import _fail_bad, check_model, look, stage_names
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import ledger
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import signature as signatures
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import state as states
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.layout import Layout
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError


def host_view(pointer_path, model, expected_uid=None):
    """The current run as the state model reads it, on the host: the pointer (a host path), the manifest it names
    (both owned by ``expected_uid`` when given), and the host roots of the manifest in place of the container's."""
    ptr, data = pointer_runs.load_run(pointer_path, expected_uid)
    hpaths = data["paths"].get("host") or {}
    if not hpaths.get("telemetry_root") or not hpaths.get("profiles_root"):
        raise PrepError("bad_manifest", "manifest %s has no paths.host telemetry_root and profiles_root: the container "
                        "was started without the host roots (start it with the sglang.prep.prime role)" % ptr["host"],
                        path=ptr["host"])
    return HostRunView((ptr, data), Layout(hpaths["telemetry_root"], hpaths["profiles_root"]), model)


class HostRunView(states.RunView):
    """states.RunView over the host's directories (the run's bind mounts) instead of the container's."""

    def __init__(self, loaded, layout, model):
        states.RunView.__init__(self, loaded=loaded, model=model)
        self.layout = layout
        self.model = model or ledger.latest_model(layout, self.run_id)


def recorded_signatures(view, model):
    """{stage: its recorded signature.json for ``model`` (None when never primed for it)}."""
    out = {}
    for stage in contract.STAGE_ORDER:
        path = view.layout.fs(contract.signature_path(stage, model))
        data, problem = signatures.read_record(path) if os.path.exists(path) else (None, None)
        out[stage] = data if problem is None else {"unreadable": problem}
    return out


def run_info(module):
    """sglang_prime_info: the priming state of the current run as recorded, read on the host; changes nothing."""
    params = module.params
    order = stage_names(module)
    check_model(module, params["model"])
    if params["container_spec"] and not (params["image"] and params["container"]):
        _fail_bad(module, "container_spec needs container and image: the look compares them")
    result = {"changed": False}
    try:
        view = host_view(params["pointer"], params["model"], params["expected_uid"])
        result["state"] = states.report(order, view.model, view=view)
    except PrepError as exc:
        module.fail_json(msg=exc.message, error_type=exc.error_type, changed=False)
    if params["model"]:
        result["signatures"] = recorded_signatures(view, params["model"])
    if params["container"]:
        docker = dx.docker_binary(module, params["docker_cli"])
        result["container_state"] = _described_state(module, docker, params["container"])
        if params["container_spec"]:
            result["container_look"] = look(module, docker, params)
    state = result["state"]
    result["msg"] = "run %s: %s" % (state["run"]["run_id"], state["aggregate"] or "no stage recorded yet")
    module.exit_json(**result)


def _described_state(module, docker, container):
    try:
        state = dx.container_state(module, docker, container)
    except PrepError as exc:
        module.fail_json(msg=exc.message, changed=False, error_type=exc.error_type)
    if not (state or {}).get("Running"):
        module.warn("container %s is not running (%s): this is the state its last run recorded"
                    % (container, dx.describe_state(state)))
    return dx.describe_state(state)

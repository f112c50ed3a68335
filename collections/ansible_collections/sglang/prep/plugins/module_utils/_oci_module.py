# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""The Ansible side of sglang_bundle_publish and sglang_bundle_pull: the shared argument spec and the engine."""

from __future__ import annotations

from ansible_collections.sglang.prep.plugins.module_utils import _oci_bundle as ob


def registry_spec():
    return dict(
        registry=dict(type="str", required=True),
        registry_username=dict(type="str"),
        registry_password=dict(type="str", no_log=True),
        registry_auth_dir=dict(type="path"),
        docker_cli=dict(type="str", default="docker"),
        timeout=dict(type="int", default=600),
    )


REQUIRED_TOGETHER = [("registry_username", "registry_password")]
MUTUALLY_EXCLUSIVE = [("registry_username", "registry_auth_dir")]


def engine(module):
    """The host's docker CLI for the registry (bad input fails the module before anything runs)."""
    params = module.params
    docker = params["docker_cli"] if "/" in params["docker_cli"] else module.get_bin_path(params["docker_cli"], required=True)
    try:
        ob.check_repository(params["registry"])
    except ob.OciError as exc:
        module.fail_json(msg=exc.message, error_type=exc.error_type)
    if params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second", error_type="bad_input")
    return ob.Engine(docker, params["registry"], config_dir=params["registry_auth_dir"], username=params["registry_username"],
                     password=params["registry_password"], timeout=params["timeout"])


def fail(module, exc, **extra):
    """A classified failure; the password never reaches the message."""
    details = dict((k, v) for k, v in exc.details.items() if isinstance(v, (str, int, float, bool, type(None))))
    module.fail_json(msg=ob.scrub(exc.message, [module.params.get("registry_password")]), error_type=exc.error_type,
                     changed=False, **dict(details, **extra))

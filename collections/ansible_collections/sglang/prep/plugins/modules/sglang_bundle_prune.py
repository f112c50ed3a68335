#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_bundle_prune
short_description: Remove cache bundle artifacts from an OCI registry, keeping the newest per model and those hosts use
version_added: 1.2.0
description:
  - Lists the bundle artifacts in O(registry) (tags C(<model>-g<group key>) with the labels
    M(sglang.prep.sglang_bundle_publish) sets; other tags are left alone). An artifact of a signature group that is not
    in O(groups_in_use) is removed; of the rest, each model keeps its O(keep) newest (by creation time). Each removed
    artifact's signature (C(sha256-<hex>.sig)) goes with it.
  - Uses C(skopeo) (C(list-tags), C(inspect), C(delete)) where it runs, normally the controller; the Docker CLI cannot
    list or delete in a registry. The registry must allow deletes (Distribution C(storage.delete.enabled)); its garbage
    collection frees the space.
  - In check mode, lists what it would delete (RV(would_delete)) and deletes nothing.
extends_documentation_fragment:
  - sglang.prep._attributes
  - sglang.prep._attributes.check_full
options:
  registry:
    description: The repository, C(host[:port]/path).
    type: str
    required: true
  keep:
    description: How many artifacts (signature groups) to keep per model, newest first.
    type: int
    default: 3
  groups_in_use:
    description:
      - The signature groups hosts of the inventory have. Omit it to keep every group (only O(keep) applies).
    type: list
    elements: str
  registry_username:
    description: Registry user (with O(registry_password)); the credentials go to skopeo through a private auth file.
    type: str
  registry_password:
    description: Password or token (keep it in Ansible Vault). Never logged or returned.
    type: str
  registry_auth_dir:
    description: A Docker config directory (with C(config.json)) to authenticate with instead.
    type: path
  ca_file:
    description: A CA bundle the registry's certificate must chain to (default the system's and C(/etc/docker/certs.d)).
    type: path
  ca:
    description:
      - Or the CA bundle as PEM text (what C(prime_bundle_registry_ca) holds), written into a private certificate
        directory for skopeo only. Text with a private key or no certificate is refused with V(bad_input).
    type: str
    version_added: 1.2.0
  skopeo_cli:
    description: The skopeo CLI, a name looked up on E(PATH) or an absolute path.
    type: str
    default: skopeo
requirements:
  - skopeo where the module runs (C(apt-get install skopeo)).
seealso:
  - module: sglang.prep.sglang_bundle_publish
"""

EXAMPLES = r"""
- name: Keep the 2 newest bundles per model
  sglang.prep.sglang_bundle_prune:
    registry: registry.example.org/sglang-prep-caches
    keep: 2
    groups_in_use: [4b1f0c2d3e4f5a6b]
  delegate_to: localhost
"""

RETURN = r"""
deleted:
  description: The artifacts deleted (tag, digest, model, group_key, created, reason).
  returned: success, not in check mode
  type: list
  elements: dict
would_delete:
  description: In check mode, the artifacts it would delete.
  returned: check mode
  type: list
  elements: dict
kept:
  description: The artifacts kept.
  returned: success
  type: list
  elements: dict
error_type:
  description: V(registry_auth), V(registry_tls), V(registry_unavailable), V(registry_error), V(bad_input).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _oci_bundle as ob
from ansible_collections.sglang.prep.plugins.module_utils import _oci_prune as op


def main():
    module = AnsibleModule(
        argument_spec=dict(registry=dict(type="str", required=True), keep=dict(type="int", default=3),
                           groups_in_use=dict(type="list", elements="str"), registry_username=dict(type="str"),
                           registry_password=dict(type="str", no_log=True), registry_auth_dir=dict(type="path"),
                           ca_file=dict(type="path"), ca=dict(type="str", no_log=True),
                           skopeo_cli=dict(type="str", default="skopeo")),
        required_together=[("registry_username", "registry_password")],
        mutually_exclusive=[("registry_username", "registry_auth_dir"), ("ca_file", "ca")],
        supports_check_mode=True)
    params = module.params
    if params["keep"] < 1:
        module.fail_json(msg="keep must be at least 1 (the newest artifact of each model stays)", error_type="bad_input")
    skopeo = params["skopeo_cli"] if "/" in params["skopeo_cli"] else module.get_bin_path(params["skopeo_cli"])
    if not skopeo:
        module.fail_json(msg="skopeo is not installed here (apt-get install skopeo): bundle_prune lists and deletes "
                             "registry artifacts with it", error_type="bad_input")
    try:
        with op.Skopeo(skopeo, params["registry"], params["registry_username"], params["registry_password"],
                       params["registry_auth_dir"], params["ca_file"], ca_text=params["ca"]) as client:
            result = op.prune(client, params["keep"], params["groups_in_use"], module.check_mode)
    except ob.OciError as exc:
        module.fail_json(msg=ob.scrub(exc.message, [params["registry_password"]]), error_type=exc.error_type)
    gone = result.get("deleted", result.get("would_delete"))
    verb = "would delete" if module.check_mode else "deleted"
    module.exit_json(changed=bool(gone), msg="%s %d artifact(s), kept %d" % (verb, len(gone), len(result["kept"])), **result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_bundle_pull
short_description: Fetch this host's signature group's cache bundle from an OCI registry, pinned by digest and verified
version_added: 1.2.0
description:
  - Asks O(registry) for the artifact of the signature group O(group_key) of O(model) (the tag
    C(<model slug>-g<group key>) that M(sglang.prep.sglang_bundle_publish) pushes) with the host's Docker engine. When
    there is none, returns RV(status=absent) and changes nothing.
  - The tag is resolved once; from then on only the manifest digest counts, C(<registry>@sha256:...), for its signature,
    its labels and its bundle.
  - With O(allowed_signers), the signature (C(sha256-<hex>.sig)) must exist and verify with C(ssh-keygen -Y verify) in the
    namespace C(sglang-prep-bundle) for a key the file lists, before anything is unpacked; otherwise V(bundle_untrusted).
  - The bundle is streamed out of the image into O(dest)C(/<sha256>.tar.gz) (memory flat in its size) and its sha256
    checked against the image's label. Installing it is M(sglang.prep.sglang_cache_bundle)'s job, which checks it again.
  - The local images are removed afterwards. The group this host has is recorded in
    O(dest)C(/registry-group.<model key>.json), which the playbook C(sglang.prep.bundle_prune) reads.
  - In check mode, fetches nothing.
extends_documentation_fragment:
  - sglang.prep._attributes
  - sglang.prep._attributes.check_full
  - sglang.prep._oci_registry
options:
  model:
    description: The model path inside the container (under C(/models)); its last component names the tag.
    type: str
    required: true
  group_key:
    description: The host's signature group (the plan's C(bundle_group)).
    type: str
    required: true
  dest:
    description: The host directory the bundle is written to (normally C(<host root>/profiles/.bundles)).
    type: path
    required: true
  allowed_signers:
    description:
      - An C(ssh-keygen) allowed-signers file on this host. When set, an unsigned or wrongly signed artifact is refused
        with V(bundle_untrusted) and nothing is written.
    type: path
seealso:
  - module: sglang.prep.sglang_bundle_publish
  - module: sglang.prep.sglang_cache_bundle
"""

EXAMPLES = r"""
- name: Look for this host's signature group in the registry
  sglang.prep.sglang_bundle_pull:
    registry: registry.example.org/sglang-prep-caches
    registry_auth_dir: /etc/sglang-prep/docker
    model: /models/Qwen3-30B-A3B
    group_key: "{{ plan.state.bundle_group }}"
    dest: /home/ubuntu/sglang-observability/profiles/.bundles
    allowed_signers: /etc/sglang-prep/allowed_signers
  register: pulled
"""

RETURN = r"""
status:
  description: V(pulled) (the bundle is at RV(path)) or V(absent) (the registry has no artifact of this group).
  returned: success
  type: str
  sample: pulled
tag:
  description: The tag looked up.
  returned: success
  type: str
digest:
  description: The manifest digest the tag resolved to (the pin).
  returned: when pulled
  type: str
ref:
  description: C(<registry>@<digest>).
  returned: when pulled
  type: str
path:
  description: The bundle's host path.
  returned: when pulled
  type: str
sha256:
  description: The bundle's sha256 (checked against the image's label).
  returned: when pulled
  type: str
signer:
  description: The allowed-signers principal whose key signed the digest.
  returned: when pulled with O(allowed_signers)
  type: str
source_host:
  description: The host that built the bundle.
  returned: when pulled
  type: str
builder_compile_s:
  description: Seconds the builder spent priming the bundled stages (what this host is spared).
  returned: when pulled
  type: float
archive_bytes:
  description: The bundle's size.
  returned: when pulled
  type: int
pull_s:
  description: Seconds the lookup, verification and download took.
  returned: success
  type: float
error_type:
  description:
    - V(bundle_untrusted), V(bundle_corrupt), V(registry_auth), V(registry_tls), V(registry_unavailable), V(registry_error),
      V(bad_input).
  returned: failure
  type: str
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _oci_bundle as ob
from ansible_collections.sglang.prep.plugins.module_utils import _oci_module as om
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract


def main():
    module = AnsibleModule(argument_spec=dict(om.registry_spec(), model=dict(type="str", required=True),
                                              group_key=dict(type="str", required=True, no_log=False),
                                              dest=dict(type="path", required=True), allowed_signers=dict(type="path")),
                           required_together=om.REQUIRED_TOGETHER, mutually_exclusive=om.MUTUALLY_EXCLUSIVE,
                           supports_check_mode=True)
    params = module.params
    if not re.match(r"^[0-9a-f]{1,64}$", params["group_key"]):
        module.fail_json(msg="group_key %r is not hex digits (the plan's bundle_group)" % params["group_key"], error_type="bad_input")
    engine = om.engine(module)
    slug = contract.model_slug(params["model"])
    if module.check_mode:
        module.exit_json(changed=False, status="would_look", tag=ob.tag_for(slug, params["group_key"]))
    try:
        with engine:
            result = ob.fetch(engine, slug, params["group_key"], params["dest"], params["allowed_signers"])
    except ob.OciError as exc:
        om.fail(module, exc, tag=ob.tag_for(slug, params["group_key"]))
    try:  # the group this host has, for the registry's retention (playbook sglang.prep.bundle_prune)
        ob.record_group(params["dest"], contract.model_key(params["model"]),
                        {"model": params["model"], "group_key": params["group_key"], "registry": params["registry"]})
    except OSError as exc:
        module.warn("could not record the signature group in %s: %s" % (params["dest"], exc))
    msg = ("no artifact %s in %s" % (result["tag"], params["registry"]) if result["status"] == "absent"
           else "fetched %s (%s, built on %s)" % (result["ref"], "signed by %s" % result["signer"] if result["signer"] else "unsigned",
                                                  result["source_host"]))
    module.exit_json(changed=result["status"] == "pulled", msg=msg, **result)


if __name__ == "__main__":
    main()

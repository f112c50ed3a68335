#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_bundle_publish
short_description: Push a packed cache bundle to an OCI registry as a signed artifact, with the host's Docker engine
version_added: 1.2.0
description:
  - Pushes a bundle made by M(sglang.prep.sglang_cache_bundle) with O(sglang.prep.sglang_cache_bundle#module:state=packed) to
    O(registry) as an image with no base (C(FROM scratch)) that holds the bundle and its manifest, made with C(docker import)
    and pushed with C(docker push), so the host's own login, mirrors and TLS trust apply, and nothing else is needed on the host.
  - The tag is derived from the signature group, C(<model slug>-g<group key>); a later push of the same group moves the tag.
    The image's labels (C(org.sglang-prep.bundle.*), Docker's form of annotations) carry the model, the group key, each
    stage's signature digest, the collection version, the source host, the creation time, the bundle's sha256 and the
    seconds the builder spent priming.
  - With O(signing_key), the manifest digest is signed with C(ssh-keygen -Y sign) in the namespace C(sglang-prep-bundle) and
    the signature is pushed as C(sha256-<hex>.sig) beside it.
  - The local images are removed afterwards; the bundle file stays.
  - In check mode, pushes nothing and reports the tag it would push.
extends_documentation_fragment:
  - sglang.prep._attributes
  - sglang.prep._attributes.check_full
  - sglang.prep._oci_registry
options:
  bundle:
    description:
      - The bundle's host path, C(<host root>/profiles/.bundles/<sha256>.tar.gz) (RV(sglang.prep.sglang_cache_bundle#module:host_path)).
        Its manifest C(<sha256>.json) must lie beside it.
    type: path
    required: true
  signing_key:
    description: An SSH private key on this host (no passphrase) that signs the manifest digest. Without it the artifact is unsigned.
    type: path
seealso:
  - module: sglang.prep.sglang_cache_bundle
    description: Packs the bundle this module pushes (state=packed), and installs it on a receiver (state=installed).
  - module: sglang.prep.sglang_bundle_pull
    description: Fetches the bundle on a receiver, pinned by digest and verified.
"""

EXAMPLES = r"""
- name: Publish the builder's bundle
  sglang.prep.sglang_bundle_publish:
    bundle: "{{ packed.host_path }}"
    registry: registry.example.org/sglang-prep-caches
    registry_username: "{{ vault_registry_user }}"
    registry_password: "{{ vault_registry_password }}"
    signing_key: /etc/sglang-prep/bundle-signing-key
"""

RETURN = r"""
digest:
  description: The manifest digest of the pushed artifact (what receivers pin and what the signature covers).
  returned: success, not in check mode
  type: str
  sample: sha256:2d045bd0ee888b28f033e6a8169fd285b10749f79d53aea581cedd854cefd0f4
ref:
  description: The pinned reference, C(<registry>@<digest>).
  returned: success, not in check mode
  type: str
  sample: registry.example.org/sglang-prep-caches@sha256:2d045bd0ee888b28f033e6a8169fd285b10749f79d53aea581cedd854cefd0f4
tag:
  description: The tag of the signature group.
  returned: success
  type: str
  sample: Qwen3-30B-A3B-g4b1f0c2d3e4f5a6b
signed:
  description: Whether a signature was pushed.
  returned: success
  type: bool
signature_tag:
  description: The signature's tag, C(sha256-<hex>.sig).
  returned: when signed
  type: str
bundle_sha256:
  description: The bundle's sha256 (its file name).
  returned: success
  type: str
push_s:
  description: Seconds the import, push and signing took.
  returned: success, not in check mode
  type: float
error_type:
  description: V(registry_auth), V(registry_tls), V(registry_unavailable), V(registry_error), V(bundle_sign_failed), V(bad_input).
  returned: failure
  type: str
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _oci_bundle as ob
from ansible_collections.sglang.prep.plugins.module_utils import _oci_module as om


def main():
    module = AnsibleModule(argument_spec=dict(om.registry_spec(), bundle=dict(type="path", required=True),
                                              signing_key=dict(type="path", no_log=False)),
                           required_together=om.REQUIRED_TOGETHER, mutually_exclusive=om.MUTUALLY_EXCLUSIVE,
                           supports_check_mode=True)
    engine = om.engine(module)
    manifest = read_manifest(module, module.params["bundle"])
    tag = ob.tag_for(manifest["model_slug"], manifest["group_key"])
    if module.check_mode:
        module.exit_json(changed=True, tag=tag, signed=bool(module.params["signing_key"]),
                         msg="check mode: would push %s:%s" % (module.params["registry"], tag))
    try:
        with engine:
            result = ob.publish(engine, module.params["bundle"], manifest, module.params["signing_key"])
    except ob.OciError as exc:
        om.fail(module, exc, tag=tag)
    module.exit_json(changed=True, msg="pushed %s (%s)" % (result["ref"], "signed" if result["signed"] else "unsigned"), **result)


def read_manifest(module, path):
    """The manifest sidecar beside the bundle (what sglang_cache_bundle state=packed wrote)."""
    sidecar = path[:-len(".tar.gz")] + ".json" if path.endswith(".tar.gz") else None
    try:
        with open(sidecar) as handle:
            manifest = json.load(handle)
        if not os.path.isfile(path):
            raise OSError("no bundle file %s" % path)
        for key in ("model", "model_slug", "group_key", "stages"):
            manifest[key]  # noqa: B018 (presence)
    except (OSError, TypeError, ValueError, KeyError) as exc:
        module.fail_json(msg="%s is not a packed bundle with its manifest beside it (%s): pack it with "
                             "sglang.prep.sglang_cache_bundle state=packed" % (path, exc), error_type="bad_input")
    return manifest


if __name__ == "__main__":
    main()

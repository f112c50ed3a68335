#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_registry_trust
short_description: Make the host's Docker engine trust a registry's CA, for that registry only
version_added: 1.2.0
description:
  - Writes the CA certificate(s) O(ca) as C(<certs_dir>/<host[:port]>/ca.crt), where the Docker engine reads the extra
    roots of the registry C(host[:port]) on every connection. No restart is needed, the CA is trusted for that one
    registry only, and TLS stays verified (nothing is added to C(insecure-registries)).
  - Only certificates are written, each re-encoded from its decoded bytes, so the same CA given again (with other line
    breaks or text around it) changes nothing. Text holding a private key, or no certificate, is refused with
    C(bad_input) before anything is written; the text is never shown in a message.
  - Writing under C(/etc/docker) needs root on the host; run this task with C(become) (the role
    C(sglang.prep.prime) does, for this task only).
  - In check mode, writes nothing and says whether the file would change.
extends_documentation_fragment:
  - sglang.prep._attributes
  - sglang.prep._attributes.check_full
attributes:
  diff_mode:
    support: full
    details: The path and the sha256 of the certificates before and after (not the certificates themselves).
options:
  registry:
    description: The registry, C(host[:port]), or a repository in it, C(host[:port]/path) (what O(sglang.prep.sglang_bundle_pull#module:registry) takes).
    type: str
    required: true
  ca:
    description:
      - The CA bundle as PEM text (one or more C(-----BEGIN CERTIFICATE-----) blocks).
      - Not logged, not even with C(-vvv) (a certificate is public, but a private key given here by mistake must not be
        shown).
    type: str
    required: true
  ca_name:
    description: How O(ca) was given, for messages (for example the variable and the file it was read from). Never the text itself.
    type: str
    default: prime_bundle_registry_ca
  certs_dir:
    description:
      - The engine's per-registry certificate directory. C(/etc/docker/certs.d) for the usual (rootful) engine; a rootless
        engine reads C(~/.config/docker/certs.d).
    type: path
    default: /etc/docker/certs.d
seealso:
  - module: sglang.prep.sglang_bundle_pull
  - module: sglang.prep.sglang_bundle_publish
"""

EXAMPLES = r"""
- name: Trust the bundle registry's CA (a PEM file on the controller)
  sglang.prep.sglang_registry_trust:
    registry: registry.example.org:5000/sglang-prep-caches
    ca: "{{ lookup('ansible.builtin.file', 'files/registry-ca.pem') }}"
  become: true
"""

RETURN = r"""
path:
  description: The file the engine reads, C(<certs_dir>/<host[:port]>/ca.crt).
  returned: success
  type: str
  sample: /etc/docker/certs.d/registry.example.org:5000/ca.crt
registry_host:
  description: The C(host[:port]) the CA is trusted for.
  returned: success
  type: str
  sample: registry.example.org:5000
certificates:
  description: How many certificates were written.
  returned: success
  type: int
  sample: 1
sha256:
  description: The sha256 of the file's (normalised) content.
  returned: success
  type: str
error_type:
  description: V(bad_input) (no certificate, a private key, a bad registry name) or V(permissions_unexpected) (not root).
  returned: failure
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _oci_bundle as ob
from ansible_collections.sglang.prep.plugins.module_utils import _oci_trust as ot


def main():
    module = AnsibleModule(argument_spec=dict(registry=dict(type="str", required=True),
                                              ca=dict(type="str", required=True, no_log=True),
                                              ca_name=dict(type="str", default="prime_bundle_registry_ca"),
                                              certs_dir=dict(type="path", default=ot.CERTS_DIR)),
                           supports_check_mode=True)
    params = module.params
    try:
        found = ot.plan(params["registry"], params["ca"], params["certs_dir"], params["ca_name"])
        if found["changed"] and not module.check_mode:
            ot.install(found)
    except ob.OciError as exc:
        module.fail_json(msg=exc.message, error_type=exc.error_type, changed=False)
    verb = ("would write" if module.check_mode else "wrote") if found["changed"] else "already has"
    module.exit_json(changed=found["changed"], path=found["path"], registry_host=found["host"],
                     certificates=found["certificates"], sha256=found["sha256"],
                     diff={"before": {"path": found["path"], "sha256": found["before_sha256"]},
                           "after": {"path": found["path"], "sha256": found["sha256"]}},
                     msg="%s %s (%d certificate(s)): the Docker engine trusts them for %s only"
                         % (verb, found["path"], found["certificates"], found["host"]))


if __name__ == "__main__":
    main()

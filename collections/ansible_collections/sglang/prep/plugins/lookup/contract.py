# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: contract
short_description: Read a constant of the sglang.prep container contract
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.0.0
description:
  - Returns constants of the contract between the role, the host modules and the container runtime
    (container paths, environment variable names, stage order, error types), read from the one module
    that defines them, so that playbooks and roles never restate them.
options:
  _terms:
    description: Names of constants in the contract module, for example C(HOST_SUBDIRS) or C(ENV_HOST_ROOTS).
    required: true
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Show the container path of every host directory
  ansible.builtin.debug:
    msg: "{{ lookup('sglang.prep.contract', 'HOST_SUBDIRS') }}"

- name: Loop over the stages in their canonical order
  ansible.builtin.debug:
    msg: "{{ item }}"
  loop: "{{ lookup('sglang.prep.contract', 'STAGE_ORDER') }}"
"""

RETURN = r"""
_raw:
  description: The value of each named constant (lists and tuples come back as lists).
  type: list
  elements: raw
"""

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        values = []
        for term in terms:
            if not term.isupper() or not hasattr(contract, term):
                raise AnsibleError("sglang.prep contract has no constant %r" % term)
            values.append(_plain(getattr(contract, term)))
        return values

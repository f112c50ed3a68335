# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: server_args
short_description: Name the extra SGLang server arguments the priming policy refuses
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.0.0
description:
  - Checks extra SGLang server arguments the way the container runtime does before any stage runs, and returns
    one line per argument that cannot be passed, naming it and saying why.
  - Refused are the flags the priming policy sets itself (model, host, port, TP, memory, KV dtype, context and
    prefill limits, CUDA graph, metrics, trace, torch.compile), every prefix of one of them (SGLang's parser
    accepts unambiguous abbreviations such as C(--mem-fraction)), C(--config) (a YAML file merged into the
    command line) and C(--cuda-graph-config) (its JSON replaces the per-phase CUDA-graph settings).
  - An empty list means every argument may be passed.
options:
  _terms:
    description: The extra server arguments, one list item per argument.
    required: true
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Refuse extra server arguments that restate the priming policy
  ansible.builtin.assert:
    that: lookup('sglang.prep.server_args', *prime_extra_server_args, wantlist=True) | length == 0
"""

RETURN = r"""
_raw:
  description: One line per refused argument; empty when all may be passed.
  type: list
  elements: str
"""

from ansible.plugins.lookup import LookupBase
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import server_flags


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        return server_flags.extra_args_problems([str(term) for term in terms])

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: rollout
short_description: Name the rollout settings (serial, max_fail_percentage) that ansible-core cannot use
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.2.0
description:
  - Checks the values the prime playbook passes to the play keywords C(serial) and C(max_fail_percentage)
    (C(sglang_prep_serial), C(sglang_prep_max_fail_percentage)), and returns one line per value that cannot work,
    naming the variable, the value and what is accepted. An empty list means both can be used.
  - ansible-core reads these keywords before any task runs, and fails with a traceback on a value it cannot use;
    the playbook runs with a safe value instead and the prime role refuses the host with C(bad_input).
options:
  serial:
    description: The value of C(sglang_prep_serial) (null when unset).
    type: raw
  max_fail_percentage:
    description: The value of C(sglang_prep_max_fail_percentage) (null when unset).
    type: raw
"""

EXAMPLES = r"""
- name: Refuse rollout settings ansible-core cannot use
  ansible.builtin.assert:
    that: >-
      query('sglang.prep.rollout', serial=sglang_prep_serial | default(none),
            max_fail_percentage=sglang_prep_max_fail_percentage | default(none)) | length == 0
"""

RETURN = r"""
_raw:
  description: One line per value that cannot work; empty when both can be used.
  type: list
  elements: str
"""

import json
import re

from ansible.plugins.lookup import LookupBase

BATCH = re.compile(r"^([1-9][0-9]*|([1-9][0-9]?|100)%)$")
PERCENT = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def _shown(value):
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return json.dumps(str(value))


def problems(serial=None, max_fail_percentage=None):
    """One line per rollout value that cannot work: 'sglang_prep_serial="abc": ...'."""
    out = []
    if serial is not None:
        batches = list(serial) if isinstance(serial, (list, tuple)) else [serial]
        if not batches or [b for b in batches if isinstance(b, bool) or not BATCH.match(str(b).strip())]:
            out.append("sglang_prep_serial=%s: serial takes a number of hosts per batch (1 or more), a percentage "
                       "(1%% to 100%%) or a list of them" % _shown(serial))
    if max_fail_percentage is not None:
        text = str(max_fail_percentage).strip()
        if isinstance(max_fail_percentage, bool) or not PERCENT.match(text) or float(text) > 100:
            out.append("sglang_prep_max_fail_percentage=%s: max_fail_percentage takes a percentage from 0 to 100"
                       % _shown(max_fail_percentage))
    return out


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        return problems(self.get_option("serial"), self.get_option("max_fail_percentage"))

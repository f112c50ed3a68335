# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: builder_election
short_description: Elect one builder per signature group of a fan-out play
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.2.0
description:
  - Groups the hosts of a play by their signature group (the plan's C(bundle_group), a hash of every priming stage's
    signature) and elects one builder per group, the first host with C(prime_builder) true, else the first host of the group.
  - Each host gets its role in its group, C(builder), C(receiver), or C(alone) (a group of one, or no group known).
  - A group's builder packs its caches only when a receiver of the group has priming stages to run (C(wanted));
    a primed group moves nothing.
  - Role C(sglang.prep.prime) uses it with C(prime_fanout=true), one answer for the whole play.
positional: _input, states, builders
options:
  _input:
    description: The hosts of the play, in play order (C(ansible_play_hosts)).
    type: list
    elements: str
    required: true
  states:
    description:
      - Each host's priming state from its plan (the C(state) that C(sglang.prep.sglang_stage) returned), in the order of
        O(_input). Read are C(bundle_group) and C(bundle_to_run); a host without them has no group.
    type: list
    elements: dict
    required: true
  builders:
    description: Each host's C(prime_builder) (true asks for that host as its group's builder), in the order of O(_input).
    type: list
    elements: raw
    default: []
"""

EXAMPLES = r"""
- name: Elect the builders of the play
  ansible.builtin.set_fact:
    election: >-
      {{ ansible_play_hosts | sglang.prep.builder_election(
           ansible_play_hosts | map('extract', hostvars) | map(attribute='plan', default={})
           | map(attribute='state', default={}) | list,
           ansible_play_hosts | map('extract', hostvars) | map(attribute='prime_builder', default=false) | list) }}

- name: Show this host's role
  ansible.builtin.debug:
    msg: "{{ election.hosts[inventory_hostname].role }}"
"""

RETURN = r"""
_value:
  description: The groups and every host's place in them.
  type: dict
  contains:
    groups:
      description: Per signature group its C(builder), its C(members) (play order), its C(receivers) and C(wanted).
      type: dict
    ungrouped:
      description: The hosts with no signature group known (no plan state), each alone.
      type: list
      elements: str
    hosts:
      description:
        - Per host its C(group) (null without one), C(members), C(builder), C(wanted) and C(role)
          (C(builder), C(receiver) or C(alone)).
      type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean


def _group(state):
    return state.get("bundle_group") if isinstance(state, dict) else None


def builder_election(hosts, states, builders=None):
    """The signature groups of the play, one builder each, and every host's role."""
    hosts = list(hosts)
    states = list(states)
    builders = list(builders or [])
    if len(states) != len(hosts) or len(builders) not in (0, len(hosts)):
        raise AnsibleFilterError("builder_election: %d hosts, %d states and %d builders; give one state (and one builder flag) "
                                 "per host, in the order of the hosts" % (len(hosts), len(states), len(builders)))
    groups, ungrouped = {}, []
    for index, host in enumerate(hosts):
        key = _group(states[index])
        if not key:
            ungrouped.append(host)
            continue
        group = groups.setdefault(key, {"members": [], "chosen": [], "to_run": {}})
        group["members"].append(host)
        if builders and boolean(builders[index] or False, strict=False):
            group["chosen"].append(host)
        group["to_run"][host] = list(states[index].get("bundle_to_run") or [])
    out_groups, out_hosts = {}, {}
    for key, group in groups.items():
        builder = (group["chosen"] + group["members"])[0]
        receivers = [host for host in group["members"] if host != builder]
        entry = {"builder": builder, "members": group["members"], "receivers": receivers,
                 "wanted": any(group["to_run"][host] for host in receivers)}
        out_groups[key] = entry
        for host in group["members"]:
            role = "alone" if len(group["members"]) < 2 else ("builder" if host == builder else "receiver")
            out_hosts[host] = {"group": key, "members": list(group["members"]), "builder": builder,
                               "wanted": entry["wanted"], "role": role}
    for host in ungrouped:
        out_hosts[host] = {"group": None, "members": [], "builder": None, "wanted": False, "role": "alone"}
    return {"groups": out_groups, "ungrouped": ungrouped, "hosts": out_hosts}


class FilterModule(object):
    def filters(self):
        return {"builder_election": builder_election}

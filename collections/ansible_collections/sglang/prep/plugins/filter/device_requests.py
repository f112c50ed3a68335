# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: device_requests
short_description: The Docker device requests for a GPU setting
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.2.0
description:
  - Spells out a GPU setting (C(prime_gpus)) as the C(device_requests) of M(community.docker.docker_container).
  - C(all) (or C(-1)) asks for every GPU, a count for that many, device IDs (a list, or a comma-separated string) for those;
    C(none), an empty value, C(0) or an empty list asks for none (an empty list).
positional: _input
options:
  _input:
    description: The GPU setting.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Two GPUs by ID
  ansible.builtin.debug:
    msg: "{{ '0,1' | sglang.prep.device_requests }}"
  # [{"driver": "nvidia", "count": 0, "device_ids": ["0", "1"], "capabilities": [["gpu"]], "options": {}}]
"""

RETURN = r"""
_value:
  description: Zero or one device request.
  type: list
  elements: dict
"""


def _request(count=0, ids=()):
    return {"driver": "nvidia", "count": count, "device_ids": list(ids), "capabilities": [["gpu"]], "options": {}}


def device_requests(gpus):
    """[] for no GPU, else the one nvidia device request that ``gpus`` asks for."""
    text = "" if gpus is None else str(gpus)
    if gpus is None or text in ("none", "", "0", "[]"):
        return []
    if text in ("all", "-1"):
        return [_request(count=-1)]
    if text.isdigit() and not isinstance(gpus, (list, tuple)):
        return [_request(count=int(text))]
    ids = gpus if isinstance(gpus, (list, tuple)) else text.split(",")
    return [_request(ids=[str(one).strip() for one in ids])]


class FilterModule(object):
    def filters(self):
        return {"device_requests": device_requests}

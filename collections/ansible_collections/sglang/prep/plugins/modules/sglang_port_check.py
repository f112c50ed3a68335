#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_port_check
short_description: Find which telemetry ports something on the host already listens on
version_added: 1.1.0
description:
  - Tries to bind each port on the listen address the way the container's telemetry services bind it (host
    networking), and reports those that are taken, with the processes the connecting user can see holding them.
  - The prime role runs it before it starts a container with host networking, and fails with the service and
    the variable to change, instead of starting a copy of a service that cannot listen (a host's own
    node_exporter on 9100, dcgm-exporter on 9400).
  - Never changes anything, so it always returns C(changed=false); in check mode too it binds each port and closes it at once.
extends_documentation_fragment:
  - sglang.prep._attributes
  - sglang.prep._attributes.info
options:
  ports:
    description:
      - The ports to look at, each with the service that would listen on it and the variable that sets it.
    type: list
    elements: dict
    required: true
    suboptions:
      service:
        description: The service that would listen on the port.
        type: str
        required: true
      port:
        description: The TCP port.
        type: int
        required: true
      variable:
        description: The variable that sets the port (named in the answer).
        type: str
        required: true
  listen:
    description:
      - The address the services bind (the prime role's C(prime_telemetry_listen)); C(0.0.0.0) checks every address.
    type: str
    default: 127.0.0.1
seealso:
  - module: ansible.builtin.wait_for
"""

EXAMPLES = r"""
- name: Look for a host's own exporters on the container's telemetry ports
  sglang.prep.sglang_port_check:
    ports:
      - {service: node_exporter, port: 9100, variable: prime_node_exporter_port}
      - {service: dcgm_exporter, port: 9400, variable: prime_dcgm_exporter_port}
  register: ports

- name: Say which are taken
  ansible.builtin.debug:
    msg: "{{ item.service }} cannot listen on {{ item.port }}: {{ item.holders }}"
  loop: "{{ ports.busy }}"
"""

RETURN = r"""
busy:
  description: The ports something already listens on, each with its service, variable and the holders seen.
  returned: always
  type: list
  elements: dict
  sample: [{"service": "node_exporter", "port": 9100, "variable": "prime_node_exporter_port",
            "holders": "pid 812 (/usr/bin/prometheus-node-exporter)"}]
free:
  description: The ports a service could listen on now.
  returned: always
  type: list
  elements: dict
  sample: [{"service": "prometheus", "port": 9090, "variable": "prime_prometheus_port"}]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _port_check


def main():
    module = AnsibleModule(
        argument_spec=dict(
            ports=dict(type="list", elements="dict", required=True, options=dict(
                service=dict(type="str", required=True),
                port=dict(type="int", required=True),
                variable=dict(type="str", required=True),
            )),
            listen=dict(type="str", default="127.0.0.1"),
        ),
        supports_check_mode=True,
    )
    _port_check.run(module)


if __name__ == "__main__":
    main()

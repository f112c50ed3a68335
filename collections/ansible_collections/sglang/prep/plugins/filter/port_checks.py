# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: port_checks
short_description: The ports of the chosen telemetry services, each with its service and the variable that sets it
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.2.0
description:
  - For each telemetry service of O(_input) its ports (a service such as C(jaeger) has several), each with the service,
    the port and the role variable that sets it (C(prime_<key>_port)).
  - Services the collection does not know are left out (the settings check names them).
  - Role C(sglang.prep.prime) checks these ports are free before it starts the container.
positional: _input, ports
options:
  _input:
    description: The telemetry services to run (C(prime_telemetry_services)).
    type: list
    elements: str
    required: true
  ports:
    description: The port of every port key (C(prometheus), C(jaeger_ui), ...), as the role variables set them.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: List the ports to check
  ansible.builtin.debug:
    msg: "{{ ['prometheus', 'jaeger'] | sglang.prep.port_checks({'prometheus': 9090, 'jaeger_otlp_grpc': 4317,
             'jaeger_otlp_http': 4318, 'jaeger_ui': 16686, 'jaeger_admin': 14269}) }}"
"""

RETURN = r"""
_value:
  description: One entry per port, in service order.
  type: list
  elements: dict
  sample: [{"service": "prometheus", "port": 9090, "variable": "prime_prometheus_port"}]
"""

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract


def as_int(value, default=0):
    """An integer as Jinja's int filter reads one (4, '4', 4.5, '4.5'), else ``default``."""
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return default


def port_checks(services, ports):
    """[{service, port, variable}] for the ports of the known services among ``services``."""
    checks = []
    for service in services or []:
        for key in contract.SERVICE_PORT_KEYS.get(service, ()):
            checks.append({"service": service, "port": as_int((ports or {}).get(key)), "variable": "prime_%s_port" % key})
    return checks


class FilterModule(object):
    def filters(self):
        return {"port_checks": port_checks}

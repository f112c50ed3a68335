# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: settings_problems
short_description: The settings of role sglang.prep.prime whose values cannot work
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.2.0
description:
  - One line per role variable whose value cannot work, naming the variable, the value and what is accepted.
  - The argument spec of the role checks types; this checks values (ranges, stage names, reserved environment
    variables, port clashes, absolute paths), all of them at once, before anything on a host changes.
  - Role C(sglang.prep.prime) fails its preflight with every line, together with the problems of
    C(prime_extra_server_args) (lookup C(sglang.prep.server_args)) and of the rollout variables (lookup C(sglang.prep.rollout)).
positional: _input
options:
  _input:
    description:
      - The role variables, by name (C(prime_tp), C(prime_server_port), ...). A variable missing from the dictionary
        is taken at its default of C(roles/prime/defaults/main.yml) only where that default cannot be wrong, else it is not checked.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Refuse settings that cannot work, naming every one, before anything changes
  vars:
    problems: "{{ {'prime_tp': 0, 'prime_server_port': 30000} | sglang.prep.settings_problems }}"
  ansible.builtin.fail:
    msg: "{{ problems | join('; ') }}"
  when: problems | length > 0
  # fails with: prime_tp=0: a tensor-parallel size of 1 or more
"""

RETURN = r"""
_value:
  description: One line per problem, empty when every value can work.
  type: list
  elements: str
  sample: ["prime_tp=0: a tensor-parallel size of 1 or more", "prime_extra_env.HOME=\"/root\": not settable: the role and the runtime set HOME themselves"]
"""

import json
import os

from ansible_collections.sglang.prep.plugins.filter.port_checks import as_int, port_checks
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract

SECONDS = ("prime_stage_timeout", "prime_stage_poll", "prime_pointer_timeout")
OPTIONAL_SECONDS = ("prime_lock_timeout", "prime_ready_timeout")


def as_float(value, default=0.0):
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def bad(name, value, accepted):
    return "%s=%s: %s" % (name, json.dumps(value), accepted)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _port_ok(value):
    return str(value).isdigit() and 1 <= int(str(value)) <= 65535


def _numbers(s):
    out = []
    if as_int(s.get("prime_tp", 1)) < 1:
        out.append(bad("prime_tp", s.get("prime_tp"), "a tensor-parallel size of 1 or more"))
    if not 1 <= as_int(s.get("prime_server_port", contract.SERVER_PORT)) <= 65535:
        out.append(bad("prime_server_port", s.get("prime_server_port"), "a TCP port, 1 to 65535"))
    out += [bad(name, s[name], "a number of seconds above 0") for name in SECONDS if name in s and as_float(s[name]) <= 0]
    out += [bad(name, s[name], "unset (null) or a number of seconds above 0")
            for name in OPTIONAL_SECONDS if s.get(name) is not None and as_float(s[name]) <= 0]
    headroom = s.get("prime_disk_headroom_mb")
    if headroom is not None and as_int(headroom) < 0:
        out.append(bad("prime_disk_headroom_mb", headroom, "unset (null) or 0 MiB or more"))
    sizes = s.get("prime_moe_batch_sizes") or []
    if any(not _is_int(size) or size < 1 for size in sizes):
        out.append(bad("prime_moe_batch_sizes", sizes, "batch sizes of 1 or more (empty: the runtime default)"))
    return out


def _stages(s):
    out, names = [], list(contract.STAGE_ORDER)
    modes = s.get("prime_stage_modes") or {}
    out += [bad("prime_stage_modes", modes, "each stage mapped to ensure or rebuild")
            for mode in modes.values() if mode not in ("ensure", "rebuild")]
    stages = s.get("prime_stages", names)
    if not stages or any(stage not in names for stage in stages):
        out.append("prime_stages=%s: one or more of %s" % (json.dumps(stages), ", ".join(names)))
    if any(stage not in names for stage in modes):
        out.append("prime_stage_modes=%s: keys from %s" % (json.dumps(modes), ", ".join(names)))
    return out


def _env(s):
    out = []
    for name in ("prime_extra_env", "prime_stage_env"):
        env = s.get(name) or {}
        out += [bad("%s.%s" % (name, key), value, "a string (quote it in YAML)") for key, value in env.items() if not isinstance(value, str)]
        out += [bad("%s.%s" % (name, key), env[key], "not settable: the role and the runtime set %s themselves" % key)
                for key in env if key in contract.RESERVED_ENV]
    return out


def _ports(s):
    out = []
    services = list(s.get("prime_telemetry_services") or [])
    out += [bad("prime_telemetry_services", services, "names from %s (%s is not one)" % (", ".join(contract.TELEMETRY_SERVICES), service))
            for service in services if service not in contract.TELEMETRY_SERVICES]
    ports = dict((key, s.get("prime_%s_port" % key, default)) for key, default in contract.SERVICE_PORTS.items())
    out += [bad("prime_%s_port" % key, port, "a TCP port, 1 to 65535") for key, port in ports.items() if not _port_ok(port)]
    checks = port_checks(services, ports)
    taken = [check["port"] for check in checks] + [as_int(s.get("prime_server_port", contract.SERVER_PORT))]
    out += [bad(check["variable"], check["port"], "a port no other telemetry service (nor prime_server_port) uses")
            for check in checks if taken.count(check["port"]) > 1]
    return out


def _paths(s):
    out = []
    root = s.get("prime_host_root") or ""
    if root and not root.startswith("/"):
        out.append(bad("prime_host_root", root, "empty ($HOME/sglang-observability of the host user) or an absolute path"))
    textfile = s.get("prime_metrics_textfile_dir") or ""
    if textfile and not textfile.startswith("/"):
        out.append(bad("prime_metrics_textfile_dir", textfile,
                       "empty, or the absolute path of the host node_exporter's textfile directory"))
    source = s.get("prime_env_file_src") or ""
    if source and not os.path.isfile(source):
        out.append("prime_env_file_src=%s: not a file on the controller; the env file to copy (KEY=VALUE lines, kept out of the "
                   "repository or encrypted with ansible-vault), or empty" % json.dumps(source))
    login = s.get("prime_registry_login") or {}
    if login and len(set(login) & {"registry", "username", "password"}) < 3:
        out.append("prime_registry_login (keys %s): the keys registry, username and password (the password from Vault), or {}"
                   % (", ".join(login) or "none"))
    return out


def settings_problems(settings):
    """Every problem of the role settings ``settings`` (a dict by variable name), one line each."""
    settings = dict(settings or {})
    return _numbers(settings) + _stages(settings) + _env(settings) + _ports(settings) + _paths(settings)


class FilterModule(object):
    def filters(self):
        return {"settings_problems": settings_problems}

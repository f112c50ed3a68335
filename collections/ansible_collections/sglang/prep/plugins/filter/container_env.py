# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: container_env
short_description: The environment of the prime container, named as the container's init reads it
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.2.0
description:
  - Names each setting of the prime container with the environment variable its init reads (the host user's UID and GID,
    the host roots, the image, the telemetry listen address, services and ports, the server port, how many runs keep
    their telemetry, the git revision), then adds C(extra_env) (C(prime_extra_env)). Every value is a string.
  - The variable names come from the runtime's contract, so the role and the container cannot disagree on them.
positional: _input
options:
  _input:
    description:
      - The settings - C(uid), C(gid), C(dirs) (the host directories by name, C(telemetry), C(profiles), C(models),
        C(huggingface)), C(image), C(listen), C(server_port), C(keep_runs), C(services) (a list; empty is C(none)),
        C(ports) (by port key), C(git_revision) (left out when empty) and C(extra_env).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The container's environment
  ansible.builtin.debug:
    msg: "{{ {'uid': 1000, 'gid': 1000, 'dirs': {}, 'image': 'img', 'listen': '127.0.0.1', 'server_port': 30000,
             'keep_runs': 10, 'services': [], 'ports': {}} | sglang.prep.container_env }}"
"""

RETURN = r"""
_value:
  description: The environment, variable name to string value.
  type: dict
"""

import json

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract


def container_env(settings):
    """The container's environment from the role's settings (every value a string)."""
    s = dict(settings or {})
    dirs = s.get("dirs") or {}
    env = {contract.ENV_UID: str(s.get("uid")), contract.ENV_GID: str(s.get("gid"))}
    env.update((variable, dirs.get(name)) for name, variable in contract.ENV_HOST_ROOTS.items())
    env.update({
        contract.ENV_IMAGE: str(s.get("image")),
        contract.ENV_LISTEN: str(s.get("listen")),
        contract.ENV_SERVER_PORT: str(s.get("server_port")),
        contract.ENV_TELEMETRY_KEEP_RUNS: str(s.get("keep_runs")),
        contract.ENV_TELEMETRY_SERVICES: ",".join(s.get("services") or []) or "none",
        contract.ENV_TELEMETRY_PORTS: json.dumps(s.get("ports") or {}, sort_keys=True),
    })
    if s.get("git_revision"):
        env[contract.ENV_GIT_REVISION] = str(s["git_revision"])
    env.update((key, str(value)) for key, value in (s.get("extra_env") or {}).items())
    return env


class FilterModule(object):
    def filters(self):
        return {"container_env": container_env}

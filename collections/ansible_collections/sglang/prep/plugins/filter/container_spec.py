# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: container_spec
short_description: The prime container's settings, all of them, and their digest
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.2.0
description:
  - Builds every setting of the prime container that the prime role passes to M(community.docker.docker_container)
    (image, entrypoint, user, environment, mounts, network, IPC, shared memory, capabilities, GPUs, ports, stop
    timeout, labels), and their digest, which the container carries as a label
    (C(sglang.prep.spec)), so that one look at a running container tells whether it is the one these settings make.
  - The mount targets, the entrypoint and the environment's variable names come from the runtime's contract. A
    setting not in here is not compared on a re-prime's fast path, so every new one belongs here.
positional: _input
options:
  _input:
    description:
      - The settings - C(image), C(root) (the host root), C(uid), C(gid), C(dirs) (the host directories by name),
        C(runtime_dir), C(env_file) (empty for none), C(env_file_digest) (the SHA-256 of the env file's content, empty
        for none), C(network_mode), C(ipc_mode), C(shm_size), C(cap_add), C(stop_timeout), C(published_ports),
        C(listen), C(server_port), C(keep_runs), C(services), C(ports) (by port key), C(git_revision), C(extra_env),
        C(textfile_dir) (empty for none) and C(gpus), as the role's C(prime_*) variables name them.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The container's settings and their digest
  ansible.builtin.debug:
    msg: >-
      {{ {'image': 'sglang-prep:latest', 'root': '/home/u/sglang-observability', 'uid': 1000, 'gid': 1000,
          'dirs': {'telemetry': '/home/u/sglang-observability/telemetry'}, 'runtime_dir': '/home/u/sglang-observability/runtime',
          'gpus': 'all'} | sglang.prep.container_spec }}
"""

RETURN = r"""
_value:
  description: C(spec), the settings as M(community.docker.docker_container) takes them, and C(digest), the SHA-256 of
    the spec (as JSON with sorted keys) and the env file's digest.
  type: dict
"""

import hashlib
import json

from ansible_collections.sglang.prep.plugins.filter.container_env import container_env
from ansible_collections.sglang.prep.plugins.filter.device_requests import device_requests
from ansible_collections.sglang.prep.plugins.filter.port_checks import as_int
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract


def _text_or_none(value):
    return value if value is not None and len(value) > 0 else None


def spec(s):
    """The container's settings, as community.docker.docker_container takes them."""
    dirs = s.get("dirs") or {}
    ipc_mode = s.get("ipc_mode") or ""
    network_mode = s.get("network_mode")
    mounts = [{"type": "bind", "source": dirs.get(name), "target": target, "read_only": False}
              for name, target in contract.HOST_SUBDIRS.items()]
    mounts.append({"type": "bind", "source": s.get("runtime_dir"), "target": contract.RUNTIME_MOUNT, "read_only": True})
    if s.get("textfile_dir"):
        mounts.append({"type": "bind", "source": s["textfile_dir"], "target": contract.TEXTFILE_MOUNT, "read_only": False})
    environment = {key: s.get(key) for key in ("uid", "gid", "dirs", "listen", "server_port", "keep_runs", "services",
                                               "ports", "git_revision", "extra_env")}
    environment["image"] = str(s.get("image"))
    return {
        "image": str(s.get("image")),
        "command": [],
        "entrypoint": list(contract.RUNTIME_ENTRY_POINT) + ["init"],
        "user": "root",
        "restart_policy": "no",
        "init": False,
        "env_file": _text_or_none(s.get("env_file") or ""),
        "network_mode": network_mode,
        "ipc_mode": _text_or_none(ipc_mode),
        "shm_size": _text_or_none(s.get("shm_size") or "") if ipc_mode != "host" else None,
        "capabilities": s.get("cap_add"),
        "stop_timeout": as_int(s.get("stop_timeout")),
        "published_ports": s.get("published_ports") if network_mode != "host" else None,
        "labels": {"sglang.prep.role": "prime", "sglang.prep.host_root": s.get("root")},
        "env": container_env(environment),
        "mounts": mounts,
        "device_requests": device_requests(s.get("gpus")),
    }


def digest(container, env_file_digest=""):
    """The digest the container carries as its label: the spec as JSON (sorted keys), a space, the env file's digest."""
    text = json.dumps(container, sort_keys=True) + " " + (env_file_digest or "")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def container_spec(settings):
    """{spec, digest} from the role's settings."""
    s = dict(settings or {})
    built = spec(s)
    return {"spec": built, "digest": digest(built, s.get("env_file_digest"))}


class FilterModule(object):
    def filters(self):
        return {"container_spec": container_spec}

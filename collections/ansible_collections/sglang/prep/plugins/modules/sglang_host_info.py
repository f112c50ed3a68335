#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_host_info
short_description: Identify the host user and look at its host root, in one call (info module)
version_added: 1.1.0
description:
  - Everything the prime role must know about a host before it changes anything, read in one module call
    (the role's first contact with the host, so a re-prime with nothing to do stays fast).
  - The connecting user, and the host user that owns the host directories (O(host_user); empty means the
    connecting user, or E(SUDO_USER) when the connecting user is root), looked up in the password database.
  - The host root (O(host_root); empty means C(<home of the host user>/sglang-observability)) and every entry
    at most two levels below it (its directories, and what is directly inside them), with owner, mode and
    type, as M(ansible.builtin.find) with O(ansible.builtin.find#module:depth=2) would list them; the same
    for the model directory O(model).
  - Symbolic links are followed where the container would follow them. A link is listed as itself, with what it
    points to and the owner and mode of its target (RV(entries)); a directory it points to is listed below it. A
    model directory reached through a link is resolved the way the container resolves it (RV(model_link)).
  - With O(runtime_package), the deployed runtime C(<host root>/runtime/<package>) is checked against the manifest
    its archive shipped (C(MANIFEST.sha256), the SHA-256 of every file), and RV(runtime) names every file modified,
    missing or added since it was unpacked.
  - Whether O(env_file) is a regular file, and its SHA-256 (never its content).
  - It returns its answer as plain keys, not as C(ansible_facts).
  - Until 1.2.0 this module was called C(sglang.prep.sglang_host_facts); that name still works, with a deprecation
    warning, until 2.0.0.
extends_documentation_fragment:
  - sglang.prep._attributes
  - sglang.prep._attributes.info
options:
  host_user:
    description:
      - The account that owns the host directories. Empty means the connecting user, or E(SUDO_USER) when
        the connecting user is root (empty again when that is unset).
    type: str
    default: ""
  host_root:
    description:
      - The host root. Empty means C(<home of the host user>/sglang-observability). Trailing slashes are dropped.
    type: str
    default: ""
  model:
    description:
      - The model directory, relative to C(<host root>/models) (for example C(tiny-moe) or C(org/name)).
    type: str
    default: ""
  env_file:
    description:
      - A file of environment variables for the container, looked at (never read into the result).
    type: str
    default: ""
  runtime_package:
    description:
      - The runtime package deployed under C(<host root>/runtime/) (C(sglang_prep)), to check against its manifest.
        Empty means no check.
    type: str
    default: ""
    version_added: 1.2.0
seealso:
  - module: ansible.builtin.setup
  - module: ansible.builtin.getent
  - module: ansible.builtin.find
"""

EXAMPLES = r"""
- name: Look at the host before priming it for the user ubuntu
  sglang.prep.sglang_host_info:
    host_user: ubuntu
    model: tiny-moe
  register: host

- name: Show the host root and whether the model is there
  ansible.builtin.debug:
    msg: >-
      {{ host.host_root }}: model config {{ 'found' if (host.host_root ~ '/models/tiny-moe/config.json')
      in (host.entries | selectattr('isreg') | map(attribute='path')) else 'missing' }}
"""

RETURN = r"""
connected_user:
  description: The user the module runs as.
  returned: always
  type: dict
  sample: {"name": "root", "uid": 0, "gid": 0, "home": "/root"}
host_user:
  description:
    - The host user, with C(name), C(uid), C(gid), C(home) and C(found). C(found) is false when it is not named
      (see O(host_user)) or does not exist; C(uid), C(gid) and C(home) are then null.
  returned: always
  type: dict
  sample: {"name": "ubuntu", "uid": 1000, "gid": 1000, "home": "/home/ubuntu", "found": true}
host_root:
  description: The host root, without trailing slashes.
  returned: always
  type: str
  sample: /home/ubuntu/sglang-observability
root:
  description: The host root itself as an entry (see RV(entries)), or null when it does not exist.
  returned: always
  type: dict
model_dir:
  description: The model directory on the host, C(<host root>/models/<model>).
  returned: when O(model) is given
  type: str
  sample: /home/ubuntu/sglang-observability/models/tiny-moe
model_link:
  description:
    - Null when no part of the model directory below C(<host root>/models) is a symbolic link. Otherwise C(link) (the
      first link, a host path), C(target) (what it points to, as written), C(resolved) (where it leads on the host),
      C(container_path) (where the container, which sees only the models root, mounted at C(/models), ends up;
      null when it cannot follow the link) and C(problem) (why it cannot, else null).
  returned: when O(model) is given
  type: dict
  sample: {"link": "/home/ubuntu/sglang-observability/models/m", "target": "/data/m", "resolved": "/data/m",
           "container_path": null, "problem": "it points to /data/m, outside the models root"}
runtime:
  description:
    - The deployed runtime against its manifest, C(path), C(present), C(manifest_sha256) (of the manifest found,
      null when there is none), C(modified), C(missing) and C(added) (paths relative to the package) and C(problem)
      (an unreadable manifest, else null).
  returned: when O(runtime_package) is given
  type: dict
  sample: {"path": "/home/ubuntu/sglang-observability/runtime/sglang_prep", "present": true,
           "manifest_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
           "modified": ["container/engine.py"], "missing": [], "added": [], "problem": null}
entries:
  description:
    - Every entry at most two levels below the host root and the model directory. Each has C(path), C(uid), C(gid),
      C(pw_name), C(mode) (octal string), C(isdir), C(isreg), C(islnk), C(wusr) and C(xusr), the fields of
      M(ansible.builtin.find) of the same names, of the entry itself (a symbolic link is not followed for them).
    - A symbolic link also has C(lnk_target) (what it points to, as written), C(lnk_source) (the path it resolves to)
      and C(target) (C(uid), C(gid), C(pw_name), C(mode), C(isdir), C(isreg), C(wusr), C(xusr) of what it points to,
      null when that does not exist); the entries of a directory it points to are listed below the link's path.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/home/ubuntu/sglang-observability/telemetry", "uid": 1000, "gid": 1000, "pw_name": "ubuntu",
            "mode": "0755", "isdir": true, "isreg": false, "islnk": false, "wusr": true, "xusr": true}]
env_file:
  description: Whether O(env_file) is a regular file (C(isreg)) and its C(sha256); empty when no O(env_file) is given.
  returned: always
  type: dict
  sample: {"isreg": true, "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _host_info


def main():
    module = AnsibleModule(
        argument_spec=_host_info.argument_spec(),
        supports_check_mode=True,
    )
    _host_info.run(module)


if __name__ == "__main__":
    main()

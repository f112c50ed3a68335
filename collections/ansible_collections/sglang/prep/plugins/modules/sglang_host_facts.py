#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_host_facts
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
  - Whether O(env_file) is a regular file, and its SHA-256 (never its content).
  - This is an information module. It never changes anything and always returns C(changed=false).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only, so it runs unchanged in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
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
seealso:
  - module: ansible.builtin.setup
  - module: ansible.builtin.getent
  - module: ansible.builtin.find
author:
  - Seed 0be3ddc0 maintainers (@maintainers)
"""

EXAMPLES = r"""
- name: Look at the host before priming it for the user ubuntu
  sglang.prep.sglang_host_facts:
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
entries:
  description:
    - Every entry at most two levels below the host root and the model directory (symbolic links are listed,
      not followed). Each has C(path), C(uid), C(gid), C(pw_name), C(mode) (octal string), C(isdir), C(isreg),
      C(islnk), C(wusr) and C(xusr), the fields of M(ansible.builtin.find) of the same names.
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

import hashlib
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule

ROOT_NAME = "sglang-observability"
DEPTH = 2


def account(name=None, uid=None):
    try:
        entry = pwd.getpwnam(name) if name is not None else pwd.getpwuid(uid)
    except KeyError:
        return None
    return {"name": entry.pw_name, "uid": entry.pw_uid, "gid": entry.pw_gid, "home": entry.pw_dir}


def owner_name(uid):
    found = account(uid=uid)
    return found["name"] if found else ""


def entry(path):
    """One path as ansible.builtin.find describes it (the fields the role reads), or None when it is absent."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    mode = st.st_mode
    return {"path": path, "uid": st.st_uid, "gid": st.st_gid, "pw_name": owner_name(st.st_uid),
            "mode": "%04o" % stat.S_IMODE(mode), "isdir": stat.S_ISDIR(mode), "isreg": stat.S_ISREG(mode),
            "islnk": stat.S_ISLNK(mode), "wusr": bool(mode & stat.S_IWUSR), "xusr": bool(mode & stat.S_IXUSR)}


def listing(top):
    """Entries at most DEPTH levels below ``top`` (not ``top`` itself), links listed and never followed."""
    found = []
    level = [top]
    for _depth in range(DEPTH):
        below = []
        for directory in level:
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            for name in names:
                described = entry(os.path.join(directory, name))
                if described is None:
                    continue
                found.append(described)
                if described["isdir"]:
                    below.append(described["path"])
        level = below
    return found


def env_file_facts(path):
    if not path:
        return {}
    described = {"isreg": os.path.isfile(path), "sha256": None}
    if described["isreg"]:
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(65536), b""):
                    digest.update(chunk)
            described["sha256"] = digest.hexdigest()
        except OSError as exc:
            described["error"] = "%s: %s" % (path, exc.strerror)
    return described


def host_facts(params):
    connected = account(uid=os.getuid()) or {"name": str(os.getuid()), "uid": os.getuid(), "gid": os.getgid(),
                                             "home": os.environ.get("HOME", "/")}
    name = params["host_user"] or (os.environ.get("SUDO_USER", "") if connected["uid"] == 0 else connected["name"])
    user = (account(name=name) if name else None) or {"name": name, "uid": None, "gid": None, "home": None}
    user["found"] = user["uid"] is not None
    root = (params["host_root"] or os.path.join(user["home"] or "/nonexistent", ROOT_NAME)).rstrip("/") or "/"
    result = {"connected_user": connected, "host_user": user, "host_root": root, "root": entry(root),
              "entries": listing(root), "env_file": env_file_facts(params["env_file"])}
    if params["model"]:
        model_dir = os.path.join(root, "models", params["model"].strip("/"))
        result["model_dir"] = model_dir
        if not model_dir.startswith(os.path.join(root, "models") + "/") or not os.path.isdir(model_dir):
            return result
        seen = set(e["path"] for e in result["entries"])
        result["entries"].extend(e for e in listing(model_dir) if e["path"] not in seen)
    return result


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            host_user=dict(type="str", default=""),
            host_root=dict(type="str", default=""),
            model=dict(type="str", default=""),
            env_file=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    module.exit_json(changed=False, **host_facts(module.params))


def main():
    run_module()


if __name__ == "__main__":
    main()

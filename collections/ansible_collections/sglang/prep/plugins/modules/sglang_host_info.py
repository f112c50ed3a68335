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
  - This is an information module. It never changes anything and always returns C(changed=false). It returns
    its answer as plain keys, not as C(ansible_facts).
  - Until 1.2.0 this module was called C(sglang.prep.sglang_host_facts); that name still works, with a deprecation
    warning, until 2.0.0.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
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
author:
  - Seed 0be3ddc0 maintainers (@maintainers)
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

import hashlib
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _runtime_manifest as runtime_manifest

ROOT_NAME = "sglang-observability"
DEPTH = 2
MODELS_MOUNT = "/models"  # where the container sees <host root>/models (contract.MODELS_ROOT)
MAX_LINKS = 40  # as the kernel's ELOOP limit


def account(name=None, uid=None):
    try:
        entry = pwd.getpwnam(name) if name is not None else pwd.getpwuid(uid)
    except KeyError:
        return None
    return {"name": entry.pw_name, "uid": entry.pw_uid, "gid": entry.pw_gid, "home": entry.pw_dir}


def owner_name(uid):
    found = account(uid=uid)
    return found["name"] if found else ""


def described(st):
    mode = st.st_mode
    return {"uid": st.st_uid, "gid": st.st_gid, "pw_name": owner_name(st.st_uid), "mode": "%04o" % stat.S_IMODE(mode),
            "isdir": stat.S_ISDIR(mode), "isreg": stat.S_ISREG(mode), "wusr": bool(mode & stat.S_IWUSR),
            "xusr": bool(mode & stat.S_IXUSR)}


def entry(path):
    """One path as ansible.builtin.find describes it (the fields the role reads), or None when it is absent.

    A symbolic link is described as itself, plus what it points to (lnk_target, lnk_source) and its target's owner
    and mode (target; None when it leads nowhere)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    out = dict(described(st), path=path, islnk=stat.S_ISLNK(st.st_mode))
    if out["islnk"]:
        try:
            out["lnk_target"] = os.readlink(path)
        except OSError:
            out["lnk_target"] = None
        out["lnk_source"] = os.path.realpath(path)
        try:
            out["target"] = described(os.stat(path))
        except OSError:
            out["target"] = None
    return out


def listing(top):
    """Entries at most DEPTH levels below ``top`` (not ``top`` itself). A link is listed, and a directory it points
    to is listed below it (once: a link back up is not followed again)."""
    found = []
    level = [top]
    seen = set([os.path.realpath(top)])
    for _depth in range(DEPTH):
        below = []
        for directory in level:
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            for name in names:
                item = entry(os.path.join(directory, name))
                if item is None:
                    continue
                found.append(item)
                is_dir = item["target"] is not None and item["target"]["isdir"] if item["islnk"] else item["isdir"]
                real = os.path.realpath(item["path"])
                if is_dir and real not in seen:
                    seen.add(real)
                    below.append(item["path"])
        level = below
    return found


def model_link(models_root, rel):
    """How the container resolves /models/<rel>, where it sees only ``models_root``: None when no part of the model
    directory is a link, else the first link, what it points to, where it leads, the container path it reaches (None
    when the container cannot follow it) and why not. Relative links resolve from their directory; absolute ones in
    the container's own file system, where the models root is /models."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    done = []
    first = None
    hops = 0
    problem = None
    while parts and problem is None:
        name = parts.pop(0)
        if name == "..":
            if not done:
                problem = "it leads above the models root"
            else:
                done.pop()
            continue
        here = os.path.join(models_root, *(done + [name]))
        if not os.path.islink(here):
            done.append(name)
            continue
        hops += 1
        target = os.readlink(here)
        if first is None:
            first = {"link": here, "target": target, "resolved": os.path.realpath(here)}
        if hops > MAX_LINKS:
            problem = "it is a loop of symlinks"
        elif target.startswith("/"):
            if target == MODELS_MOUNT or target.startswith(MODELS_MOUNT + "/"):
                done, parts = [], [p for p in target[len(MODELS_MOUNT):].split("/") if p not in ("", ".")] + parts
                continue
            host_real = os.path.realpath(here)
            root_real = os.path.realpath(models_root)
            if host_real == root_real or host_real.startswith(root_real + "/"):
                problem = ("it is an absolute link (to %s), which the container resolves in its own file system, "
                           "where the models root is %s" % (target, MODELS_MOUNT))
                first["suggest"] = os.path.relpath(host_real, os.path.dirname(here))
            else:
                problem = "it points to %s, outside the models root" % target
        else:
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    if first is None:
        return None
    container_path = None
    if problem is None:
        if not os.path.isdir(os.path.join(models_root, *done)):
            problem = "it points to %s, which does not exist" % first["target"]
        else:
            container_path = "/".join([MODELS_MOUNT] + done)
    first.update(container_path=container_path, problem=problem)
    return first


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


def host_info(params):
    connected = account(uid=os.getuid()) or {"name": str(os.getuid()), "uid": os.getuid(), "gid": os.getgid(),
                                             "home": os.environ.get("HOME", "/")}
    name = params["host_user"] or (os.environ.get("SUDO_USER", "") if connected["uid"] == 0 else connected["name"])
    user = (account(name=name) if name else None) or {"name": name, "uid": None, "gid": None, "home": None}
    user["found"] = user["uid"] is not None
    root = (params["host_root"] or os.path.join(user["home"] or "/nonexistent", ROOT_NAME)).rstrip("/") or "/"
    result = {"connected_user": connected, "host_user": user, "host_root": root, "root": entry(root),
              "entries": listing(root), "env_file": env_file_facts(params["env_file"])}
    if params["runtime_package"]:
        result["runtime"] = runtime_manifest.verify(os.path.join(root, "runtime", params["runtime_package"]))
    if params["model"]:
        model_dir = os.path.join(root, "models", params["model"].strip("/"))
        result["model_dir"] = model_dir
        link = model_link(os.path.join(root, "models"), params["model"].strip("/"))
        result["model_link"] = link
        # through a link, what the container reaches (an absolute /models/... link leads nowhere on the host itself),
        # listed under the model directory's own path
        real_dir = os.path.join(root, "models", link["container_path"][len(MODELS_MOUNT) + 1:]) \
            if link and link["container_path"] else model_dir
        if not model_dir.startswith(os.path.join(root, "models") + "/") or not os.path.isdir(real_dir) \
                or (link and not link["container_path"]):
            return result
        seen = set(e["path"] for e in result["entries"])
        for item in listing(real_dir):
            item["path"] = model_dir + item["path"][len(real_dir):]
            if item["path"] not in seen:
                result["entries"].append(item)
    return result


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            host_user=dict(type="str", default=""),
            host_root=dict(type="str", default=""),
            model=dict(type="str", default=""),
            env_file=dict(type="str", default=""),
            runtime_package=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    module.exit_json(changed=False, **host_info(module.params))


def main():
    run_module()


if __name__ == "__main__":
    main()

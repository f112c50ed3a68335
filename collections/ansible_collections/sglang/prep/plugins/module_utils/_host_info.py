# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""The body of the module sglang_host_info (its file holds the argument spec and the documentation)."""

from __future__ import annotations

import hashlib
import os
import pwd
import stat
from ansible_collections.sglang.prep.plugins.module_utils import _runtime_manifest as runtime_manifest


ROOT_NAME = "sglang-observability"
DEPTH = 2
MODELS_MOUNT = "/models"  # where the container sees <host root>/models (contract.MODELS_ROOT)
MAX_LINKS = 40  # as the kernel's ELOOP limit


def argument_spec():
    """Options of sglang_host_info, also sglang_prime's O(host) (the look at the host in the same call)."""
    return dict(host_user=dict(type="str", default=""), host_root=dict(type="str", default=""),
                model=dict(type="str", default=""), env_file=dict(type="str", default=""),
                runtime_package=dict(type="str", default=""))


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
        elif target == MODELS_MOUNT or target.startswith(MODELS_MOUNT + "/"):
            done, parts = [], [p for p in target[len(MODELS_MOUNT):].split("/") if p not in ("", ".")] + parts
        elif target.startswith("/"):
            problem = _absolute_link_problem(models_root, here, target, first)
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


def _absolute_link_problem(models_root, here, target, first):
    """Why the container cannot follow the absolute link ``here`` (to ``target``, not under /models); a link that
    stays inside the models root on the host gets the relative target that works (``first["suggest"]``)."""
    host_real = os.path.realpath(here)
    root_real = os.path.realpath(models_root)
    if host_real == root_real or host_real.startswith(root_real + "/"):
        first["suggest"] = os.path.relpath(host_real, os.path.dirname(here))
        return ("it is an absolute link (to %s), which the container resolves in its own file system, "
                "where the models root is %s" % (target, MODELS_MOUNT))
    return "it points to %s, outside the models root" % target


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


def run(module):
    """The module's work, on its checked arguments."""
    module.exit_json(changed=False, **host_info(module.params))

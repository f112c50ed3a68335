# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: prerequisite_rows
short_description: One row per host prerequisite of a prime, each with what was found and the fix for a miss
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.2.0
description:
  - Turns what the prerequisites check of role C(sglang.prep.prime) (playbook C(sglang.prep.preflight)) looked at into
    one row per prerequisite - the host user, the NVIDIA driver and GPUs, the NVIDIA Container Toolkit (those two only
    when GPUs are wanted), Docker for the connecting user, C(python3-requests), free disk for the caches, the model and the image.
  - Each row has C(check), C(ok), C(found) (what was seen, at most 160 characters of an error) and C(fix).
positional: _input
options:
  _input:
    description:
      - What was looked at, each the registered result of its task - C(facts) (M(sglang.prep.sglang_host_info)),
        C(gpus) (C(nvidia-smi -L)), C(engine) (C(community.docker.docker_host_info)), C(hook) (a stat of the runtime hook),
        C(requests) (C(python3 -c 'import requests')), C(df) (C(df -P -B1)), C(image_info) (C(community.docker.docker_image_info)),
        C(manifest) (C(docker manifest inspect)); and the settings C(gpus_wanted) (bool), C(gpus_setting) (C(prime_gpus)),
        C(min_free_gb), C(model), C(models_root) and C(image).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Build the rows
  ansible.builtin.set_fact:
    rows: "{{ {'facts': host_facts, 'engine': engine, 'requests': requests, 'df': df, 'gpus_wanted': false,
              'min_free_gb': 50, 'model': '/models/m', 'models_root': '/models', 'image': 'img'} | sglang.prep.prerequisite_rows }}"
"""

RETURN = r"""
_value:
  description: One row per prerequisite, in the order above.
  type: list
  elements: dict
  sample: [{"check": "python3-requests", "ok": true, "found": "importable", "fix": "sudo apt-get install python3-requests ..."}]
"""

import re

from ansible_collections.sglang.prep.plugins.filter.port_checks import as_int

GIB = 1024 ** 3


def _text(value, default=""):
    return (default if value is None else str(value)).strip()


def _row(check, ok, found, fix):
    return {"check": check, "ok": bool(ok), "found": found, "fix": fix}


def _user(facts):
    user = facts.get("host_user") or {}
    found = user.get("found") or False
    return _row("Host user " + (user.get("name") or "?"), found and as_int(user.get("uid")) != 0,
                ("uid %s, host root %s" % (user.get("uid"), facts.get("host_root"))) if found
                else _text(facts.get("msg", "not found in the password database"))[:160],
                "create the account, or set prime_host_user to the unprivileged account that owns the host directories (never root)")


def _gpus(look):
    result = look.get("gpus") or {}
    gpus = [line for line in (result.get("stdout") or "").splitlines() if re.match(r"GPU [0-9]+:", line)]
    answer = _text(result.get("stderr")) or _text(result.get("msg", "no answer")) or "no GPU listed"
    return _row("NVIDIA driver and GPUs", result.get("rc", 1) == 0 and gpus,
                ("%d GPU(s): %s" % (len(gpus), re.sub(r" \(UUID.*$", "", gpus[0]))) if gpus else ("nvidia-smi -L: " + answer)[:160],
                "install the NVIDIA driver (role nvidia.nvidia_driver, docs/usage.md: Prerequisites) and check nvidia-smi -L")


def _toolkit(look):
    runtimes = ((look.get("engine") or {}).get("host_info") or {}).get("Runtimes") or {}
    hook = bool(((look.get("hook") or {}).get("stat") or {}).get("exists"))
    return _row("NVIDIA Container Toolkit", "nvidia" in runtimes or hook,
                "runtimes: %s; hook %s" % (", ".join(runtimes) or "unknown", "present" if hook else "missing"),
                "install the NVIDIA Container Toolkit (role nvidia.nvidia_docker or the toolkit packages), then: "
                "sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker")


def _gpu_rows(look):
    if look.get("gpus_wanted"):
        return [_gpus(look), _toolkit(look)]
    found = "not needed: prime_gpus=%s" % look.get("gpus_setting")
    return [_row("NVIDIA driver and GPUs", True, found, ""), _row("NVIDIA Container Toolkit", True, found, "")]


def _docker(look):
    engine = look.get("engine") or {}
    who = ((look.get("facts") or {}).get("connected_user") or {}).get("name") or "the connecting user"
    info = engine.get("host_info")
    return _row("Docker for " + who, "host_info" in engine,
                ("engine %s" % (info or {}).get("ServerVersion", "?")) if "host_info" in engine else _text(engine.get("msg", "no answer"))[:160],
                "install Docker and add %s to the docker group (sudo usermod -aG docker <user>, then log in again)" % who)


def _requests(look):
    result = look.get("requests") or {}
    ok = result.get("rc", 1) == 0
    lines = _text(result.get("stderr")).splitlines()
    return _row("python3-requests", ok, "importable" if ok else (lines[-1] if lines else "not importable"),
                "sudo apt-get install python3-requests (or: dnf install python3-requests), for the Python Ansible uses on the host")


def _disk(look):
    df = look.get("df") or {}
    lines = (df.get("stdout") or "").splitlines()
    fields = lines[-1].split() if lines else []
    free = as_int(fields[3]) if len(fields) > 3 else -1
    minimum = look.get("min_free_gb", 0)
    return _row("Free disk for the caches", free >= float(minimum) * GIB,
                ("%s GiB free on %s" % (round(free / float(GIB), 1), fields[5] if len(fields) > 5 else "?")) if free >= 0
                else "unknown (%s)" % _text(df.get("stderr")),
                "free at least %s GiB where the host root lives (prime_host_root), or lower prime_preflight_min_free_gb" % minimum)


def _model(look):
    facts = look.get("facts") or {}
    model = look.get("model") or ""
    root = facts.get("host_root") or ""
    name = re.sub("^" + (look.get("models_root") or "/models") + "/+", "", model)
    model_file = "%s/models/%s/config.json" % (root, name)
    ok = model_file in [entry.get("path") for entry in facts.get("entries") or [] if entry.get("isreg")]
    found = (("found" if ok else "no " + model_file) if "host_root" in facts
             else _text(facts.get("msg", "the host root could not be looked at")))
    user = (facts.get("host_user") or {}).get("name") or "the host user"
    return _row("Model " + model, ok, found,
                "copy the model (its config.json and weights) to %s/models/, owned by %s" % (root or "<host root>", user))


def _image(look):
    local = len((look.get("image_info") or {}).get("images") or []) > 0
    manifest = look.get("manifest") or {}
    pullable = manifest.get("rc", 1) == 0
    return _row("Image %s" % look.get("image"), local or pullable,
                "on the host" if local else ("pullable" if pullable else _text(manifest.get("stderr", "the engine cannot be asked"))[:160]),
                "check prime_image, the registry and the login (prime_registry_login, docs/usage.md: Private registries), "
                "or docker load the image on the host")


def prerequisite_rows(look):
    """One row per prerequisite from what was looked at (``look``: the registered results and the settings)."""
    look = dict(look or {})
    facts = look.get("facts") or {}
    return [_user(facts)] + _gpu_rows(look) + [_docker(look), _requests(look), _disk(look), _model(look), _image(look)]


class FilterModule(object):
    def filters(self):
        return {"prerequisite_rows": prerequisite_rows}

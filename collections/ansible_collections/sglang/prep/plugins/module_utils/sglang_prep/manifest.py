# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run manifest telemetry/container_runs/<run_id>.json: schema, reading, path mapping.

Written once by the container init (as devuser) before the pointer is published, never
mutated afterwards. Everything that needs a path of the current run reads it from here.
"""

from __future__ import annotations

import json
import os

from . import contract, pointer
from .errors import PrepError

# Top-level fields every manifest carries (DESIGN.md 3, notebook appendix B).
REQUIRED_FIELDS = (
    "schema_version", "container_run_id", "started_at", "image", "git_revision",
    "services", "telemetry_surfaces", "storage", "paths", "caches", "profile_cache",
)
REQUIRED_CONTAINER_PATHS = ("telemetry_root", "profiles_root", "models_root", "log_file", "manifest", "run_dir")


def read_manifest(path):
    """Load and check a manifest; PrepError(bad_manifest) says what is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise PrepError("bad_manifest", "manifest %s named by the pointer does not exist; the pointer is "
                        "stale (restart the container so init publishes a new run)" % path, path=path)
    except (OSError, ValueError) as exc:
        raise PrepError("bad_manifest", "manifest %s is unreadable or not JSON: %s" % (path, exc), path=path)
    if not isinstance(data, dict):
        raise PrepError("bad_manifest", "manifest %s is not a JSON object" % path, path=path)
    missing = [f for f in REQUIRED_FIELDS if f not in data]
    cpaths = data.get("paths", {}).get("container", {}) if isinstance(data.get("paths"), dict) else {}
    missing += ["paths.container." + p for p in REQUIRED_CONTAINER_PATHS if p not in cpaths]
    if missing:
        raise PrepError("bad_manifest", "manifest %s lacks %s; it was not written by this version of the "
                        "container init (restart the container)" % (path, ", ".join(missing)), path=path)
    return data


def load_current(pointer_file=None):
    """(pointer dict, manifest dict) of the current run, read inside the container."""
    ptr = pointer.read_pointer(pointer_file or contract.pointer_path())
    return ptr, read_manifest(ptr["container"])


def host_path(manifest, container_path):
    """Map a container path under a bind mount to the host path, from manifest paths.host."""
    if not container_path:
        return None
    host = manifest.get("paths", {}).get("host", {}) or {}
    for key, root in (("telemetry_root", contract.TELEMETRY_ROOT), ("profiles_root", contract.PROFILES_ROOT),
                      ("models_root", contract.MODELS_ROOT), ("hf_root", contract.HF_ROOT)):
        if host.get(key) and (container_path == root or container_path.startswith(root + "/")):
            return os.path.join(host[key], os.path.relpath(container_path, root))
    return None

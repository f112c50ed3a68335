# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cache snapshots: what every cache under profiles/ holds, and which are partial.

Works on either side of the mount: in the container on /profiles, on the host on the
profiles root named by the manifest's paths.host. No XDG fallback anywhere.
"""

from __future__ import annotations

import os

from . import contract


def relative_to_profiles(container_path):
    return os.path.relpath(container_path, contract.PROFILES_ROOT)


def dir_stats(path):
    """exists, size (bytes), count (files), latest_mtime (epoch seconds or None)."""
    if not os.path.isdir(path):
        return {"exists": False, "size": 0, "count": 0, "latest_mtime": None}
    size = count = 0
    latest = None
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            size += st.st_size
            count += 1
            if latest is None or st.st_mtime > latest:
                latest = st.st_mtime
    return {"exists": True, "size": size, "count": count,
            "latest_mtime": round(latest, 3) if latest is not None else None}


def in_progress_stages(profiles_root=contract.PROFILES_ROOT):
    """Stages whose in-progress marker is present (started, not finished successfully)."""
    marker_dir = os.path.join(profiles_root, relative_to_profiles(contract.IN_PROGRESS_DIR))
    try:
        names = os.listdir(marker_dir)
    except OSError:
        return []
    return sorted(n[:-5] for n in names if n.endswith(".json") and n[:-5] in contract.STAGE_ORDER)


def snapshot(profiles_root=contract.PROFILES_ROOT, host_profiles_root=None):
    """{cache name: {exists, size, count, latest_mtime, partial, partial_stages, path, host_path}}."""
    partial = in_progress_stages(profiles_root)
    out = {}
    for name, (container_path, _env) in sorted(contract.CACHES.items()):
        rel = relative_to_profiles(container_path)
        entry = dir_stats(os.path.join(profiles_root, rel))
        stages = [s for s in partial if contract.STAGE_CACHE[s] == name]
        entry["partial"] = bool(stages)
        entry["partial_stages"] = stages
        entry["path"] = container_path
        entry["host_path"] = os.path.join(host_profiles_root, rel) if host_profiles_root else None
        out[name] = entry
    return out

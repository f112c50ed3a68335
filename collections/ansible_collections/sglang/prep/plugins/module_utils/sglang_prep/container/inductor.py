# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inductor stage's two decisions: whether the image's torch needs its static CUDA launcher off, and when a
compiled server has settled (a start that adds no cache file).

Static launcher (tests/gpu/evidence): with torch 2.11's default static CUDA launcher, a kernel loaded from the FX
graph cache loses its coordinate-descent mark in ``CachingAutotuner.recheck_autotune_cache``, so every start tunes
again and compiles the configs it visits; later torch releases carry the mark over
(``compile_result.config.found_by_coordesc = found_by_coordesc``). The probe reads that method's source in the python
that runs the servers and decides from it; TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER=0 is set only where it is needed.

Settling: even with the launcher off, the first warm start of a compiled server on a real GPU adds the configs
coordinate descent visits from the cached winners (64 to 104 Triton files on an H200 and an H100), and only the
second adds none. ``until_settled`` restarts until a start adds nothing, at most a bounded number of times.
"""

from __future__ import annotations

import json
import re
import subprocess

PROBE_TIMEOUT_S = 120.0
# Runs in the python that launches the servers, with TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER unset (torch's default).
STATIC_LAUNCHER_PROBE = r"""
import inspect, json, os
os.environ.pop("TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER", None)
out = {}
try:
    import torch
    out["torch_version"] = str(torch.__version__)
    from torch._inductor import config
    out["static_default"] = bool(getattr(config, "use_static_cuda_launcher", False))
    from torch._inductor.runtime.triton_heuristics import CachingAutotuner
    method = getattr(CachingAutotuner, "recheck_autotune_cache", None)
    out["recheck_source"] = inspect.getsource(method) if method is not None else None
except Exception as exc:
    out["error"] = "%s: %s" % (type(exc).__name__, exc)
print(json.dumps(out))
"""
# torch 2.13+: the cached winner keeps the mark coordinate descent gave it
KEEPS_MARK_RE = re.compile(r"\.config\.found_by_coordesc\s*=\s*found_by_coordesc")
_MEMO = {}


def decide(info):
    """{needed, reason, torch_version, static_default, keeps_coordesc_mark} from the probe's answer (pure)."""
    info = info or {}
    out = {"needed": None, "torch_version": info.get("torch_version"), "static_default": info.get("static_default"),
           "keeps_coordesc_mark": None}
    if info.get("error"):
        out["reason"] = ("torch's Inductor could not be inspected (%s): TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER is left "
                         "to torch" % info["error"])
        return out
    if not info.get("static_default"):
        out.update(needed=False, reason="torch %s does not use its static CUDA launcher by default: nothing to turn off"
                   % info.get("torch_version"))
        return out
    source = info.get("recheck_source")
    if not source:
        out.update(needed=True, reason="torch %s has no CachingAutotuner.recheck_autotune_cache to inspect: the static "
                   "CUDA launcher is turned off, the setting that settled on torch 2.11 (tests/gpu/evidence)"
                   % info.get("torch_version"))
        return out
    keeps = bool(KEEPS_MARK_RE.search(source))
    out["keeps_coordesc_mark"] = keeps
    if keeps:
        out.update(needed=False, reason="torch %s keeps a cached kernel's coordinate-descent mark "
                   "(CachingAutotuner.recheck_autotune_cache): its static CUDA launcher stays on" % info.get("torch_version"))
    else:
        out.update(needed=True, reason="torch %s drops a cached kernel's coordinate-descent mark with its static CUDA "
                   "launcher (CachingAutotuner.recheck_autotune_cache), so every start would tune again: "
                   "TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER=0" % info.get("torch_version"))
    return out


def probe_static_launcher(python, env):
    """decide() for the torch of ``python`` (run once per python and process)."""
    if python in _MEMO:
        return dict(_MEMO[python])
    env = dict(env)
    env.pop("TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER", None)
    try:
        proc = subprocess.run([python, "-c", STATIC_LAUNCHER_PROBE], env=env, stdout=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=PROBE_TIMEOUT_S, check=False)
        lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
        info = json.loads(lines[-1]) if proc.returncode == 0 and lines else {
            "error": "%s exited %s: %s" % (python, proc.returncode, proc.stderr.decode("utf-8", "replace").strip()[-200:])}
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        info = {"error": "%s: %s" % (type(exc).__name__, exc)}
    result = decide(info)
    _MEMO[python] = result
    return dict(result)


def changed_files(primed):
    """Files a start added or rewrote, over every cache ({cache: {files_added, files_rewritten}})."""
    return sum(entry.get("files_added", 0) + entry.get("files_rewritten", 0) for entry in (primed or {}).values())


def until_settled(start_once, max_starts, say=lambda _m: None):
    """Start (``start_once(number)`` -> {cache: {files_added, files_rewritten, ...}}) until a start changes no cache
    file, at most ``max_starts`` times. Returns {settled, starts, max_starts, per_start}."""
    per_start = []
    for number in range(1, int(max_starts) + 1):
        primed = start_once(number)
        changed = changed_files(primed)
        per_start.append({"start": number, "files_changed": changed,
                          "by_cache": dict((cache, entry.get("files_added", 0) + entry.get("files_rewritten", 0))
                                           for cache, entry in sorted((primed or {}).items())
                                           if entry.get("files_added", 0) + entry.get("files_rewritten", 0))})
        say("start %d of at most %d added or rewrote %d cache file%s%s" % (
            number, max_starts, changed, "" if changed == 1 else "s",
            " (%s)" % ", ".join("%s %d" % kv for kv in per_start[-1]["by_cache"].items()) if changed else ""))
        if changed == 0:
            return {"settled": True, "starts": number, "max_starts": int(max_starts), "per_start": per_start}
    return {"settled": False, "starts": len(per_start), "max_starts": int(max_starts), "per_start": per_start}

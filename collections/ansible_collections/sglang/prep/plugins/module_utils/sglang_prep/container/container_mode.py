# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container mode of the current run: caching (Prometheus leaves the SGLang servers alone) or serving (it
scrapes them). prime_container_mode picks it for priming; serve always switches to serving.

A switch rewrites the run's prometheus.yml (prometheus_config.render, the mode on its first line) and makes the
running Prometheus reload it with SIGHUP, Prometheus' own reload: the process, its TSDB and every sample it holds
stay, so no container restart and no data loss. The switch is proven, not assumed: Prometheus' loaded
configuration (/api/v1/status/config) must show the SGLang job present (serving) or absent (caching) before the
switch counts as done; otherwise telemetry_reload_failed, with the file already rewritten so the next container
start applies it. A container start always begins in serving (init renders the default), and the role switches it
when prime_container_mode says caching.
"""

from __future__ import annotations

import os
import re
import signal
import time

from .. import contract, jsonio, manifest
from ..errors import PrepError
from . import httpc, prometheus_config, services
from .layout import Layout

RELOAD_TIMEOUT_S = 10.0
POLL_S = 0.05
_SERVER_JOB_RE = re.compile(r"^\s*-?\s*job_name:\s*[\"']?%s[\"']?\s*$" % re.escape(prometheus_config.SERVER_JOB), re.M)


def config_path(run_manifest):
    """The run's prometheus.yml on this filesystem (the manifest's contract path, through the run's layout)."""
    path = ((run_manifest or {}).get("storage") or {}).get("prometheus_config")
    return Layout.from_manifest(run_manifest).fs(path) if path else None


def read_config(run_manifest):
    """The run's prometheus.yml text, or None when it has none (no Prometheus config written)."""
    path = config_path(run_manifest)
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def current(run_manifest):
    """The run's container mode (the first line of its prometheus.yml), or None when it has no config."""
    return prometheus_config.mode_of(read_config(run_manifest))


def scrapes_servers(config_yaml):
    """Whether a Prometheus configuration (as /api/v1/status/config gives it) has the SGLang servers' job."""
    return bool(_SERVER_JOB_RE.search(config_yaml or ""))


def _exporters(run_manifest):
    svcs = run_manifest.get("services") or {}
    return [name for name in services.EXPORTERS if (svcs.get(name) or {}).get("status") == "running"]


def _prometheus(run_manifest):
    """(pid, base url) of the run's Prometheus, or (None, None) when it does not run."""
    entry = (run_manifest.get("services") or {}).get("prometheus") or {}
    url = ((run_manifest.get("telemetry_surfaces") or {}).get("prometheus") or "").rstrip("/")
    if entry.get("status") != "running" or not entry.get("pid") or not url:
        return None, None
    return int(entry["pid"]), url


def loaded_config(base, timeout=2.0):
    """The configuration Prometheus runs with now (its YAML), or None when it does not answer."""
    resp = httpc.call(base + "/api/v1/status/config", timeout=timeout)
    data = resp.json() if resp.status == 200 else None
    if not isinstance(data, dict) or data.get("status") != "success":
        return None
    return (data.get("data") or {}).get("yaml")


def _reload(pid, base, mode, timeout_s):
    """SIGHUP Prometheus and wait until its loaded configuration is the one of ``mode``; seconds it took."""
    want = mode == prometheus_config.SERVING
    start = time.monotonic()
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise PrepError("telemetry_reload_failed", "cannot signal Prometheus (pid %d) to reload its configuration: %s; "
                        "the configuration file is rewritten for %s mode, so restarting the container applies it"
                        % (pid, exc, mode)) from exc
    while True:
        loaded = loaded_config(base)
        if loaded is not None and scrapes_servers(loaded) == want:
            return round(time.monotonic() - start, 3)
        if time.monotonic() - start >= timeout_s:
            raise PrepError("telemetry_reload_failed", "Prometheus (pid %d, %s) did not load the %s-mode configuration "
                            "within %gs after SIGHUP (%s); its output is in the session log. The configuration file "
                            "is rewritten, so restarting the container applies it"
                            % (pid, base, mode, timeout_s, "it does not answer" if loaded is None else
                               "it still %s the SGLang servers" % ("scrapes" if not want else "does not scrape")))
        time.sleep(POLL_S)


def switch(mode, pointer=None, check=False, timeout_s=RELOAD_TIMEOUT_S):
    """Put the current run in container ``mode``; the outcome as a dict (changed, previous, reloaded, ...).

    With ``check`` nothing is written or signalled: the outcome says whether it would change."""
    if mode not in prometheus_config.MODES:
        raise PrepError("bad_input", "unknown container mode %r: one of %s" % (mode, ", ".join(prometheus_config.MODES)))
    _ptr, run_manifest = manifest.load_current(pointer)
    run_id = run_manifest["container_run_id"]
    previous = current(run_manifest)
    out = {"status": "ok", "mode": mode, "previous": previous, "changed": previous != mode, "run_id": run_id,
           "config": config_path(run_manifest), "reloaded": False, "reload_s": None, "message": None}
    if not out["changed"]:
        out["message"] = "container mode is already %s (run %s)" % (mode, run_id)
        return out
    if check:
        out["status"] = "would_run"
        out["message"] = "would switch the container from %s to %s mode" % (previous or "no", mode)
        return out
    text = prometheus_config.render(run_id, run_manifest.get("listen") or "127.0.0.1", _exporters(run_manifest),
                                    run_manifest.get("server_port") or contract.SERVER_PORT, mode)
    jsonio.write_text_atomic(out["config"], text)
    pid, base = _prometheus(run_manifest)
    if pid is None:
        out["message"] = ("container mode %s written to %s; Prometheus does not run in this container, so there was "
                          "nothing to reload" % (mode, out["config"]))
        return out
    reload_s = _reload(pid, base, mode, timeout_s)
    out.update(reload_s=reload_s, reloaded=True)
    out["message"] = "container switched from %s to %s mode: Prometheus reloaded its configuration in %.2f s (%s)" % (
        previous, mode, reload_s, "the SGLang servers are scraped" if mode == prometheus_config.SERVING
        else "the SGLang servers are not scraped")
    return out

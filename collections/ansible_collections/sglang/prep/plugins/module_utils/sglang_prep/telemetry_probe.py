# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Best-effort check that a warm-up's tokens reached telemetry: the server's /metrics and Prometheus.

Never fails a stage; the outcome is recorded under telemetry_probe in the stage JSON.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode

from . import httpc

QUERY_METRIC = "sglang:prompt_tokens_total"
POLL_S = 0.5
_SAMPLE_RE = re.compile(r"^sglang:prompt_tokens_total(\{[^}]*\})?\s+([0-9.eE+-]+)", re.M)


def prometheus_url(run_manifest):
    """Prometheus of this run, as the manifest records it (None when it is not running)."""
    surfaces = (run_manifest or {}).get("telemetry_surfaces") or {}
    url = surfaces.get("prometheus")
    return url.rstrip("/") if url else None


def server_metrics(base_url, timeout=3.0):
    """Sum of sglang:prompt_tokens_total on the server's own /metrics (same port, --enable-metrics)."""
    resp = httpc.call(base_url + "/metrics", timeout=timeout)
    if resp.status != 200:
        return {"ok": False, "error": resp.describe()}
    samples = _SAMPLE_RE.findall(resp.body)
    total = sum(float(value) for _labels, value in samples)
    return {"ok": bool(samples) and total > 0, "series": len(samples), "prompt_tokens": total}


def _scrapes_port(base, port, timeout):
    """(True/False whether Prometheus has an active target on the port, or None; why not)."""
    resp = httpc.call(base + "/api/v1/targets?state=active", timeout=timeout)
    data = resp.json() if resp.status == 200 else None
    if not isinstance(data, dict):
        return None, resp.describe()
    targets = (data.get("data") or {}).get("activeTargets") or []
    return any((":%d/" % port) in (t.get("scrapeUrl") or "") for t in targets), None


def prometheus(base, run_id, port, timeout_s):
    """Query Prometheus for this run's prompt-token counter until it shows up or the deadline passes."""
    start = time.monotonic()
    deadline = start + max(0.0, float(timeout_s))
    query = '%s{run_id="%s"}' % (QUERY_METRIC, run_id)
    out = {"ok": False, "url": base, "query": query, "sample_count": 0, "value": None, "error": None}
    if not base:
        out["error"] = "Prometheus is not running in this container (manifest telemetry_surfaces.prometheus is null)"
        return out
    scraped, why = _scrapes_port(base, port, timeout=2.0)
    if scraped is None:
        out["error"] = "Prometheus not reachable: %s" % why
        return out
    if not scraped:
        out["error"] = "Prometheus has no active scrape target on port %d" % port
        return out
    url = base + "/api/v1/query?" + urlencode({"query": query})
    while True:
        resp = httpc.call(url, timeout=2.0)
        data = resp.json() if resp.status == 200 else None
        if not isinstance(data, dict) or data.get("status") != "success":
            out["error"] = "query failed: %s" % resp.describe()
            break
        series = (data.get("data") or {}).get("result") or []
        out["sample_count"] = len(series)
        if series:
            out["value"] = sum(float((s.get("value") or [0, "0"])[1]) for s in series)
            out["ok"] = True
            out["error"] = None
            break
        out["error"] = "no sample of %s yet (the server may have been scraped before /generate)" % query
        if time.monotonic() + POLL_S > deadline:
            break
        time.sleep(POLL_S)
    out["waited_s"] = round(time.monotonic() - start, 3)
    return out

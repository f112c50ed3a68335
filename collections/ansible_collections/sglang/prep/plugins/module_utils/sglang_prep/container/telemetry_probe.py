# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Best-effort check that a warm-up's tokens reached telemetry: the server's /metrics and Prometheus.

Never fails a stage; the outcome is recorded under telemetry_probe in the stage JSON. In caching mode
(prime_container_mode: caching) Prometheus does not scrape the stage servers, so its part is not asked: the probe
records ``ok`` null, ``skipped`` true and the reason, and keeps the server's own /metrics check.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode

from . import httpc

QUERY_METRIC = "sglang:prompt_tokens_total"
POLL_S = 0.05  # the stage servers are scraped every 250 ms (prometheus_config): a finer poll than that
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


def _instant(base, query):
    """(result list, error) of an instant query."""
    resp = httpc.call(base + "/api/v1/query?" + urlencode({"query": query}), timeout=2.0)
    data = resp.json() if resp.status == 200 else None
    if not isinstance(data, dict) or data.get("status") != "success":
        return None, "query %s failed: %s" % (query, resp.describe())
    return (data.get("data") or {}).get("result") or [], None


def not_scraped(base, run_id, mode):
    """The Prometheus part of the probe when the container mode leaves the stage servers unscraped: skipped, with
    the reason (never an ok)."""
    return {"ok": None, "skipped": True, "url": base, "query": '%s{run_id="%s"}' % (QUERY_METRIC, run_id),
            "sample_count": 0, "value": None, "error": None, "waited_s": 0.0, "container_mode": mode,
            "reason": "container mode %s: Prometheus does not scrape the SGLang servers while caches are primed "
                      "(prime_container_mode), so this run's tokens are not looked for there; serve switches the "
                      "container to serving mode, which scrapes them" % mode}


def prometheus(base, run_id, port, timeout_s, since):
    """Wait until Prometheus holds a sample of this run's prompt-token counter scraped after ``since``.

    ``since`` (epoch seconds) is when the warm-up's /generate returned, so a sample left by an
    earlier stage server of the same run does not count. Prometheus applies new scrape targets a
    few seconds after it starts, so a missing target is waited for like a missing sample.
    """
    start = time.monotonic()
    deadline = start + max(0.0, float(timeout_s))
    selector = '%s{run_id="%s"}' % (QUERY_METRIC, run_id)
    out = {"ok": False, "url": base, "query": selector, "sample_count": 0, "value": None, "error": None}
    if not base:
        out["error"] = "Prometheus is not running in this container (manifest telemetry_surfaces.prometheus is null)"
        return out
    target = False
    while True:
        if not target:
            target, why = _scrapes_port(base, port, timeout=2.0)
            if target is None:
                out["error"] = "Prometheus not reachable: %s" % why
                break
            if not target:
                out["error"] = "Prometheus has no active scrape target on port %d" % port
        if target:
            stamps, error = _instant(base, "timestamp(%s)" % selector)
            if error:
                out["error"] = error
                break
            fresh = [s for s in stamps if float((s.get("value") or [0, "0"])[1]) >= since]
            if fresh:
                series, error = _instant(base, selector)
                out["sample_count"] = len(series or [])
                out["value"] = sum(float((s.get("value") or [0, "0"])[1]) for s in series or [])
                out["ok"] = bool(series)
                out["error"] = error
                break
            out["error"] = "no sample of %s scraped since the warm-up request yet" % selector
        if time.monotonic() + POLL_S > deadline:
            break
        time.sleep(POLL_S)
    out["waited_s"] = round(time.monotonic() - start, 3)
    return out

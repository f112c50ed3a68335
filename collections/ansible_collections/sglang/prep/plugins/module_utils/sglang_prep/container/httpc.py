# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tiny HTTP client for local endpoints (stage servers, Prometheus). Proxies are never used."""

from __future__ import annotations

import json
import socket
from http import client as httpclient
from urllib import error as urlerror
from urllib import request as urlrequest

_OPENER = urlrequest.build_opener(urlrequest.ProxyHandler({}))


class Response(object):
    def __init__(self, status, body, error=None):
        self.status = status  # int, or None when no HTTP answer came back
        self.body = body
        self.error = error  # text of a connection-level failure

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def describe(self):
        if self.status is None:
            return "no HTTP response (%s)" % self.error
        return "HTTP %d: %s" % (self.status, self.body.strip()[:500])


def bearer(key):
    """The request headers that present ``key`` as SGLang's --api-key expects (``Authorization: Bearer <key>``); none
    without a key. The headers are never logged or recorded."""
    return {"Authorization": "Bearer %s" % key} if key else {}


def call(url, payload=None, timeout=5.0, method=None, headers=None):
    """GET (or POST with a JSON payload) url; never raises for HTTP or connection errors."""
    data = None
    headers = dict(headers or {})
    if payload is not None:
        data = json.dumps(payload).encode("utf-8")
        headers["Content-Type"] = "application/json"
    req = urlrequest.Request(url, data=data, headers=headers, method=method or ("POST" if data else "GET"))
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return Response(resp.status, resp.read().decode("utf-8", "replace"))
    except urlerror.HTTPError as exc:
        try:
            body = exc.read().decode("utf-8", "replace")
        except Exception:
            body = ""
        return Response(exc.code, body)
    except (urlerror.URLError, httpclient.HTTPException, socket.timeout, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Response(None, "", "%s" % reason)

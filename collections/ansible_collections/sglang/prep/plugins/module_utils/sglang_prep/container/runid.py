# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run ids of container starts: container-run-<UTC yyyymmddThhmmssZ>-<8 hex>."""

from __future__ import annotations

import re
import secrets
import time

RUN_ID_PREFIX = "container-run-"
RUN_ID_RE = re.compile(r"^container-run-\d{8}T\d{6}Z-[0-9a-f]{8}$")


def iso_utc(epoch):
    """2026-10-10T18:37:37Z for an epoch time (the timestamp format of manifests and logs)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def new_run_id(epoch=None, suffix=None):
    """A fresh run id for a container start at ``epoch`` (now by default)."""
    epoch = time.time() if epoch is None else epoch
    suffix = secrets.token_hex(4) if suffix is None else suffix
    run_id = RUN_ID_PREFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch)) + "-" + suffix
    if not RUN_ID_RE.match(run_id):
        raise ValueError("not a run id: %r (the suffix must be 8 lowercase hex digits)" % run_id)
    return run_id


def is_run_id(text):
    return bool(RUN_ID_RE.match(text or ""))

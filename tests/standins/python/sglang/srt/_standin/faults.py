# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""Fault knobs of the stand-in server (SGLANG_STANDIN_FAULT, comma-separated; see README.md)."""

from __future__ import annotations

import os

KNOWN = ("exit_at_start", "hang", "ignore_sigterm", "oom", "kv_dtype_drift", "generate_500",
         "nvrtc_missing", "libcuda_missing")


def active(env=None):
    """The set of requested faults; an unknown name is an error, so a typo cannot pass silently."""
    env = os.environ if env is None else env
    names = {n.strip() for n in (env.get("SGLANG_STANDIN_FAULT") or "").split(",") if n.strip()}
    unknown = sorted(names - set(KNOWN))
    if unknown:
        raise ValueError("unknown SGLANG_STANDIN_FAULT %s; known: %s" % (", ".join(unknown), ", ".join(KNOWN)))
    return names


def seconds(name, default):
    """A timing knob in seconds (SGLANG_STANDIN_START_DELAY_S, SGLANG_STANDIN_WARMUP_S, ...)."""
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default

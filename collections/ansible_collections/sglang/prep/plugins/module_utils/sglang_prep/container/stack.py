# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pinned stack: which probed versions differ from the ones the fidelity tables were checked against.

contract.FIDELITY_STACK is the one home of those versions (SGLang 0.5.23 and its pins). The plan compares the
container's probed sglang, torch, triton, flashinfer and deep_gemm with it before any stage is asked: by default
every difference is a warning in the plan and the priming state; with require (prime_require_pinned_stack) it is a
refusal, stack_unpinned, before anything runs.
"""

from __future__ import annotations

from .. import contract
from ..errors import PrepError

# package -> the probe field (container/probe.py) that holds its version
PROBE_FIELDS = (("sglang", "sglang_version"), ("torch", "torch_version"), ("triton", "triton_version"),
                ("flashinfer", "flashinfer_version"), ("deep_gemm", "deep_gemm_version"))


def release(version):
    """The public part of a version: '2.14.1+cu130' -> '2.14.1' (a local build label names no other release)."""
    return str(version).split("+", 1)[0].strip()


def differences(facts):
    """[{package, pinned, found}] for every package whose probed version differs (found None: not probed)."""
    out = []
    for package, field in PROBE_FIELDS:
        pinned = contract.FIDELITY_STACK[package]
        found = facts.get(field)
        if found is None or release(found) != pinned:
            out.append({"package": package, "pinned": pinned, "found": found})
    return out


def describe(diffs):
    return "; ".join("%s %s (checked against %s)" % (d["package"], d["found"] if d["found"] is not None else
                                                     "not found", d["pinned"]) for d in diffs)


def check(probe, require=False):
    """Warnings (a list of strings) naming every difference; PrepError(stack_unpinned) instead when ``require``."""
    diffs = differences(dict((field, probe.get(field)) for _package, field in PROBE_FIELDS))
    if not diffs:
        return []
    text = ("the container's stack differs from the one the priming tables were checked against (SGLang %s): %s"
            % (contract.FIDELITY_STACK["sglang"], describe(diffs)))
    if require:
        raise PrepError("stack_unpinned", text + ". prime_require_pinned_stack is on, so nothing was run: build the "
                        "image on %s (images/Dockerfile's default BASE_IMAGE), or turn prime_require_pinned_stack off "
                        "to prime this stack anyway with these differences reported" % contract.SGLANG_BASE_IMAGE,
                        differences=diffs)
    return [text + "; MoE config names, log lines and cache layouts may not be what this stack uses "
            "(prime_require_pinned_stack: true refuses such a stack)"]

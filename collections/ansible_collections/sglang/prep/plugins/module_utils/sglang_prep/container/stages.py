# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which runner each stage has: RUNNERS, the dispatch table the engine reads.

The runners live along their seams: runner.py (the StageRunner interface and the server lifecycle),
warmups.py (deep_gemm, flashinfer, inductor), moe_tune.py, servecheck_stage.py. Every StageRunner subclass
that sets ``name`` is the runner of that stage (a new runner in one of those files needs no line here). What the
code says about a stage is its row in registry.py; tests/unit/test_runtime_registry.py fails when RUNNERS and
the rows disagree.
"""

from __future__ import annotations

from .. import registry
from . import moe_tune, servecheck_stage, warmups  # noqa: F401  (their runners register by subclassing)
from .moe_tune import DEFAULT_MOE_BATCH_SIZES, MOE_DTYPES, tuner_location  # noqa: F401  (the CLI's)
from .runner import ServerStage, StageRunner  # noqa: F401  (the engine's)
from .warmups import WarmupStage  # noqa: F401  (a kind the registry test checks)


def _runners(base=StageRunner):
    """{stage name: runner class} of every subclass of ``base`` that names its stage."""
    out = {}
    for cls in base.__subclasses__():
        if cls.__dict__.get("name"):
            if cls.name in out:
                raise ValueError("two runners for stage %r: %s and %s" % (cls.name, out[cls.name].__name__,
                                                                          cls.__name__))
            out[cls.name] = cls
        for name, sub in _runners(cls).items():
            if name in out and out[name] is not sub:
                raise ValueError("two runners for stage %r: %s and %s" % (name, out[name].__name__, sub.__name__))
            out[name] = sub
    return out


def _in_registry_order(runners):
    """The runners in the registry's order (a runner without a row last: the registry test names it)."""
    return dict(sorted(runners.items(), key=lambda item: (registry.ORDER.index(item[0]) if item[0] in registry.ORDER
                                                          else len(registry.ORDER), item[0])))


RUNNERS = _in_registry_order(_runners())

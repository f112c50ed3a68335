# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which runner each stage has: RUNNERS, the dispatch table the engine reads.

The runners live along their seams: runner.py (the StageRunner interface and the server lifecycle),
warmups.py (deep_gemm, flashinfer, inductor), moe_tune.py, servecheck_stage.py. Every StageRunner subclass
of the RUNNER_MODULES that sets ``name`` is the runner of that stage (a new runner in one of them needs no line
here). What the code says about a stage is its row in registry.py; tests/unit/plugins/module_utils/sglang_prep/test_runtime_registry.py fails
when RUNNERS and the rows disagree.
"""

from __future__ import annotations

from .. import registry
from . import moe_tune, servecheck_stage, warmups
from .runner import StageRunner

RUNNER_MODULES = (warmups, moe_tune, servecheck_stage)


def _runners(modules=RUNNER_MODULES):
    """{stage name: runner class} of the StageRunner subclasses defined in ``modules`` that name their stage, in
    the registry's order (a runner without a row last: the registry test names it)."""
    out = {}
    for module in modules:
        for value in vars(module).values():
            if not (isinstance(value, type) and issubclass(value, StageRunner) and value.__module__ == module.__name__
                    and value.__dict__.get("name")):
                continue
            if value.name in out:
                raise ValueError("two runners for stage %r: %s and %s" % (value.name, out[value.name].__name__,
                                                                          value.__name__))
            out[value.name] = value
    return dict(sorted(out.items(), key=lambda item: (registry.ORDER.index(item[0]) if item[0] in registry.ORDER
                                                      else len(registry.ORDER), item[0])))


RUNNERS = _runners()

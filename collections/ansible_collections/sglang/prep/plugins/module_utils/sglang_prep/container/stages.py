# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which runner each stage has: RUNNERS, the dispatch table the engine reads.

The runners live along their seams: runner.py (the StageRunner interface and the server lifecycle),
warmups.py (deep_gemm, flashinfer, inductor), moe_tune.py, servecheck_stage.py. What the code says about a stage
is its row in registry.py; tests/unit/test_runtime_registry.py fails when RUNNERS and the rows disagree.
"""

from __future__ import annotations

from .moe_tune import DEFAULT_MOE_BATCH_SIZES, MOE_DTYPES, MoeTuneStage, tuner_location  # noqa: F401 (the CLI's)
from .runner import ServerStage, StageRunner  # noqa: F401 (the engine's)
from .servecheck_stage import ServeCheckStage
from .warmups import DeepGemmStage, FlashinferStage, InductorStage, WarmupStage  # noqa: F401 (WarmupStage: its kind)

RUNNERS = {
    "deep_gemm": DeepGemmStage,
    "moe_tune": MoeTuneStage,
    "flashinfer": FlashinferStage,
    "inductor": InductorStage,
    "serve_check": ServeCheckStage,
}

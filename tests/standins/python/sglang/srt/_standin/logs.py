# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""SGLang's log format: `[2026-11-29 12:00:00] message` on stderr, flushed per line.

Lines from the scheduler side (model runner, memory pool, kernels) carry ` TP0` in the
bracket as in the real server, where they come from the scheduler process.
"""

from __future__ import annotations

import logging
import sys

SCHEDULER_SIDE = (
    "sglang.srt.managers.scheduler",
    "sglang.srt.model_executor",
    "sglang.srt.mem_cache",
    "sglang.srt.layers",
)


class _TpPrefix(logging.Filter):
    def filter(self, record):
        record.tp_prefix = " TP0" if record.name.startswith(SCHEDULER_SIDE) else ""
        return True


def configure(level_name: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s%(tp_prefix)s] %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler.addFilter(_TpPrefix())
    root = logging.getLogger()
    root.handlers = [handler]
    level = logging.getLevelName(level_name.upper())
    root.setLevel(level if isinstance(level, int) else logging.INFO)

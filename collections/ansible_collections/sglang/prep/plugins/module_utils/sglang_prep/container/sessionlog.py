# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one session log of a run (telemetry/logs/<run_id>.log): init and every stage append to it."""

from __future__ import annotations

import time


def stamp():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def log(path, source, message):
    """Append one line ``<UTC time> [<source>] <message>``."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("%s [%s] %s\n" % (stamp(), source, message))

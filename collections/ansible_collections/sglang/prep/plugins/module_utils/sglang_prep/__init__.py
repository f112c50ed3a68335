# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sglang_prep: the container runtime of the sglang.prep collection (stdlib only).

Run inside the container as ``python3 -m sglang_prep --help``.
"""

from __future__ import annotations

__version__ = "1.0.0"

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""python3 -m sglang_prep: see cli.py."""

from __future__ import annotations

from .container.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

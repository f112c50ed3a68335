# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sglang_prep: the runtime of the sglang.prep collection (stdlib only).

Where each part runs:

- this directory: the contract both sides share (contract, errors, jsonio, caches, manifest,
  pointer). The host modules import these, and so does the container program;
- ``container/``: the container program (PID 1 init and its services, the stage engine, the
  stage runners, ledger, locks, signatures, the CLI). It runs only inside the container, as
  ``python3 -m sglang_prep --help``; no host module imports it.

The role deploys the whole package to ``<host root>/runtime/sglang_prep`` and the container
mounts it read-only.
"""

from __future__ import annotations

__version__ = "1.1.0"

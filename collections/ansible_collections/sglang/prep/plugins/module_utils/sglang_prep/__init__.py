# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sglang_prep: the runtime of the sglang.prep collection (stdlib only).

Where each part runs (docs/architecture.md has the layers and what each may import):

- this directory: the contract both sides share (registry, errors, contract, wording, jsonio, caches,
  manifest, pointer, server_flags). The host modules import these, and so does the container program;
  none of them imports container/;
- ``container/``: the container program (PID 1 init and its services, the stage engine and runners,
  ledger, locks, signatures, the priming state, the CLI), run as ``python3 -m sglang_prep`` inside the
  container. It imports only the standard library and this directory.

The role deploys the whole package to ``<host root>/runtime/sglang_prep`` and the container
mounts it read-only.
"""

from __future__ import annotations

__version__ = "1.1.0"

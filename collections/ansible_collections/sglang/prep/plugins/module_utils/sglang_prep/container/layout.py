# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the contract paths live on this filesystem.

Every path the runtime reports is the contract's container path (/telemetry/..., /profiles/...).
In the container the roots are exactly those, so ``fs()`` is the identity. The roots are taken
from the run manifest (``paths.container``), which lets the pure-Python tests run the same code
on a temporary directory.
"""

from __future__ import annotations

from .. import contract


class Layout(object):
    """Maps contract paths to filesystem paths for one run."""

    def __init__(self, telemetry_root=contract.TELEMETRY_ROOT, profiles_root=contract.PROFILES_ROOT):
        self.telemetry_root = telemetry_root.rstrip("/") or "/"
        self.profiles_root = profiles_root.rstrip("/") or "/"

    @classmethod
    def from_manifest(cls, manifest):
        cpaths = (manifest.get("paths") or {}).get("container") or {}
        return cls(cpaths.get("telemetry_root") or contract.TELEMETRY_ROOT,
                   cpaths.get("profiles_root") or contract.PROFILES_ROOT)

    def _pairs(self):
        return ((contract.TELEMETRY_ROOT, self.telemetry_root), (contract.PROFILES_ROOT, self.profiles_root))

    def fs(self, path):
        """Filesystem path of a contract path (identity in the container)."""
        return _rebase(path, self._pairs())

    def contract_path(self, path):
        """Inverse of fs(): the contract path of a filesystem path under one of the roots."""
        return _rebase(path, [(real, root) for root, real in self._pairs()])

    def env(self, env):
        """Copy of env with every value that is a contract path rebased onto this layout."""
        return dict((key, self.fs(value) if isinstance(value, str) else value) for key, value in env.items())


def _rebase(path, pairs):
    """path with its leading ``old`` root replaced by ``new``, for the first (old, new) pair that holds it."""
    if not path:
        return path
    for old, new in pairs:
        if path == old:
            return new
        if path.startswith(old + "/"):
            return new + path[len(old):]
    return path

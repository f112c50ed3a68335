# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""python3 -m sglang_prep: see cli.py."""

from __future__ import annotations

import hashlib
import os
import stat
import sys

MANIFEST_NAME = "MANIFEST.sha256"  # as _runtime_manifest.NAME: the deployed package's manifest (one line per file)


def bytecode_cache_dir(package_dir=None, tmp_dir=None, uid=None):
    """Where this package's compiled modules are kept between runs, or None (then Python compiles every import).

    The container mounts the package read-only, so Python cannot write ``__pycache__`` beside it and every
    ``docker exec`` of the runtime would compile all its modules again (about 50 ms). The compiled modules go to
    ``<tmp>/sglang-prep-pycache-<uid>/<digest of MANIFEST.sha256>`` instead: a directory of this user alone
    (mode 0700, not a link), one per deployed content, so code that changed never runs from an old cache.
    Without a manifest (not a deployed package) nothing changes.
    """
    package_dir = package_dir or os.path.dirname(os.path.abspath(__file__))
    uid = os.getuid() if uid is None else uid
    try:
        with open(os.path.join(package_dir, MANIFEST_NAME), "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()[:16]
        root = os.path.join(tmp_dir or os.environ.get("TMPDIR") or "/tmp", "sglang-prep-pycache-%d" % uid)
        try:
            os.mkdir(root, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(root)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        return None
    return os.path.join(root, digest)


if __name__ == "__main__":
    if sys.pycache_prefix is None and not sys.dont_write_bytecode:
        sys.pycache_prefix = bytecode_cache_dir()
    from .container.cli import main  # after the cache is set: every module of the runtime compiles into it

    raise SystemExit(main())

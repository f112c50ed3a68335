# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fail-fast writability checks: create and delete a test file, never chown or chmod.

An unwritable directory is an error that names the path, the owner seen and the owner
expected, so the operator can fix the host directory.
"""

from __future__ import annotations

import os

from ..errors import PrepError


def owner_text(path):
    """'uid:gid mode 0755' of ``path`` as seen now, or why it cannot be seen."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return "unknown (%s)" % (exc.strerror or exc)
    return "%d:%d (mode %04o)" % (st.st_uid, st.st_gid, st.st_mode & 0o7777)


def require_writable(path, expected_uid, expected_gid, host_path=None, what="directory"):
    """Raise PrepError(permissions_unexpected) unless the current user can create files in ``path``."""
    probe = os.path.join(path, ".sglang-prep-write-test.%d" % os.getpid())
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        os.unlink(probe)
        return
    except OSError as exc:
        reason = exc.strerror or str(exc)
    where = path if not host_path else "%s (host %s)" % (path, host_path)
    real = os.path.realpath(path)
    if real != os.path.abspath(path):
        where += " (a symlink to %s)" % real
    fix_target = host_path or path
    raise PrepError(
        "permissions_unexpected",
        "%s %s is not writable by devuser (uid %d, gid %d): %s. Owner seen: %s; owner expected: %d:%d. "
        "Fix it on the host, e.g. 'sudo chown -R %d:%d %s', then start the container again "
        "(nothing inside the container changes ownership)"
        % (what, where, os.geteuid(), os.getegid(), reason, owner_text(path), expected_uid, expected_gid,
           expected_uid, expected_gid, fix_target),
        path=path, host_path=host_path, owner_seen=owner_text(path),
        owner_expected="%d:%d" % (expected_uid, expected_gid))

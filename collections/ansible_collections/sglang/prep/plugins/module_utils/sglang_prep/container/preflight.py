# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stage preflight: every directory a stage writes exists and takes a test file; enough free disk.

Directories are created as the running user with the default mode. Nothing is ever chowned or
chmodded: an unwritable path is a permissions_unexpected error naming the path, the owner seen
and the owner expected.
"""

from __future__ import annotations

import errno
import os

from . import permissions
from ..errors import PrepError

PERMISSION_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def ensure_writable_dir(path, host_of=None):
    """Create path (and missing parents) as this user and prove it takes a file.

    PrepError(permissions_unexpected) names the directory that refused, its owner and the owner
    expected (this process's uid:gid); ``host_of(path)`` adds the host path behind it.
    """
    host_of = host_of or (lambda _p: None)
    uid, gid = os.getuid(), os.getgid()
    missing = []
    probe = path
    while not os.path.isdir(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise PrepError("permissions_unexpected", "%s exists but is not a directory; remove it on the host "
                                "(host path %s)" % (directory, host_of(directory)), path=directory)
        except OSError as exc:
            if exc.errno not in PERMISSION_ERRNOS:
                raise
            parent = os.path.dirname(directory)
            permissions.require_writable(parent, uid, gid, host_path=host_of(parent))
            raise PrepError("permissions_unexpected", "cannot create %s: %s (owner of %s: %s; expected %d:%d)" % (
                directory, exc.strerror, parent, permissions.owner_text(parent), uid, gid), path=directory)
    permissions.require_writable(path, uid, gid, host_path=host_of(path))


def require_free_disk(path, headroom_mb, shown=None):
    """PrepError(insufficient_disk) when the filesystem of path has less than headroom_mb free."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    required = int(headroom_mb) * 1024 * 1024
    if free < required:
        raise PrepError(
            "insufficient_disk",
            "%s has %d bytes (%.1f MiB) free, below the required headroom of %d bytes (%d MiB): free disk space "
            "on the host filesystem behind it, or lower --disk-headroom-mb if you know the stage needs less"
            % (shown or path, free, free / 1048576.0, required, int(headroom_mb)),
            path=shown or path, free_bytes=free, required_bytes=required)
    return free


def writable_hint(path):
    """For check mode (which writes nothing): None if path looks writable, else the reason."""
    probe = path
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if os.access(probe, os.W_OK | os.X_OK):
        return None
    return "%s is not writable by uid:gid %d:%d (owner seen %s)" % (
        probe, os.getuid(), os.getgid(), permissions.owner_text(probe))

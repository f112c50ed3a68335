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


def require_writable_tree(path, host_of=None, limit=20000):
    """PrepError(permissions_unexpected) for the first directory under ``path`` (symlinks followed) this user
    cannot write into, or file it cannot write: found before the stage starts, not when a write fails.

    ``limit`` bounds the directories visited (a cache may hold many); what is beyond it is not checked.
    """
    host_of = host_of or (lambda _p: None)
    seen = set()
    visited = 0
    for root, dirs, files in os.walk(path, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        visited += 1
        if visited > limit:
            return
        if not os.access(root, os.W_OK | os.X_OK):
            _refuse(root, "directory", host_of)
        for name in files:  # the files the runtime itself rewrites (records, logs, locks); cache entries are replaced
            if name.endswith((".log", ".json", ".lock")):
                full = os.path.join(root, name)
                if os.path.isfile(full) and not os.access(full, os.W_OK):
                    _refuse(full, "file", host_of)


def require_writable_file(path, host_of=None):
    """PrepError(permissions_unexpected) when ``path`` exists (symlinks followed) and this user cannot append to it."""
    if os.path.exists(path) and not os.access(path, os.W_OK):
        _refuse(path, "file", host_of or (lambda _p: None))


def _refuse(path, what, host_of):
    uid, gid = os.getuid(), os.getgid()
    real = os.path.realpath(path)
    shown = path if real == path else "%s (a symlink to %s)" % (path, real)
    host = host_of(path)
    raise PrepError(
        "permissions_unexpected",
        "%s %s%s is not writable by uid:gid %d:%d (owner seen %s); the stage would fail when it writes there. "
        "Fix it on the host, e.g. 'sudo chown -R %d:%d %s', and run again"
        % (what, shown, " (host %s)" % host if host else "", uid, gid, permissions.owner_text(path), uid, gid,
           host or real),
        path=path, host_path=host, owner_seen=permissions.owner_text(path), owner_expected="%d:%d" % (uid, gid))


DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def free_space(path):
    """(the path measured: ``path`` or its nearest existing parent, its file system's free bytes), or (None, None)."""
    probe = path
    while probe:
        try:
            st = os.statvfs(probe)
            return probe, st.f_bavail * st.f_frsize
        except OSError:
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
    return None, None


def free_text(path, host_of=None):
    """'<path> (host <path>): <n> bytes (<m> MiB) free on its file system', or '' when it cannot be measured."""
    measured, free = free_space(path)
    if measured is None:
        return ""
    host = host_of(measured) if host_of else None
    return "%s%s: %d bytes (%.1f MiB) free on its file system" % (
        measured, " (host %s)" % host if host else "", free, free / 1048576.0)


def os_failure(exc, doing, path=None, host_of=None):
    """The PrepError a person can act on for an OSError of a write: insufficient_disk (ENOSPC, EDQUOT: the path and
    the free space of its file system), permissions_unexpected (EACCES, EPERM, EROFS); None for any other errno (a
    defect). ``path`` names the file written when the error does not (a write to an open file)."""
    path = getattr(exc, "filename", None) or path
    if exc.errno in DISK_ERRNOS:
        free = free_text(path, host_of) if path else ""
        return PrepError("insufficient_disk", "%s: no space left on the device behind %s (%s)%s: free disk space on "
                         "the host and run again" % (doing, path or "the path written", exc.strerror or exc,
                                                     "; " + free if free else ""),
                         path=path, free_bytes=free_space(path)[1] if path else None)
    if exc.errno in PERMISSION_ERRNOS:
        shown = path or "the path written"
        owner = permissions.owner_text(path or "/")
        values = (doing, shown, os.getuid(), os.getgid(), exc.strerror or exc, owner)
        return PrepError("permissions_unexpected", "%s: %s is not writable by uid:gid %d:%d (%s; owner seen %s): fix "
                         "it on the host and run again" % values, path=path)
    return None


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

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

from .errors import PrepError

PERMISSION_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def owner_seen(path):
    try:
        st = os.stat(path)
    except OSError as exc:
        return "unknown (%s)" % (exc.strerror or exc)
    return "%d:%d (mode %04o)" % (st.st_uid, st.st_gid, st.st_mode & 0o7777)


def owner_expected():
    return "%d:%d" % (os.getuid(), os.getgid())


def permission_error(path, exc, shown=None, host=None):
    """PrepError(permissions_unexpected) for a path this user cannot write."""
    where = shown or path
    if host:
        where += " (host path %s)" % host
    return PrepError(
        "permissions_unexpected",
        "%s is not writable by uid:gid %s: %s. Owner seen: %s; owner expected: %s. Fix the ownership on the "
        "host (chown -R %s %s); the runtime never changes ownership or modes."
        % (where, owner_expected(), exc.strerror or exc, owner_seen(path), owner_expected(), owner_expected(),
           host or where),
        path=shown or path, host_path=host, owner_seen=owner_seen(path), owner_expected=owner_expected())


def ensure_writable_dir(path, shown=None, host_of=None):
    """Create path (and missing parents) and prove it takes a file; PrepError when it does not.

    ``shown`` is the contract path to report, ``host_of(contract path)`` maps it to the host path.
    """
    host_of = host_of or (lambda _p: None)
    shown = shown or path

    def fail(fs_path, exc):
        rel = os.path.relpath(fs_path, path)
        contract_path = shown if rel == "." else os.path.normpath(os.path.join(shown, rel))
        raise permission_error(fs_path, exc, contract_path, host_of(contract_path))

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
                raise PrepError("permissions_unexpected", "%s exists but is not a directory; remove it on the "
                                "host" % directory, path=directory)
        except OSError as exc:
            if exc.errno in PERMISSION_ERRNOS:
                fail(os.path.dirname(directory), exc)
            raise
    test = os.path.join(path, ".write_test.%d" % os.getpid())
    try:
        fd = os.open(test, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        os.unlink(test)
    except OSError as exc:
        if exc.errno in PERMISSION_ERRNOS:
            fail(path, exc)
        raise


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
    return "%s is not writable by uid:gid %s (owner seen %s)" % (probe, owner_expected(), owner_seen(probe))

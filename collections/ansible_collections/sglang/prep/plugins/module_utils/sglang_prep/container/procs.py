# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Process and port facts read from /proc (Linux): command lines, process groups, port holders."""

from __future__ import annotations

import errno
import os
import socket

TCP_LISTEN = "0A"


def cmdline(pid):
    """argv of a process as a list, [] when it is gone or unreadable."""
    try:
        with open("/proc/%d/cmdline" % int(pid), "rb") as handle:
            raw = handle.read()
    except (OSError, ValueError):
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _stat_fields(pid):
    """(state, pgrp) of a process from /proc/<pid>/stat, None when it is gone."""
    try:
        with open("/proc/%d/stat" % int(pid), "rb") as handle:
            raw = handle.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return None
    rest = raw[raw.rfind(")") + 2:].split()
    if len(rest) < 3:
        return None
    return rest[0], int(rest[2])


def alive(pid):
    """True for a running (not zombie) process."""
    if not pid:
        return False
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def group_members(pgid):
    """Live (non-zombie) pids whose process group is pgid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(name)
        if fields and fields[1] == pgid and fields[0] not in ("Z", "X"):
            out.append(int(name))
    return sorted(out)


def _listening_inodes(port):
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                next(handle, None)
                for line in handle:
                    parts = line.split()
                    if len(parts) < 10:
                        continue
                    local, state, inode = parts[1], parts[3], parts[9]
                    if state == TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == int(port):
                        inodes.add(inode)
        except OSError:
            continue
    return inodes


def port_holders(port):
    """[(pid, argv)] of the processes we can see listening on a TCP port."""
    inodes = _listening_inodes(port)
    if not inodes:
        return []
    wanted = set("socket:[%s]" % i for i in inodes)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fd_dir = "/proc/%s/fd" % name
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(os.path.join(fd_dir, fd)) in wanted:
                    found.append((int(name), cmdline(name)))
                    break
            except OSError:
                continue
    return sorted(found)


def port_is_free(port, host="127.0.0.1"):
    """True when a server could bind host:port now (bound the way uvicorn binds, SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return False
        raise
    finally:
        sock.close()
    return True


def describe_port_holders(port):
    holders = port_holders(port)
    if not holders:
        return "a process this user cannot see (another user, or outside this container's PID namespace)"
    return "; ".join("pid %d (%s)" % (pid, " ".join(argv)[:200] or "?") for pid, argv in holders)

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""devuser: the host user's UID:GID inside the container, and running code as that user.

The container init (root) adds passwd/group entries named devuser for the ids the role passes
in, so ``docker exec -u devuser`` resolves. Root touches only /etc/passwd and /etc/group here,
never a bind mount: everything that writes under /telemetry or /profiles runs in a forked
process that has dropped to devuser first (``run_as``, or ``drop_privileges`` before exec).
"""

from __future__ import annotations

import collections
import json
import os
import signal

from .. import contract
from ..errors import PrepError

PASSWD = "/etc/passwd"
GROUP = "/etc/group"
GECOS = "sglang.prep devuser"

Devuser = collections.namedtuple("Devuser", "name uid gid home")


def _parse_id(env, key):
    raw = (env.get(key) or "").strip()
    if not raw:
        raise PrepError(
            "permissions_unexpected",
            "%s is not set: the container needs the host user's numeric ids to create devuser "
            "(the role passes them; by hand add -e %s=$(id -u) -e %s=$(id -g) to docker run)"
            % (key, contract.ENV_UID, contract.ENV_GID))
    if not raw.isdigit():
        raise PrepError("permissions_unexpected", "%s=%r is not a numeric id" % (key, raw))
    return int(raw)


def from_env(env):
    """The devuser identity from SGLANG_PREP_UID/GID; uid or gid 0 is refused."""
    uid = _parse_id(env, contract.ENV_UID)
    gid = _parse_id(env, contract.ENV_GID)
    if uid == 0 or gid == 0:
        raise PrepError(
            "permissions_unexpected",
            "%s=%d %s=%d: devuser may not be root. Pass the ids of the unprivileged host user who "
            "owns the telemetry/ and profiles/ directories (files written as root under the bind "
            "mounts are a defect)" % (contract.ENV_UID, uid, contract.ENV_GID, gid))
    return Devuser(contract.DEVUSER, uid, gid, contract.DEVUSER_HOME)


def passwd_line(user, shell="/bin/bash"):
    return "%s:x:%d:%d:%s:%s:%s" % (user.name, user.uid, user.gid, GECOS, user.home, shell)


def group_line(user):
    return "%s:x:%d:" % (user.name, user.gid)


def _merge(path, name, wanted):
    """Make ``path`` (passwd or group format) hold exactly one ``name`` entry equal to ``wanted``.

    Other entries stay untouched, including ones that already use the same id under another
    name (e.g. ubuntu 1000 in Ubuntu-based images): devuser gets its own entry with that id.
    Returns "unchanged", "added" or "replaced".
    """
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    mine = [line for line in lines if line.split(":", 1)[0] == name]
    if mine == [wanted]:
        return "unchanged"
    kept = [line for line in lines if line.split(":", 1)[0] != name]
    # Rewrite in place (open "w" keeps the file's owner and mode; no chmod anywhere).
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(kept + [wanted]) + "\n")
    return "replaced" if mine else "added"


def ensure_entries(user, passwd_path=PASSWD, group_path=GROUP, shell=None):
    """Create or correct the devuser passwd and group entries (root only; idempotent).

    Returns {"passwd": state, "group": state} with states from ``_merge``.
    """
    if shell is None:
        shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
    try:
        return {
            "group": _merge(group_path, user.name, group_line(user)),
            "passwd": _merge(passwd_path, user.name, passwd_line(user, shell)),
        }
    except OSError as exc:
        raise PrepError(
            "permissions_unexpected",
            "cannot add the devuser entry (uid %d, gid %d) to %s/%s: %s. The container init must "
            "run as root with a writable /etc (do not start the container with --user or "
            "--read-only)" % (user.uid, user.gid, passwd_path, group_path, exc))


def child_env(user, base_env):
    """Environment of a devuser process: the caller's, with HOME/USER/LOGNAME of devuser."""
    env = dict(base_env)
    env.update({"HOME": user.home, "USER": user.name, "LOGNAME": user.name})
    return env


def reset_child_signals():
    """In a forked child: default signal dispositions and an empty signal mask.

    Python ignores SIGPIPE and PID 1 blocks signals while it waits; neither may leak into
    services or helpers.
    """
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def drop_privileges(user):
    """Become devuser for good (no supplementary groups). A no-op if already devuser."""
    if os.getuid() == user.uid and os.geteuid() == user.uid and os.getgid() == user.gid:
        return
    if os.geteuid() != 0:
        raise PrepError("permissions_unexpected",
                        "cannot switch to devuser (uid %d, gid %d) from uid %d: the container init "
                        "must run as root" % (user.uid, user.gid, os.geteuid()))
    os.setgroups([])
    os.setgid(user.gid)
    os.setuid(user.uid)


def run_as(user, func, *args, **kwargs):
    """Run ``func(*args, **kwargs)`` in a forked process that has dropped to ``user``.

    The return value must be JSON-serialisable; it comes back through a pipe. A PrepError in
    the child is raised again here with the same error_type and message; any other failure
    becomes PrepError(internal_error).
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        status = 1
        try:
            os.close(read_fd)
            reset_child_signals()
            drop_privileges(user)
            os.environ.update(child_env(user, {}))
            result = {"ok": func(*args, **kwargs)}
            status = 0
        except PrepError as exc:
            result = {"prep_error": exc.as_dict()}
        except BaseException as exc:  # pylint: disable=broad-except
            result = {"internal": "%s: %s" % (type(exc).__name__, exc)}
        try:
            data = json.dumps(result).encode("utf-8")
            while data:
                data = data[os.write(write_fd, data):]
        finally:
            os._exit(status)  # pylint: disable=protected-access
    os.close(write_fd)
    chunks = []
    with os.fdopen(read_fd, "rb") as reader:
        while True:
            chunk = reader.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
    _pid, wait_status = os.waitpid(pid, 0)
    try:
        result = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        raise PrepError("internal_error", "devuser helper process %d died (wait status %d) without a result"
                        % (pid, wait_status))
    if "prep_error" in result:
        details = dict(result["prep_error"])
        raise PrepError(details.pop("error_type"), details.pop("message"), **details)
    if "internal" in result:
        raise PrepError("internal_error", "devuser helper failed: %s" % result["internal"])
    return result["ok"]

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unpack the runtime archive next to the deployed package, then swap it into place (run as the host user).

usage: unpack_runtime.py <archive> <target package directory>

The new tree is unpacked into a staging directory beside the target and renamed into place, so a
running stage never sees a half-written package and files the new runtime no longer has are gone.
The container mounts the parent directory, so it sees the new package at once. The archives of earlier
deploys beside it (<package>-<sha256>.tar.gz, <package>.tar.gz) are removed. Prints one JSON line.
"""

import glob
import json
import os
import shutil
import sys
import tarfile
import tempfile


def safe_members(tar, top):
    members = tar.getmembers()
    for member in members:
        parts = member.name.split("/")
        if member.name.startswith("/") or ".." in parts or parts[0] != top or not (member.isfile() or member.isdir()):
            raise SystemExit("refusing %s: unexpected entry %r (not a file or directory under %s/)" % (tar.name, member.name, top))
    return members


def main(archive, target):
    parent, name = os.path.split(os.path.abspath(target))
    staging = tempfile.mkdtemp(prefix="." + name + ".new-", dir=parent)
    retired = None
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = safe_members(tar, name)
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members, **extra)
        if os.path.lexists(target):
            retired = tempfile.mkdtemp(prefix="." + name + ".old-", dir=parent)
            os.rename(target, os.path.join(retired, name))
        os.rename(os.path.join(staging, name), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if retired:
            shutil.rmtree(retired, ignore_errors=True)
    for earlier in glob.glob(os.path.join(parent, name + "-*.tar.gz")) + glob.glob(os.path.join(parent, name + ".tar.gz")):
        if os.path.abspath(earlier) != os.path.abspath(archive):
            os.remove(earlier)
    files = sum(1 for member in members if member.isfile())
    print(json.dumps({"changed": True, "target": target, "files": files}))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])

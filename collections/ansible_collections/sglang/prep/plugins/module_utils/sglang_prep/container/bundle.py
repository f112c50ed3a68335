# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cache bundles: the primed caches of one host, packed so that identical hosts install them instead of compiling.

A bundle is a gzip'd tar named by the sha256 of its bytes (``<sha256>.tar.gz``). Its first member,
``sglang-cache-bundle.json``, is the manifest: the group key (a hash of every bundled stage's
signature), each stage's signature, every file's relative path (under the profiles root), size and
sha256, the source host, the creation time and the collection version. Every other member is a file,
directory or symlink under one of the cache directories of contract.CACHES.

Unpacking trusts nothing: an absolute path, a ``..`` component, a path outside the cache directories,
a hard link, a symlink whose target leaves its cache, a device file or FIFO, a member the manifest does
not list, a size or sha256 that differs, a file the manifest lists but the archive lacks (a truncated
transfer) each refuse the whole bundle before anything under the live caches is touched.

Installing is atomic per cache directory: disk headroom is checked first, the bundle is unpacked into
a staging directory under profiles/ and verified there, every bundled stage gets its in-progress marker,
then each cache directory is renamed into place (the old one moved aside), the stages' signatures are
written as this host's own, and the markers are removed. An interrupted install leaves markers (so the
next ensure re-runs those stages) and its staging directory, which ``recover`` (run at the start of the
next install) uses to put any cache directory that was moved aside back in place; a partial bundle is
never left where a server would read it.

Stdlib only: the same code runs in the container and, for the real-GPU test, on a host with just torch.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import shutil
import socket
import stat
import tarfile
import time
import zlib

from .. import __version__, caches, contract, jsonio, registry
from ..errors import PrepError
from . import ledger, locks, signature
from .layout import Layout

FORMAT_VERSION = "1"
MANIFEST_NAME = "sglang-cache-bundle.json"
SUFFIX = ".tar.gz"
SIDECAR_SUFFIX = ".json"
# Under the profiles root, next to the caches and never inside one: bundles built or received here,
# and the staging area of installs.
BUNDLES_DIR = ".bundles"
STAGING_DIR = ".bundle-staging"
SIGNATURE_NAME = "signature.json"
JOURNAL = "install.json"  # in a staging directory: what the swap moves, for a roll back
CHUNK = 1024 * 1024
MANIFEST_FIELDS = ("format", "group_key", "model", "model_slug", "stages", "caches", "files", "file_count",
                   "total_bytes", "source_host", "source_run_id", "created_at", "collection_version")


def cache_names():
    """The cache directories a bundle may hold, relative to the profiles root (sglang, deep_gemm, nv, ...)."""
    return sorted(caches.relative_to_profiles(path) for path, _env in contract.CACHES.values())


def group_key(signatures):
    """The key of a signature group: a hash of every stage's full signature ({stage: fields})."""
    return hashlib.sha256(json.dumps(signatures, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def plan_group(rows):
    """The group key of a plan ({stage: check row}): every priming stage's signature, skipped stages aside.

    Two hosts with the same key would bundle and accept the same signatures; None when no priming stage
    has a signature (the plan could not check any).
    """
    signatures = dict((stage, row.get("signature")) for stage, row in rows.items()
                      if stage in registry.priming_stages() and row.get("status") != "skipped" and row.get("signature"))
    return group_key(signatures) if signatures else None


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_path(directory, digest):
    return os.path.join(directory, digest + SUFFIX)


def _is_signature_file(rel):
    """profiles/<cache>/<model_slug>/signature.json: written by the installing host itself, never carried."""
    parts = rel.split("/")
    return len(parts) == 3 and parts[2] == SIGNATURE_NAME


# ---------------------------------------------------------------- packing (the builder)

def recorded_signatures(profiles_root, model, stages):
    """{stage: recorded signature record} of the builder; PrepError when a stage is not primed here."""
    layout = Layout(profiles_root=profiles_root)
    out = {}
    for stage in stages:
        signature.stage_spec(stage)
        if locks.read_marker(layout.fs(contract.marker_path(stage))) is not None:
            raise PrepError("bundle_unavailable", "%s is in progress or was interrupted on this host (marker %s): "
                            "prime it to the end before bundling its caches" % (stage, contract.marker_path(stage)),
                            stage=stage)
        record, problem = signature.read_record(layout.fs(contract.signature_path(stage, model)))
        if record is None:
            raise PrepError("bundle_unavailable", "%s has no primed signature for %s on this host (%s): prime it "
                            "before bundling its caches" % (stage, model, problem), stage=stage)
        out[stage] = record
    return out


def _walk(profiles_root):
    """(rel, kind, lstat) of every entry under the cache directories, sorted; refuses what cannot travel."""
    entries = []
    for name in cache_names():
        top = os.path.join(profiles_root, name)
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for entry in sorted(dirs) + sorted(files):
                full = os.path.join(root, entry)
                rel = os.path.relpath(full, profiles_root).replace(os.sep, "/")
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    target = os.readlink(full)
                    _check_link(rel, target)
                    entries.append((rel, "symlink", st, target))
                elif stat.S_ISDIR(st.st_mode):
                    entries.append((rel, "dir", st, None))
                elif stat.S_ISREG(st.st_mode):
                    if not _is_signature_file(rel):
                        entries.append((rel, "file", st, None))
                else:
                    raise PrepError("bundle_unsafe", "%s under %s is not a regular file, directory or symlink (a device "
                                    "file, FIFO or socket); it cannot travel in a bundle: remove it" % (rel, profiles_root),
                                    path=rel)
    return entries


def pack(profiles_root, model, stages, out_dir, source_host=None, run_id=None, collection_version=__version__, now=None):
    """Pack the caches of ``stages`` (primed for ``model``) into ``out_dir/<sha256>.tar.gz``; returns its manifest.

    The returned manifest carries ``digest``, ``path`` and ``archive_bytes`` as well; a sidecar
    ``<sha256>.json`` next to the archive holds the same (for a bundle store).
    """
    records = recorded_signatures(profiles_root, model, stages)
    signatures = dict((stage, records[stage]["fields"]) for stage in stages)
    entries = _walk(profiles_root)
    files = []
    for rel, kind, st, target in entries:
        item = {"path": rel, "type": kind}
        if kind == "file":
            item.update(size=st.st_size, sha256=file_sha256(os.path.join(profiles_root, rel)))
        elif kind == "symlink":
            item["target"] = target
        files.append(item)
    regular = [f for f in files if f["type"] == "file"]
    manifest = {
        "format": FORMAT_VERSION,
        "group_key": group_key(signatures),
        "model": model,
        "model_slug": contract.model_slug(model),
        "stages": dict((stage, {"fields": signatures[stage], "signature_group": records[stage].get("signature_group"),
                                "source_run_id": records[stage].get("run_id"),
                                "duration_s": records[stage].get("duration_s")}) for stage in stages),
        "caches": sorted(set(f["path"].split("/")[0] for f in files)),
        "files": files,
        "file_count": len(regular),
        "total_bytes": sum(f["size"] for f in regular),
        "source_host": source_host or socket.gethostname(),
        "source_run_id": run_id,
        "created_at": ledger.iso(now or ledger.utc_now()),
        "collection_version": collection_version,
    }
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, ".pack-%d.tmp" % os.getpid())
    try:
        with open(tmp, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    data = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
                    info = _info(MANIFEST_NAME, tarfile.REGTYPE, 0o644, 0)
                    info.size = len(data)
                    tar.addfile(info, _BytesReader(data))
                    for item in files:
                        _add(tar, profiles_root, item)
            raw.flush()
            os.fsync(raw.fileno())
        digest = file_sha256(tmp)
        final = bundle_path(out_dir, digest)
        os.replace(tmp, final)
    except BaseException:
        _unlink(tmp)
        raise
    manifest.update(digest=digest, path=final, archive_bytes=os.path.getsize(final))
    jsonio.write_json_atomic(os.path.join(out_dir, digest + SIDECAR_SUFFIX), manifest)
    return manifest


class _BytesReader(object):
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def read(self, size=-1):
        end = len(self.data) if size is None or size < 0 else self.pos + size
        chunk = self.data[self.pos:end]
        self.pos += len(chunk)
        return chunk


def _info(name, kind, mode, mtime):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = int(mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add(tar, profiles_root, item):
    full = os.path.join(profiles_root, item["path"])
    st = os.lstat(full)
    if item["type"] == "dir":
        tar.addfile(_info(item["path"], tarfile.DIRTYPE, 0o755, st.st_mtime))
    elif item["type"] == "symlink":
        info = _info(item["path"], tarfile.SYMTYPE, 0o777, st.st_mtime)
        info.linkname = item["target"]
        tar.addfile(info)
    else:
        info = _info(item["path"], tarfile.REGTYPE, st.st_mode & 0o755, st.st_mtime)
        info.size = item["size"]
        with open(full, "rb") as handle:
            tar.addfile(info, handle)


# ---------------------------------------------------------------- checking (any host)

def _unsafe(message, **details):
    return PrepError("bundle_unsafe", message + "; the bundle was refused and nothing was installed", **details)


def _corrupt(message, **details):
    return PrepError("bundle_corrupt", message + "; the bundle was refused and nothing was installed (fetch it again, "
                     "or let this host prime itself)", **details)


def check_path(rel):
    """PrepError(bundle_unsafe) unless rel is a clean relative path inside one of the cache directories."""
    if not isinstance(rel, str) or not rel:
        raise _unsafe("bundle member %r has an empty or non-text path" % (rel,), path=rel)
    if rel.startswith("/"):
        raise _unsafe("bundle member %s has an absolute path" % rel, path=rel)
    parts = rel.split("/")
    if ".." in parts:
        raise _unsafe("bundle member %s has a '..' component" % rel, path=rel)
    if any(part in ("", ".") for part in parts) or "\\" in rel or "\x00" in rel:
        raise _unsafe("bundle member %s is not a normalised relative path" % rel, path=rel)
    if parts[0] not in cache_names():
        raise _unsafe("bundle member %s is outside the cache directories (%s)" % (rel, ", ".join(cache_names())), path=rel)


def _check_link(rel, target):
    """A symlink may point only inside its own cache directory, by a relative target."""
    if not target or target.startswith("/"):
        raise _unsafe("symlink %s points to the absolute path %r, outside its cache" % (rel, target), path=rel)
    top = rel.split("/")[0]
    resolved = os.path.normpath(os.path.join(os.path.dirname(rel), target)).replace(os.sep, "/")
    if resolved != top and not resolved.startswith(top + "/"):
        raise _unsafe("symlink %s -> %s leaves its cache directory %s" % (rel, target, top), path=rel, target=target)


def check_manifest(manifest, where="bundle"):
    """PrepError unless manifest has every field and its file list is safe."""
    if not isinstance(manifest, dict):
        raise _corrupt("%s has no manifest object" % where)
    missing = [f for f in MANIFEST_FIELDS if f not in manifest]
    if missing:
        raise _corrupt("%s manifest lacks %s" % (where, ", ".join(missing)))
    if manifest["format"] != FORMAT_VERSION:
        raise _corrupt("%s has format %r; this collection reads format %s" % (where, manifest["format"], FORMAT_VERSION))
    if not isinstance(manifest["stages"], dict) or not manifest["stages"]:
        raise _corrupt("%s manifest names no stage" % where)
    seen = set()
    for item in manifest["files"]:
        check_path(item.get("path"))
        if item["path"] in seen:
            raise _unsafe("%s lists %s twice" % (where, item["path"]), path=item["path"])
        seen.add(item["path"])
        if item.get("type") == "symlink":
            _check_link(item["path"], item.get("target"))
        elif item.get("type") == "file":
            if not isinstance(item.get("size"), int) or item["size"] < 0 or not isinstance(item.get("sha256"), str):
                raise _corrupt("%s lists %s without a size and sha256" % (where, item["path"]), path=item["path"])
        elif item.get("type") != "dir":
            raise _unsafe("%s lists %s of type %r (only files, directories and symlinks travel)"
                          % (where, item["path"], item.get("type")), path=item["path"])
    return manifest


def verify_digest(path, expected):
    """PrepError(bundle_corrupt) unless the archive's sha256 is ``expected`` (a corrupted or truncated transfer)."""
    actual = file_sha256(path)
    if actual != expected:
        raise _corrupt("bundle %s has sha256 %s, expected %s (corrupted or truncated in transfer)" % (path, actual, expected),
                       path=path, sha256=actual, expected_sha256=expected)
    return actual


def _open(path):
    try:
        return tarfile.open(path, mode="r:gz")
    except FileNotFoundError:
        raise PrepError("bundle_unavailable", "bundle %s does not exist on this host" % path, path=path)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise _corrupt("bundle %s is not a readable gzip'd tar (%s)" % (path, exc), path=path)


def read_manifest(path):
    """The checked manifest of the bundle at path (reads only its first member)."""
    tar = _open(path)
    try:
        return _manifest_member(tar, path)
    finally:
        tar.close()


def _manifest_member(tar, path):
    """The checked manifest: the first member of the open bundle ``tar`` (read from ``path``)."""
    try:
        first = tar.next()
        if first is None or first.name != MANIFEST_NAME or not first.isreg():
            raise _corrupt("bundle %s does not start with %s" % (path, MANIFEST_NAME), path=path)
        manifest = json.loads(tar.extractfile(first).read().decode("utf-8"))
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as exc:
        raise _corrupt("the manifest of bundle %s is unreadable (%s)" % (path, exc), path=path)
    return check_manifest(manifest, "bundle %s" % path)


def unpack(path, dest):
    """Unpack and verify every member of the bundle at ``path`` into the empty directory ``dest``; returns the manifest.

    Raises PrepError (bundle_unsafe, bundle_corrupt, insufficient_disk) on the first member that
    fails; ``dest`` may then hold part of the bundle, which the caller removes.
    """
    tar = _open(path)
    try:
        try:
            manifest = _manifest_member(tar, path)
            listed = dict((item["path"], item) for item in manifest["files"])
            seen = set()
            dest_real = os.path.realpath(dest)
            member = tar.next()
            while member is not None:
                _unpack_member(tar, member, listed, seen, dest_real)
                member = tar.next()
        except PrepError:
            raise
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise PrepError("insufficient_disk", "the disk under %s filled up while unpacking bundle %s (%s); nothing "
                                "was installed: free space on this host" % (dest, path, exc.strerror), path=dest)
            raise _corrupt("bundle %s could not be read to the end (%s)" % (path, exc), path=path)
        except (tarfile.TarError, EOFError, zlib.error, ValueError) as exc:
            raise _corrupt("bundle %s could not be read to the end (%s)" % (path, exc), path=path)
    finally:
        tar.close()
    missing = sorted(set(listed) - seen)
    if missing:
        raise _corrupt("bundle %s lacks %d of the %d entries its manifest lists (first: %s): a truncated transfer"
                       % (path, len(missing), len(listed), missing[0]), path=path, missing=missing[:20])
    return manifest


def _unpack_member(tar, member, listed, seen, dest_real):
    rel = member.name
    check_path(rel)
    if rel in seen:
        raise _unsafe("bundle member %s appears twice" % rel, path=rel)
    item = listed.get(rel)
    if item is None:
        raise _unsafe("bundle member %s is not in the bundle's manifest" % rel, path=rel)
    if member.islnk():
        raise _unsafe("bundle member %s is a hard link" % rel, path=rel)
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise _unsafe("bundle member %s is a device file or FIFO" % rel, path=rel)
    kind = "dir" if member.isdir() else "symlink" if member.issym() else "file" if member.isreg() else None
    if kind is None:
        raise _unsafe("bundle member %s has an unsupported type" % rel, path=rel)
    if kind == "symlink":
        _check_link(rel, member.linkname)
    if kind != item["type"]:
        raise _corrupt("bundle member %s is a %s, the manifest says %s" % (rel, kind, item["type"]), path=rel)
    target = os.path.join(dest_real, rel)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    if os.path.realpath(parent) != parent:
        raise _unsafe("bundle member %s would be written through a symlink" % rel, path=rel)
    if kind == "dir":
        if not os.path.isdir(target):
            os.mkdir(target, 0o755)
    elif kind == "symlink":
        _check_link(rel, member.linkname)
        if member.linkname != item.get("target"):
            raise _corrupt("symlink %s points to %s, the manifest says %s" % (rel, member.linkname, item.get("target")), path=rel)
        os.symlink(member.linkname, target)
    else:
        if member.size != item["size"]:
            raise _corrupt("bundle member %s has %d bytes, the manifest says %d" % (rel, member.size, item["size"]), path=rel)
        digest = hashlib.sha256()
        written = 0
        source = tar.extractfile(member)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), member.mode & 0o755 or 0o644)
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                digest.update(chunk)
                written += len(chunk)
                out.write(chunk)
        if written != item["size"] or digest.hexdigest() != item["sha256"]:
            raise _corrupt("bundle member %s has %d bytes with sha256 %s; the manifest says %d bytes, sha256 %s"
                           % (rel, written, digest.hexdigest(), item["size"], item["sha256"]), path=rel)
        os.utime(target, (member.mtime, member.mtime))
    seen.add(rel)


def compare(manifest, current):
    """[{stage, field, old, new}]: where this host's signatures (``current``, {stage: fields}) differ from the bundle's."""
    reasons = []
    for stage in sorted(manifest["stages"]):
        mine = current.get(stage)
        if mine is None:
            reasons.append({"stage": stage, "field": "signature", "old": "bundled", "new": "no signature on this host"})
            continue
        for reason in signature.compare(manifest["stages"][stage]["fields"], mine):
            reasons.append(dict(reason, stage=stage))
    return reasons


def describe(reasons, limit=6):
    text = ", ".join("%s.%s %r -> %r" % (r["stage"], r["field"], r["old"], r["new"]) for r in reasons[:limit])
    return text + (" and %d more" % (len(reasons) - limit) if len(reasons) > limit else "")


# ---------------------------------------------------------------- installing (a receiver)

def staging_root(profiles_root):
    return os.path.join(profiles_root, STAGING_DIR)


def recover(profiles_root, say=None):
    """Undo what an interrupted install left (a killed process): returns the cache directories put back.

    Every staging directory is rolled back from its journal and removed; when the roll back is
    complete the install's in-progress markers go as well, otherwise they stay and ensure re-runs
    those stages.
    """
    say = say or (lambda _m: None)
    restored = []
    root = staging_root(profiles_root)
    if not os.path.isdir(root):
        return restored
    layout = Layout(profiles_root=profiles_root)
    for name in sorted(os.listdir(root)):
        restored.extend(_roll_back(profiles_root, os.path.join(root, name), layout, say))
    return sorted(restored)


def require_room(profiles_root, needed_bytes, headroom_mb):
    """PrepError(insufficient_disk) unless the unpacked bundle plus the headroom fits under profiles_root."""
    st = os.statvfs(profiles_root)
    free = st.f_bavail * st.f_frsize
    required = int(needed_bytes) + int(headroom_mb) * 1024 * 1024
    if free < required:
        raise PrepError("insufficient_disk", "%s has %d bytes (%.1f MiB) free; the bundle unpacks to %d bytes and %d MiB "
                        "of headroom must stay free (%d bytes): free disk space on this host; nothing was installed"
                        % (profiles_root, free, free / 1048576.0, needed_bytes, int(headroom_mb), required),
                        path=profiles_root, free_bytes=free, required_bytes=required)
    return free


class _StageLocks(object):
    """The stage locks of every bundled stage, so no stage run writes the caches while they are swapped."""

    def __init__(self, layout, stages, run_id, timeout_s, say):
        self.held = []
        self.args = (layout, stages, run_id, timeout_s, say)

    def __enter__(self):
        layout, stages, run_id, timeout_s, say = self.args
        os.makedirs(layout.fs(contract.LOCKS_DIR), exist_ok=True)
        try:
            for stage in stages:
                self.held.append(locks.StageLock(layout.fs(contract.lock_path(stage)), stage, run_id, timeout_s, say).acquire())
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        while self.held:
            self.held.pop().release()


def install(path, profiles_root, model, current, run_id=None, expected_sha256=None, headroom_mb=1024,
            lock_timeout=600.0, say=None, before_swap=None):
    """Install the bundle at ``path`` into ``profiles_root`` for ``model``; returns a summary dict.

    ``current`` is this host's signature of every bundled stage ({stage: fields}, what ensure would
    record); a bundle whose signatures differ is refused with PrepError(bundle_mismatch) naming each
    field. ``before_swap(cache)`` is called before each cache directory is renamed into place (tests
    interrupt there).
    """
    say = say or (lambda _m: None)
    started = time.monotonic()
    layout = Layout(profiles_root=profiles_root)
    digest = verify_digest(path, expected_sha256) if expected_sha256 else file_sha256(path)
    manifest = read_manifest(path)
    if manifest["model_slug"] != contract.model_slug(model):
        raise PrepError("bundle_mismatch", "bundle %s holds caches for model %s, not %s; nothing was installed"
                        % (path, manifest["model"], model), reasons=[{"stage": None, "field": "model_slug",
                                                                      "old": manifest["model_slug"], "new": contract.model_slug(model)}])
    reasons = compare(manifest, current)
    if reasons:
        raise PrepError("bundle_mismatch", "this host's signature differs from the bundle's (group %s, built on %s): %s; "
                        "nothing was installed, so this host primes itself"
                        % (manifest["group_key"], manifest["source_host"], describe(reasons)), reasons=reasons)
    stages = [s for s in contract.STAGE_ORDER if s in manifest["stages"]]
    with _StageLocks(layout, stages, run_id, lock_timeout, say):
        restored = recover(profiles_root, say)
        require_room(profiles_root, manifest["total_bytes"], headroom_mb)
        staged = os.path.join(staging_root(profiles_root), "%s-%d" % (digest[:16], os.getpid()))
        new_dir = os.path.join(staged, "new")
        os.makedirs(new_dir)
        try:
            unpack(path, new_dir)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        unpacked = time.monotonic()
        marker_info = {"owner_pid": os.getpid(), "started_at": ledger.iso(ledger.utc_now()), "run_id": run_id,
                       "model": model, "installing_bundle": digest}
        os.makedirs(layout.fs(contract.IN_PROGRESS_DIR), exist_ok=True)
        for stage in stages:
            locks.write_marker(layout.fs(contract.marker_path(stage)), dict(marker_info, stage=stage))
        old_dir = os.path.join(staged, "old")
        os.makedirs(old_dir)
        jsonio.write_json_atomic(os.path.join(staged, JOURNAL), {"digest": digest, "caches": manifest["caches"], "stages": stages})
        try:
            for cache in manifest["caches"]:
                if before_swap:
                    before_swap(cache)
                live = os.path.join(profiles_root, cache)
                if os.path.lexists(live):
                    os.rename(live, os.path.join(old_dir, cache))
                os.rename(os.path.join(new_dir, cache), live)
        except BaseException:
            _roll_back(profiles_root, staged, layout, say)
            raise
        finished = ledger.iso(ledger.utc_now())
        for stage in stages:
            sig_fs = layout.fs(contract.signature_path(stage, model))
            os.makedirs(os.path.dirname(sig_fs), exist_ok=True)
            signature.write(sig_fs, stage, current[stage], run_id, finished, manifest["stages"][stage].get("duration_s"))
        for stage in stages:
            locks.remove_marker(layout.fs(contract.marker_path(stage)))
        shutil.rmtree(staged, ignore_errors=True)
    return {"digest": digest, "group_key": manifest["group_key"], "source_host": manifest["source_host"],
            "source_run_id": manifest["source_run_id"], "stages": stages, "caches": manifest["caches"],
            "file_count": manifest["file_count"], "total_bytes": manifest["total_bytes"],
            "archive_bytes": os.path.getsize(path), "restored": restored,
            "unpack_s": round(unpacked - started, 3), "install_s": round(time.monotonic() - started, 3)}


def _roll_back(profiles_root, staged, layout, say):
    """Undo a swap that did not finish, from its journal: every cache moved in goes, every cache moved aside comes back.

    When everything is back, the install's own markers go too (nothing changed); otherwise they stay,
    so ensure re-runs those stages. Returns the caches put back.
    """
    try:
        journal = jsonio.read_json(os.path.join(staged, JOURNAL))
    except (OSError, ValueError):
        journal = None
    restored = []
    complete = True
    if isinstance(journal, dict):
        for cache in reversed(journal.get("caches") or []):
            live = os.path.join(profiles_root, cache)
            moved_in = os.path.join(staged, "new", cache)
            aside = os.path.join(staged, "old", cache)
            try:
                if not os.path.lexists(moved_in) and os.path.lexists(live):
                    os.rename(live, moved_in)
                if os.path.lexists(aside) and not os.path.lexists(live):
                    os.rename(aside, live)
                    restored.append(cache)
                    say("put %s back: an install that did not finish had moved it aside" % live)
            except OSError as exc:
                complete = False
                say("could not put %s back (%s): its stages keep their in-progress markers and re-run" % (live, exc))
        if complete:
            for stage in journal.get("stages") or []:
                marker = layout.fs(contract.marker_path(stage))
                if (locks.read_marker(marker) or {}).get("installing_bundle") == journal.get("digest"):
                    locks.remove_marker(marker)
    else:
        old = os.path.join(staged, "old")
        for cache in sorted(os.listdir(old)) if os.path.isdir(old) else []:
            live = os.path.join(profiles_root, cache)
            if not os.path.lexists(live):
                os.rename(os.path.join(old, cache), live)
                restored.append(cache)
    shutil.rmtree(staged, ignore_errors=True)
    return sorted(restored)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cache bundles: one model's primed caches, packed so that identical hosts install them instead of compiling.

A bundle is a gzip'd tar named by the sha256 of its bytes (``<sha256>.tar.gz``). Its first member,
``sglang-cache-bundle.json``, is the manifest: the group key, each bundled stage's signature as a digest
plus its non-secret fields (a field that can carry a secret, such as ``extra_server_args`` or
``server_env``, travels as ``sha256:<hex>`` only), every file's relative path (under the profiles root),
size and sha256, the source host, the creation time and the collection version. Every other member is a
file, directory or symlink under one of the cache directories of contract.CACHES.

What travels is the bundled model's: the entries of the caches that are not another model's subtree
(``<cache>/<model_key>/``) and the bundled model's own subtrees. Signature files never travel (each host
writes its own), nor a log a cache keeps beside its entries (``*.log`` outside a model subtree).

The manifest is a checked schema (check_manifest): every field has a type and a bound, nesting is limited,
``caches`` is derived from ``files`` (a manifest whose list differs is refused), ``total_bytes`` and
``file_count`` must equal what ``files`` says, and the signatures must name the bundled model. Unpacking
trusts nothing: an absolute path, a ``..`` component, a path outside the cache directories, a hard link, a
symlink whose target has ``..``, is absolute or passes through another link, a device file or FIFO, a member
the manifest does not list, a size or sha256 that differs, a file the manifest lists but the archive lacks
each refuse the whole bundle before anything under the live caches is touched; after unpacking, every link
is resolved by the file system and must stay in its cache (bundle_unsafe).

Installing adds, it never removes another model's work (install): under one install lock (the staging
area's, held for the whole install) and the stage locks of the bundled stages, the bundle is unpacked into
``profiles/.bundle-staging/<digest>-<pid>/`` and compared with the live caches. In a BUNDLE_MERGE cache each
entry the receiver lacks is added (a hard link, never over an existing name), an equal one is kept and one
with other bytes refuses the bundle (bundle_conflict, nothing installed); the bundled model's subtrees
(with this host's signatures, written there first) are swapped in whole. A journal in the staging
directory lists every change before it is made, and the bundled stages carry in-progress markers naming
the bundle until the install is complete.

Recovery (clear_stale: container init, every stage run, every install) runs only under the install lock,
so every journal it sees belongs to a dead install. It rolls a journal back only while the journal's
stages are still marked as being installed by that bundle: then the added entries go (those still equal to
the bundle's), the model's old subtrees come back and the markers go, so the model holds its old caches.
A journal whose markers are gone (the install finished, or a later prime superseded it) is dropped and
never rolled back. Each outcome names the model and says which caches it holds.

Stdlib only: the same code runs in the container and, for the real-GPU test, on a host with just torch.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import queue
import re
import shutil
import socket
import stat
import tarfile
import tempfile
import threading
import time
import zlib

from .. import __version__, caches, contract, jsonio, registry
from ..errors import PrepError
from . import ledger, locks, signature
from .layout import Layout

FORMAT_VERSION = "2"
MANIFEST_NAME = "sglang-cache-bundle.json"
SUFFIX = ".tar.gz"
SIDECAR_SUFFIX = ".json"
# Under the profiles root, next to the caches and never inside one: bundles built or received here,
# and the staging area of installs.
BUNDLES_DIR = ".bundles"
STAGING_DIR = ".bundle-staging"
SIGNATURE_NAME = "signature.json"
JOURNAL = "install.json"  # in a staging directory: what the install changes, for a roll back
INSTALL_LOCK = "bundle_install"  # profiles/.locks/bundle_install.lock: the staging area's lock
CHUNK = 1024 * 1024
DIR_MODE = 0o755
UMASK = 0o022  # what packing and installing create: the host user's, readable, never world-writable
MANIFEST_FIELDS = ("format", "group_key", "model", "model_slug", "stages", "caches", "files", "file_count",
                   "total_bytes", "source_host", "source_run_id", "created_at", "collection_version")
# Bounds of the checked manifest
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_FILES = 2000000
MAX_PATH = 4096
MAX_NAME = 255
MAX_TEXT = 4096
MAX_DEPTH = 6
MAX_FIELDS = 256
MAX_FILE_BYTES = 1 << 46
# A model subtree's name (contract.model_key): <name>-<8 hex>
MODEL_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,80}-[0-9a-f]{8}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
# Signature fields recorded in a manifest in clear: what the hardware, the toolchain and the priming settings
# are. Any other field (extra_server_args, server_env, a nested dependency signature) travels as its digest.
CLEAR_FIELDS = frozenset(registry.GROUP_FIELDS + registry.COMMON_INPUTS + registry.SERVER_KERNEL_INPUTS
                         + registry.MOE_SHAPE_INPUTS + ("moe_batch_sizes", "moe_dtype", "server_flags", "stage")
                         + tuple(f for row in registry.STAGES for f in row.probed)) - frozenset(("server_env",))
DIGEST_PREFIX = "sha256:"


_TABLES = {}


def _tables():
    """(cache names sorted, {name: bundle mode}, the per-model directories), derived from the contract once.

    Every member of a bundle is checked against them, so they are kept, keyed on the contract's tables as they are
    now (a test may change them).
    """
    # keyed on the identity of the contract's entries (the memo holds them, so no id is reused while it is kept)
    key = (tuple(contract.CACHES), tuple(map(id, contract.CACHES.values())), tuple(contract.STAGE_RECORDS.items()),
           contract.PROFILES_ROOT)
    found = _TABLES.get(key)
    if found is None:
        modes = dict((caches.relative_to_profiles(entry[0]), contract.cache_bundle_mode(name))
                     for name, entry in contract.CACHES.items())
        paths = [contract.stage_records_dir(stage) for stage in contract.STAGE_ORDER]
        paths += [contract.CACHES[n][0] for n in contract.CACHES if contract.cache_bundle_mode(n) == contract.BUNDLE_MODEL]
        found = (sorted(modes), modes, frozenset(caches.relative_to_profiles(path) for path in paths))
        _TABLES.clear()
        _TABLES[key] = found
        _TABLES["held"] = tuple(contract.CACHES.values())
    return found


def cache_names():
    """The cache directories a bundle may hold, relative to the profiles root (sglang, deep_gemm, nv, ...)."""
    return list(_tables()[0])


def cache_mode(top):
    """How a bundle installs the cache directory ``top`` (relative to the profiles root): contract BUNDLE_*."""
    return _tables()[1][top]


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


def value_digest(value):
    return DIGEST_PREFIX + hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()


def signature_digest(fields):
    """The sha256 of a stage's whole signature (what two hosts must share)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()


def _scalar(value):
    return value is None or isinstance(value, (bool, int, float, str))


def public_fields(fields):
    """A signature as a manifest records it: the clear fields as they are, every other one as its digest."""
    out = {}
    for name, value in fields.items():
        clear = name in CLEAR_FIELDS and (_scalar(value) or (isinstance(value, list) and all(_scalar(v) for v in value)))
        out[name] = value if clear else value_digest(value)
    return out


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_path(directory, digest):
    return os.path.join(directory, digest + SUFFIX)


def _is_signature_file(rel):
    """profiles/<cache>/<model_key>/signature.json: written by the installing host itself, never carried."""
    parts = rel.split("/")
    return len(parts) == 3 and parts[2] == SIGNATURE_NAME


def _host_log(rel):
    """A log a cache keeps beside its entries (FlashInfer's flashinfer_jit.log): this host's history, not a kernel.

    It stays with its host: every host appends its own, so two hosts' copies always differ. A model's own logs
    (deep_gemm/<model_key>/compile.log) travel with its subtree.
    """
    return rel.endswith(".log") and model_subtree(rel) is None


def _model_caches():
    """The directories that hold per-model subtrees (<dir>/<model_key>/): the stages' records, per-model caches."""
    return _tables()[2]


def model_subtree(rel):
    """The model subtree (``<cache>/<model_key>``) ``rel`` lies in, or None."""
    parts = rel.split("/")
    if len(parts) >= 2 and parts[0] in _model_caches() and MODEL_KEY.match(parts[1]):
        return "/".join(parts[:2])
    return None


@contextlib.contextmanager
def _umask(mask=UMASK):
    """An explicit umask for what packing and installing create (a umask of 000 must not make anything world-writable)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


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


def _walk(profiles_root, model):
    """The manifest entry ({path, type} and a file's size or a link's target) of every entry of ``model`` under the
    cache directories, sorted.

    Another model's subtree (<cache>/<model_key>/) stays out, and in a BUNDLE_MODEL cache only the model's own
    subtree travels; signature files never travel. Refuses what cannot travel.
    """
    own_key = contract.model_key(model)
    entries = []
    for name in cache_names():
        top = os.path.join(profiles_root, name)
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        per_model = cache_mode(name) == contract.BUNDLE_MODEL
        keyed = name in _model_caches()
        for root, dirs, files in os.walk(top):
            rel_root = os.path.relpath(root, profiles_root).replace(os.sep, "/")
            if rel_root == name:
                keep = [d for d in dirs if (d == own_key if per_model or (keyed and MODEL_KEY.match(d)) else True)]
                dirs[:] = keep
                if per_model:
                    files = []
            dirs.sort()
            for entry in sorted(dirs) + sorted(files):
                full = os.path.join(root, entry)
                rel = os.path.relpath(full, profiles_root).replace(os.sep, "/")
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    target = os.readlink(full)
                    _check_link(rel, target)
                    entries.append({"path": rel, "type": "symlink", "target": target})
                elif stat.S_ISDIR(st.st_mode):
                    entries.append({"path": rel, "type": "dir"})
                elif stat.S_ISREG(st.st_mode):
                    if not _is_signature_file(rel) and not _host_log(rel):
                        entries.append({"path": rel, "type": "file", "size": st.st_size})
                else:
                    raise PrepError("bundle_unsafe", "%s under %s is not a regular file, directory or symlink (a device "
                                    "file, FIFO or socket); it cannot travel in a bundle: remove it" % (rel, profiles_root),
                                    path=rel)
    _check_links_of(entries, "this host's caches")
    return entries


def pack(profiles_root, model, stages, out_dir, source_host=None, run_id=None, collection_version=__version__, now=None):
    """Pack ``model``'s caches of ``stages`` (primed for it) into ``out_dir/<sha256>.tar.gz``; returns its manifest.

    The returned manifest carries ``digest``, ``path`` and ``archive_bytes`` as well; a sidecar
    ``<sha256>.json`` next to the archive holds the same (for a bundle store).
    """
    with _umask():
        return _pack(profiles_root, model, stages, out_dir, source_host, run_id, collection_version, now)


def _pack(profiles_root, model, stages, out_dir, source_host, run_id, collection_version, now):
    records = recorded_signatures(profiles_root, model, stages)
    signatures = dict((stage, records[stage]["fields"]) for stage in stages)
    files = _walk(profiles_root, model)
    for item in files:
        if item["type"] == "file":
            item["sha256"] = file_sha256(os.path.join(profiles_root, item["path"]))
    regular = [f for f in files if f["type"] == "file"]
    manifest = {
        "format": FORMAT_VERSION,
        "group_key": group_key(signatures),
        "model": model,
        "model_slug": contract.model_slug(model),
        "stages": dict((stage, {"fields": public_fields(signatures[stage]),
                                "signature_sha256": signature_digest(signatures[stage]),
                                "signature_group": records[stage].get("signature_group"),
                                "source_run_id": records[stage].get("run_id"),
                                "duration_s": records[stage].get("duration_s")}) for stage in stages),
        "caches": derived_caches(files),
        "files": files,
        "file_count": len(regular),
        "total_bytes": sum(f["size"] for f in regular),
        "source_host": source_host or socket.gethostname(),
        "source_run_id": run_id,
        "created_at": ledger.iso(now or ledger.utc_now()),
        "collection_version": collection_version,
    }
    os.makedirs(out_dir, DIR_MODE, exist_ok=True)
    tmp = os.path.join(out_dir, ".pack-%d.tmp" % os.getpid())
    try:
        with open(tmp, "wb") as raw:
            with _GzipWriter(raw) as gz:
                # no member list kept (cleared after each member); the archive written once, compressed beside the reads
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    with tempfile.TemporaryFile(dir=out_dir) as spooled:  # the manifest, never one big string
                        _dump_json(manifest, spooled)
                        info = _info(MANIFEST_NAME, tarfile.REGTYPE, 0o644, 0)
                        info.size = spooled.tell()
                        spooled.seek(0)
                        tar.addfile(info, spooled)
                    for item in files:
                        _add(tar, profiles_root, item)
                        tar.members.clear()
            raw.flush()
            os.fsync(raw.fileno())
        digest = gz.hexdigest()
        final = bundle_path(out_dir, digest)
        os.replace(tmp, final)
    except BaseException:
        _unlink(tmp)
        raise
    manifest.update(digest=digest, path=final, archive_bytes=os.path.getsize(final))
    sidecar = os.path.join(out_dir, digest + SIDECAR_SUFFIX)
    with open(sidecar + ".tmp", "w", encoding="utf-8") as handle:
        _dump_json(manifest, handle, text=True)
    os.replace(sidecar + ".tmp", sidecar)
    return manifest


def _dump_json(value, handle, text=False):
    """``value`` as JSON into ``handle`` chunk by chunk (a manifest of many files is never one string in memory)."""
    for chunk in json.JSONEncoder(sort_keys=True, indent=1).iterencode(value):
        handle.write(chunk if text else chunk.encode("utf-8"))


class _GzipWriter(object):
    """A gzip stream (level 1, mtime 0) of what is written to it, compressed by a thread of its own while the caller
    reads the next files (zlib runs without the GIL), and the sha256 of the compressed bytes as they are written.

    Memory is bounded: at most QUEUED chunks wait for the compressor.
    """

    QUEUED = 8

    def __init__(self, raw):
        self.raw = raw
        self.digest = hashlib.sha256()
        self.queue = queue.Queue(self.QUEUED)
        self.failed = None
        self.pending = []
        self.pending_bytes = 0
        self.offset = 0  # bytes written (the tar stream's position)
        self.thread = threading.Thread(target=self._compress, name="bundle-gzip", daemon=True)
        self.thread.start()

    def _compress(self):
        engine = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
        try:
            while True:
                chunk = self.queue.get()
                out = engine.compress(chunk) if chunk is not None else engine.flush()
                if out:
                    self.digest.update(out)
                    self.raw.write(out)
                if chunk is None:
                    return
        except BaseException as exc:  # handed to the writer, which raises it
            self.failed = exc
            while self.queue.get() is not None:  # let the writer finish; what it sends is dropped
                pass

    def _send(self, chunk):
        if self.failed is not None:
            raise self.failed
        self.queue.put(chunk)

    def write(self, data):
        self.pending.append(bytes(data))
        self.pending_bytes += len(data)
        self.offset += len(data)
        if self.pending_bytes >= CHUNK:
            self._send(b"".join(self.pending))
            self.pending, self.pending_bytes = [], 0
        return len(data)

    def close(self):
        if self.thread is None:
            return
        try:
            if self.pending:
                self._send(b"".join(self.pending))
                self.pending, self.pending_bytes = [], 0
        finally:
            self.queue.put(None)
            self.thread.join()
            self.thread = None
        if self.failed is not None:
            raise self.failed

    def tell(self):
        return self.offset

    def hexdigest(self):
        return self.digest.hexdigest()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def derived_caches(files):
    """The cache directories a file list touches: what ``caches`` must say."""
    return sorted(set(f["path"].split("/")[0] for f in files))


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


def check_path(rel, field="files"):
    """PrepError(bundle_unsafe) unless rel is a clean relative path inside one of the cache directories."""
    if not isinstance(rel, str) or not rel:
        raise _unsafe("bundle member %r has an empty or non-text path" % (rel,), path=rel, field=field)
    if len(rel) > MAX_PATH:
        raise _unsafe("bundle member %s... has a path of %d characters (at most %d)" % (rel[:80], len(rel), MAX_PATH),
                      path=rel[:200], field=field)
    if rel.startswith("/"):
        raise _unsafe("bundle member %s has an absolute path" % rel, path=rel, field=field)
    parts = rel.split("/")
    if ".." in parts:
        raise _unsafe("bundle member %s has a '..' component" % rel, path=rel, field=field)
    if any(part in ("", ".") for part in parts) or "\\" in rel or "\x00" in rel:
        raise _unsafe("bundle member %s is not a normalised relative path" % rel, path=rel, field=field)
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_NAME for part in parts):
        raise _unsafe("bundle member %s has a name longer than %d bytes" % (rel[:200], MAX_NAME), path=rel[:200], field=field)
    if parts[0] not in _tables()[1]:
        raise _unsafe("bundle member %s is outside the cache directories (%s)" % (rel, ", ".join(cache_names())),
                      path=rel, field=field)


def _check_link(rel, target):
    """A symlink may point only inside its own directory's tree: a relative target without '..', absolute or empty parts."""
    if not isinstance(target, str) or not target or target.startswith("/"):
        raise _unsafe("symlink %s points to %r, not a relative path inside its cache" % (rel, target), path=rel,
                      target=target if isinstance(target, str) else None, field="files.target")
    parts = target.split("/")
    if ".." in parts or any(part in ("", ".") for part in parts) or "\x00" in target or len(target) > MAX_PATH:
        raise _unsafe("symlink %s -> %s: a link target may not have '..' (or empty) components" % (rel, target),
                      path=rel, target=target, field="files.target")


def _link_resolved(rel, target):
    return "/".join(rel.split("/")[:-1] + target.split("/"))


def _check_links_of(files, where):
    """No link's target, and no entry's path, may pass through a link (a chain the kernel would follow elsewhere)."""
    links = set(f["path"] for f in files if f.get("type") == "symlink")
    if not links:
        return
    for item in files:
        parts = item["path"].split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise _unsafe("%s: %s would be written through the symlink %s" % (where, item["path"], "/".join(parts[:i])),
                              path=item["path"], field="files")
        if item.get("type") == "symlink":
            resolved = _link_resolved(item["path"], item["target"]).split("/")
            for i in range(1, len(resolved) + 1):
                if "/".join(resolved[:i]) in links:
                    raise _unsafe("%s: symlink %s -> %s passes through another link (%s)"
                                  % (where, item["path"], item["target"], "/".join(resolved[:i])),
                                  path=item["path"], target=item["target"], field="files.target")


def _depth(value, limit):
    """True when ``value`` nests no deeper than ``limit`` containers."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            if level > limit:
                return False
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return True


def _text(manifest, field, where, limit=MAX_TEXT, optional=False):
    value = manifest.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _corrupt("%s manifest field %s is %s, not a text of 1 to %d characters"
                       % (where, field, _kind(value), limit), field=field)
    return value


def _int(value, field, where, high):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise _corrupt("%s manifest field %s is %s, not a whole number from 0 to %d" % (where, field, _kind(value), high),
                       field=field)
    return value


def _kind(value):
    if isinstance(value, (dict, list)):
        return "a %s" % type(value).__name__
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_manifest(manifest, where="bundle", model=None):
    """The manifest, checked as a schema: PrepError(bundle_corrupt or bundle_unsafe, naming the field) otherwise.

    ``model``: the receiver's model path; the bundle's signatures must name it (and only it).
    """
    _check_shape(manifest, where)
    bundled_model = _check_model_fields(manifest, where)
    _check_stages(manifest, where, model)
    files = manifest["files"]
    if not isinstance(files, list) or not files:
        raise _corrupt("%s manifest field files is %s, not a list of entries" % (where, _kind(files)), field="files")
    if len(files) > MAX_FILES:
        raise _corrupt("%s manifest lists %d entries (at most %d)" % (where, len(files), MAX_FILES), field="files")
    own_key = contract.model_key(bundled_model)
    seen = set()
    sizes = [_check_file_entry(item, where, seen, own_key, bundled_model) for item in files]
    _check_links_of(files, where)
    _check_totals(manifest, files, where, sum(size for size in sizes if size is not None),
                  sum(1 for size in sizes if size is not None))
    return manifest


def _check_shape(manifest, where):
    """An object of the known fields, not too deep, of this format, with a hex group key."""
    if not isinstance(manifest, dict):
        raise _corrupt("%s has no manifest object" % where, field="manifest")
    if not _depth(manifest, MAX_DEPTH):
        raise _corrupt("%s manifest nests deeper than %d levels" % (where, MAX_DEPTH), field="manifest")
    missing = [f for f in MANIFEST_FIELDS if f not in manifest]
    if missing:
        raise _corrupt("%s manifest lacks %s" % (where, ", ".join(missing)), field=missing[0])
    unknown = sorted(str(f)[:40] for f in manifest if f not in MANIFEST_FIELDS)
    if unknown:
        raise _corrupt("%s manifest has fields this collection does not know: %s" % (where, ", ".join(unknown[:5])),
                       field=unknown[0])
    if manifest["format"] != FORMAT_VERSION:
        raise _corrupt("%s has format %s; this collection reads format %s (build the bundle again with this collection)"
                       % (where, _kind(manifest["format"]), FORMAT_VERSION), field="format")
    if not isinstance(manifest["group_key"], str) or not re.match(r"^[0-9a-f]{1,64}$", manifest["group_key"]):
        raise _corrupt("%s manifest field group_key is %s, not hex digits" % (where, _kind(manifest["group_key"])),
                       field="group_key")


def _check_model_fields(manifest, where):
    """The bundled model's path (absolute, its slug matching) and the text fields; returns the model path."""
    bundled_model = _text(manifest, "model", where)
    if not bundled_model.startswith("/") or "\x00" in bundled_model:
        raise _unsafe("%s manifest field model %s is not an absolute model path" % (where, bundled_model[:200]),
                      field="model")
    if manifest["model_slug"] != contract.model_slug(bundled_model):
        raise _unsafe("%s manifest field model_slug %s does not name its model %s"
                      % (where, _kind(manifest["model_slug"]), bundled_model[:200]), field="model_slug")
    for field in ("source_host", "created_at", "collection_version"):
        _text(manifest, field, where, limit=MAX_NAME)
    _text(manifest, "source_run_id", where, limit=MAX_NAME, optional=True)
    return bundled_model


FILE_ENTRY_FIELDS = {"file": ("path", "type", "size", "sha256"), "dir": ("path", "type"),
                     "symlink": ("path", "type", "target")}


def _check_file_entry(item, where, seen, own_key, bundled_model):
    """One entry of the files list: safe path, known type and fields, in the model's own subtree; a file's size
    (None for a directory or a symlink)."""
    if not isinstance(item, dict):
        raise _corrupt("%s manifest field files has an entry that is %s, not an object" % (where, _kind(item)), field="files")
    check_path(item.get("path"))
    rel = item["path"]
    if rel in seen:
        raise _unsafe("%s lists %s twice" % (where, rel), path=rel, field="files")
    seen.add(rel)
    kind = item.get("type")
    if kind not in FILE_ENTRY_FIELDS:
        raise _unsafe("%s lists %s of type %s (only files, directories and symlinks travel)" % (where, rel, _kind(kind)),
                      path=rel, field="files.type")
    extra = [k for k in item if k not in FILE_ENTRY_FIELDS[kind]]
    if extra:
        raise _corrupt("%s lists %s with fields %s, which a %s does not have" % (where, rel, ", ".join(map(str, extra[:4])), kind),
                       path=rel, field="files")
    _check_entry_place(rel, where, own_key, bundled_model)
    if kind == "symlink":
        _check_link(rel, item.get("target"))
        return None
    if kind == "dir":
        return None
    _int(item.get("size"), "files.size", where, MAX_FILE_BYTES)
    if not isinstance(item.get("sha256"), str) or not HEX64.match(item["sha256"]):
        raise _corrupt("%s lists %s without a sha256 of 64 hex digits" % (where, rel), path=rel, field="files.sha256")
    return item["size"]


def _check_entry_place(rel, where, own_key, bundled_model):
    """No signature file, nothing of another model, nothing outside the model's subtree of a per-model cache."""
    if _is_signature_file(rel):
        raise _unsafe("%s carries the signature file %s: signatures never travel (each host writes its own)" % (where, rel),
                      path=rel, field="files")
    subtree = model_subtree(rel)
    if subtree and subtree.split("/")[1] != own_key:
        raise _unsafe("%s carries %s, in the subtree of another model than %s" % (where, rel, bundled_model[:200]),
                      path=rel, field="files")
    if cache_mode(rel.split("/")[0]) == contract.BUNDLE_MODEL and subtree is None and "/" in rel:
        raise _unsafe("%s carries %s outside the model's subtree of a per-model cache" % (where, rel), path=rel, field="files")


def _check_totals(manifest, files, where, total, count):
    """caches, file_count and total_bytes agree with the files list."""
    if not isinstance(manifest["caches"], list) or manifest["caches"] != derived_caches(files):
        raise _corrupt("%s manifest field caches says %s; its files are in %s"
                       % (where, _kind(manifest["caches"]), ", ".join(derived_caches(files))), field="caches")
    if _int(manifest["file_count"], "file_count", where, MAX_FILES) != count:
        raise _corrupt("%s manifest says file_count %d; its files list %d files" % (where, manifest["file_count"], count),
                       field="file_count")
    if _int(manifest["total_bytes"], "total_bytes", where, MAX_FILE_BYTES) != total:
        raise _corrupt("%s manifest says total_bytes %d; its files add up to %d bytes" % (where, manifest["total_bytes"], total),
                       field="total_bytes")


STAGE_ENTRY_FIELDS = ("fields", "signature_sha256", "signature_group", "source_run_id", "duration_s")


def _check_stages(manifest, where, model):
    stages = manifest["stages"]
    if not isinstance(stages, dict) or not stages:
        raise _corrupt("%s manifest names no stage (field stages)" % where, field="stages")
    for stage, entry in stages.items():
        if stage not in registry.priming_stages():
            raise _corrupt("%s manifest field stages names %s, not a priming stage (%s)"
                           % (where, _kind(stage), ", ".join(registry.priming_stages())), field="stages")
        if not isinstance(entry, dict) or not isinstance(entry.get("fields"), dict):
            raise _corrupt("%s manifest field stages.%s has no fields object" % (where, stage), field="stages.%s.fields" % stage)
        if not isinstance(entry.get("signature_sha256"), str) or not HEX64.match(entry["signature_sha256"]):
            raise _corrupt("%s manifest field stages.%s.signature_sha256 is not 64 hex digits" % (where, stage),
                           field="stages.%s.signature_sha256" % stage)
        unknown = [k for k in entry if k not in STAGE_ENTRY_FIELDS]
        if unknown:
            raise _corrupt("%s manifest field stages.%s has unknown fields %s" % (where, stage, ", ".join(map(str, unknown[:4]))),
                           field="stages.%s" % stage)
        _check_stage_fields(where, stage, entry["fields"])
        slug = entry["fields"].get("model_slug")
        if slug != manifest["model_slug"] or (model is not None and slug != contract.model_slug(model)):
            raise _unsafe("%s manifest field stages.%s.fields.model_slug is %s: the signatures must name the bundled model %s"
                          % (where, stage, _kind(slug), _kind(manifest["model_slug"])), field="stages.%s.fields.model_slug" % stage)
        _check_stage_meta(where, stage, entry)


def _check_stage_fields(where, stage, fields):
    """A stage's signature fields: values or lists of values, of bounded size; only CLEAR_FIELDS in clear."""
    if len(fields) > MAX_FIELDS:
        raise _corrupt("%s manifest field stages.%s.fields has %d fields (at most %d)" % (where, stage, len(fields), MAX_FIELDS),
                       field="stages.%s.fields" % stage)
    for name, value in fields.items():
        ok = _scalar(value) or (isinstance(value, list) and len(value) <= MAX_FIELDS and all(_scalar(v) for v in value))
        if not ok or (isinstance(value, str) and len(value) > MAX_TEXT) or len(name) > MAX_NAME:
            raise _corrupt("%s manifest field stages.%s.fields.%s is %s, not a value or a list of values"
                           % (where, stage, str(name)[:60], _kind(value)), field="stages.%s.fields.%s" % (stage, str(name)[:60]))
        if name not in CLEAR_FIELDS and not (isinstance(value, str) and value.startswith(DIGEST_PREFIX)):
            raise _unsafe("%s manifest field stages.%s.fields.%s is recorded in clear; only its digest may travel"
                          % (where, stage, str(name)[:60]), field="stages.%s.fields.%s" % (stage, str(name)[:60]))


def _check_stage_meta(where, stage, entry):
    """A stage entry's signature_group and source_run_id (short text or none) and duration_s (a number or none)."""
    for key in ("signature_group", "source_run_id"):
        if entry.get(key) is not None and (not isinstance(entry[key], str) or len(entry[key]) > MAX_NAME):
            raise _corrupt("%s manifest field stages.%s.%s is %s" % (where, stage, key, _kind(entry[key])),
                           field="stages.%s.%s" % (stage, key))
    duration = entry.get("duration_s")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration < 1e9):
        raise _corrupt("%s manifest field stages.%s.duration_s is %s" % (where, stage, _kind(duration)),
                       field="stages.%s.duration_s" % stage)


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


def read_manifest(path, model=None, expected_sha256=None):
    """The checked manifest of the bundle at path (reads only its first member).

    With ``expected_sha256``, a manifest that cannot be read is reported as the damaged transfer it is when the
    archive's bytes are not that digest.
    """
    return _read_manifest(path, model, expected_sha256)[0]


def _read_manifest(path, model=None, expected_sha256=None):
    """read_manifest: (the checked manifest, the sha256 of its bytes)."""
    with _digest_named(path, expected_sha256):
        tar = _open(path)
        try:
            return _manifest_member(tar, path, model)
        finally:
            tar.close()


@contextlib.contextmanager
def _digest_named(path, expected_sha256):
    """A bundle found damaged (bundle_corrupt) is reported by its digest when its bytes are not the expected ones."""
    try:
        yield
    except PrepError as exc:
        if expected_sha256 and exc.error_type == "bundle_corrupt":
            verify_digest(path, expected_sha256)
        raise


class _ArchiveReader(object):
    """The tar stream inside a gzip'd bundle, for tarfile's stream mode: the file is read once, its bytes hashed
    (the archive's sha256) and decompressed as they are read; the gzip trailer (CRC and length) is checked by zlib.
    Memory stays at a chunk, whatever the bundle's size."""

    def __init__(self, path):
        try:
            self.handle = open(path, "rb")
        except FileNotFoundError:
            raise PrepError("bundle_unavailable", "bundle %s does not exist on this host" % path, path=path)
        self.path = path
        self.digest = hashlib.sha256()
        self.engine = zlib.decompressobj(31)  # 31: a gzip header and trailer, both checked
        self.buffer = b""
        self.at = 0  # where in buffer the next read starts
        self.offset = 0  # the position in the tar stream

    def _more(self):
        """The next decompressed bytes (b"" at the end of the gzip stream)."""
        while not self.engine.eof:
            raw = self.engine.unconsumed_tail or self._raw()
            if not raw:
                raise EOFError("the gzip stream ends before its end marker (truncated)")
            out = self.engine.decompress(raw, CHUNK)
            if out:
                return out
        return b""

    def _raw(self):
        data = self.handle.read(CHUNK)
        self.digest.update(data)
        return data

    def read(self, size=-1):
        """Up to ``size`` bytes (all that is left when negative); each byte is copied once."""
        parts = []
        want = size
        while want != 0:
            if self.at >= len(self.buffer):
                self.buffer, self.at = self._more(), 0
                if not self.buffer:
                    break
            end = len(self.buffer) if want < 0 else min(len(self.buffer), self.at + want)
            parts.append(self.buffer[self.at:end] if self.at or end < len(self.buffer) else self.buffer)
            if want > 0:
                want -= end - self.at
            self.offset += end - self.at
            self.at = end
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def tell(self):
        return self.offset

    def seek(self, offset, whence=0):
        """Forward only (tarfile skips what it does not read); a stream never goes back."""
        if whence != 0 or offset < self.offset:
            raise tarfile.ReadError("bundle %s: the archive is read as a stream, it cannot seek back" % self.path)
        while self.offset < offset:
            if not self.read(min(offset - self.offset, CHUNK)):
                raise tarfile.ReadError("unexpected end of data")
        return self.offset

    def seekable(self):
        return False

    def finish(self):
        """Read to the end of the file: the archive's sha256; PrepError(bundle_corrupt) on bytes after the gzip stream."""
        while self._more():
            pass
        extra = len(self.engine.unused_data)
        while True:
            data = self._raw()
            if not data:
                break
            extra += len(data)
        if extra:
            raise _corrupt("bundle %s has %d bytes after its gzip stream" % (self.path, extra), path=self.path)
        return self.digest.hexdigest()

    def close(self):
        self.handle.close()


def _manifest_member(tar, path, model=None, known=None):
    """(the checked manifest, the sha256 of its bytes): the first member of the open bundle ``tar`` (read from ``path``).

    ``known``: (manifest, sha256) checked earlier from the same file: the member's bytes must have that sha256, and the
    manifest is not parsed again (a manifest of many files is held once).
    """
    try:
        first = tar.next()
        if first is None or first.name != MANIFEST_NAME or not first.isreg():
            raise _corrupt("bundle %s does not start with %s" % (path, MANIFEST_NAME), path=path, field="manifest")
        if first.size > MAX_MANIFEST_BYTES:
            raise _corrupt("the manifest of bundle %s has %d bytes (at most %d)" % (path, first.size, MAX_MANIFEST_BYTES),
                           path=path, field="manifest")
        source = tar.extractfile(first)
        if known is not None:  # hashed chunk by chunk: the text is not held again
            digest = hashlib.sha256()
            for chunk in iter(lambda: source.read(CHUNK), b""):
                digest.update(chunk)
            if known[1] != digest.hexdigest():
                raise _corrupt("bundle %s changed while it was installed: its manifest is not the one checked" % path,
                               path=path, field="manifest")
            return known
        data = source.read(first.size)
        digest = hashlib.sha256(data).hexdigest()
        text = data.decode("utf-8")
        del data  # one copy of the manifest's text at a time
        manifest = json.loads(text)
        del text
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError, RecursionError) as exc:
        why = type(exc).__name__ if isinstance(exc, RecursionError) else exc
        raise _corrupt("the manifest of bundle %s is unreadable (%s)" % (path, why), path=path, field="manifest")
    try:
        return check_manifest(manifest, "bundle %s" % path, model=model), digest
    except PrepError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError, UnicodeError) as exc:
        raise _corrupt("the manifest of bundle %s is not the bundle schema (%s)" % (path, type(exc).__name__), path=path,
                       field="manifest")


def unpack(path, dest, model=None):
    """Unpack and verify every member of the bundle at ``path`` into the empty directory ``dest``; returns the manifest.

    Raises PrepError (bundle_unsafe, bundle_corrupt, insufficient_disk) on the first member that
    fails; ``dest`` may then hold part of the bundle, which the caller removes.
    """
    return _unpack(path, dest, model)[0]


def _unpack(path, dest, model=None, known=None):
    """unpack, reading the archive once as a stream: (the manifest, the archive's sha256); ``known``: _manifest_member's."""
    reader = _ArchiveReader(path)
    try:
        try:
            tar = tarfile.open(fileobj=reader, mode="r:")  # plain tar: the reader decompresses, forward only
            manifest = _manifest_member(tar, path, model, known)[0]
            files = manifest["files"]
            listed = _Listed(files)
            dest_real = os.path.realpath(dest)
            member = tar.next()
            while member is not None:
                _unpack_member(tar, member, listed, dest_real)
                tar.members.clear()  # a stream keeps no member list
                member = tar.next()
            digest = reader.finish()
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
        reader.close()
    missing = listed.missing()
    if missing:
        raise _corrupt("bundle %s lacks %d of the %d entries its manifest lists (first: %s): a truncated transfer"
                       % (path, len(missing), len(files), missing[0]), path=path, missing=missing[:20])
    check_links_resolved(dest, files, "bundle %s" % path)
    return manifest, digest


class _Listed(object):
    """The manifest's entries and which were unpacked.

    A bundle packed here holds its members in the manifest's order: each member is then the next entry, and nothing
    more is kept. The first member out of that order builds an index by path and a byte a member.
    """

    def __init__(self, files):
        self.files = files
        self.next = 0  # in order: every entry before it was unpacked, none after it
        self.index = None
        self.seen = None
        self.verified = set()  # directories made here and resolved without a symlink (bounded: cleared when large)

    def take(self, rel):
        """The manifest entry of the member ``rel``, marked unpacked; PrepError(bundle_unsafe) when it is not listed
        or was unpacked already."""
        if self.index is None:
            if self.next < len(self.files) and self.files[self.next]["path"] == rel:
                self.next += 1
                return self.files[self.next - 1]
            self.index = dict((item["path"], i) for i, item in enumerate(self.files))
            self.seen = bytearray(b"\x01" * self.next + b"\x00" * (len(self.files) - self.next))
        at = self.index.get(rel)
        if at is not None and self.seen[at]:
            raise _unsafe("bundle member %s appears twice" % rel, path=rel)
        if at is None:
            raise _unsafe("bundle member %s is not in the bundle's manifest" % rel, path=rel)
        self.seen[at] = 1
        return self.files[at]

    def missing(self):
        if self.index is None:
            return sorted(item["path"] for item in self.files[self.next:])
        return sorted(self.files[i]["path"] for i, done in enumerate(self.seen) if not done)


def check_links_resolved(root, files, where):
    """Resolve every symlink of ``files`` under ``root`` with the file system: each must stay in its cache (bundle_unsafe)."""
    for item in files:
        if item["type"] != "symlink":
            continue
        top = os.path.realpath(os.path.join(root, item["path"].split("/")[0]))
        resolved = os.path.realpath(os.path.join(root, item["path"]))
        if resolved != top and not resolved.startswith(top + os.sep):
            raise _unsafe("%s: symlink %s -> %s resolves to %s, outside its cache %s"
                          % (where, item["path"], item["target"], resolved, top), path=item["path"], field="files.target")


def _member_kind(member, listed):
    """(kind, its manifest entry) of a member that may be unpacked: listed once, a file, directory or safe symlink."""
    rel = member.name
    check_path(rel)
    item = listed.take(rel)
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
    return kind, item


def _unpack_member(tar, member, listed, dest_real):
    rel = member.name
    kind, item = _member_kind(member, listed)
    target = os.path.join(dest_real, rel)
    parent = os.path.dirname(target)
    if parent not in listed.verified:  # only this unpack writes under dest, and it never removes a directory
        os.makedirs(parent, DIR_MODE, exist_ok=True)
        if os.path.realpath(parent) != parent:
            raise _unsafe("bundle member %s would be written through a symlink" % rel, path=rel)
        _remember(listed.verified, parent)
    if kind == "dir":
        if not os.path.isdir(target):
            os.mkdir(target, DIR_MODE)
            _remember(listed.verified, target)  # made here, in a resolved directory: no link on its way
    elif kind == "symlink":
        _check_link(rel, member.linkname)
        if member.linkname != item.get("target"):
            raise _corrupt("symlink %s points to %s, the manifest says %s" % (rel, member.linkname, item.get("target")), path=rel)
        os.symlink(member.linkname, target)
    else:
        _unpack_file(tar, member, item, target)


def _remember(verified, directory, limit=4096):
    if len(verified) >= limit:
        verified.clear()
    verified.add(directory)


def _unpack_file(tar, member, item, target):
    """Write a regular member to ``target`` (never through a symlink), checking its size and sha256."""
    rel = member.name
    if member.size != item["size"]:
        raise _corrupt("bundle member %s has %d bytes, the manifest says %d" % (rel, member.size, item["size"]), path=rel)
    digest = hashlib.sha256()
    written = 0
    source = tar.extractfile(member)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), member.mode & 0o755 or 0o644)
    try:  # the descriptor itself: no buffered file object (its isatty and seek calls) for each member
        for chunk in iter(lambda: source.read(CHUNK), b""):
            digest.update(chunk)
            written += len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        if written != item["size"] or digest.hexdigest() != item["sha256"]:
            raise _corrupt("bundle member %s has %d bytes with sha256 %s; the manifest says %d bytes, sha256 %s"
                           % (rel, written, digest.hexdigest(), item["size"], item["sha256"]), path=rel)
        os.utime(fd, (member.mtime, member.mtime))
    finally:
        os.close(fd)


def compare(manifest, current):
    """[{stage, field, old, new}]: where this host's signatures (``current``, {stage: fields}) differ from the bundle's.

    Compared as the manifest records them: a field that travels as a digest is named with both digests, never its value.
    """
    reasons = []
    for stage in sorted(manifest["stages"]):
        mine = current.get(stage)
        if mine is None:
            reasons.append({"stage": stage, "field": "signature", "old": "bundled", "new": "no signature on this host"})
            continue
        entry = manifest["stages"][stage]
        if entry.get("signature_sha256") == signature_digest(mine):
            continue
        found = [dict(reason, stage=stage) for reason in signature.compare(entry["fields"], public_fields(mine))]
        reasons.extend(found or [{"stage": stage, "field": "signature", "old": entry.get("signature_sha256"),
                                  "new": signature_digest(mine)}])
    return reasons


def describe(reasons, limit=6):
    text = ", ".join("%s.%s %r -> %r" % (r["stage"], r["field"], r["old"], r["new"]) for r in reasons[:limit])
    return text + (" and %d more" % (len(reasons) - limit) if len(reasons) > limit else "")


# ---------------------------------------------------------------- installing (a receiver)

def staging_root(profiles_root):
    return os.path.join(profiles_root, STAGING_DIR)


def install_lock_path(profiles_root):
    return Layout(profiles_root=profiles_root).fs(contract.LOCKS_DIR + "/" + INSTALL_LOCK + ".lock")


def _install_lock(profiles_root, run_id, timeout_s, say):
    """The staging area's lock (flock: a killed holder never leaves it held), waited for up to ``timeout_s``."""
    path = install_lock_path(profiles_root)
    os.makedirs(os.path.dirname(path), DIR_MODE, exist_ok=True)
    return locks.StageLock(path, INSTALL_LOCK, run_id, timeout_s, say, what="the bundle staging area")


def clear_stale(profiles_root, say=None):
    """Recover what killed installs left, when no install is running: container init and every stage run call this.

    Never waits: while an install holds the staging area's lock its staging is live and nothing is touched.
    Returns recover's outcomes ([] when there was nothing, or an install is running); never raises.
    """
    say = say or (lambda _m: None)
    root = staging_root(profiles_root)
    if not os.path.isdir(root) or not os.listdir(root):
        return []
    path = install_lock_path(profiles_root)
    try:
        os.makedirs(os.path.dirname(path), DIR_MODE, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        say("could not open %s (%s); stale bundle staging stays until the next install" % (path, exc))
        return []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return []  # an install is running: its staging is not stale
        try:
            return _recover(profiles_root, say)
        except OSError as exc:
            say("stale bundle staging under %s could not be cleared (%s)" % (root, exc))
            return []
    finally:
        os.close(fd)


def recover(profiles_root, say=None):
    """Recover under the staging area's lock (an install calls this while it holds it); see clear_stale."""
    return _recover(profiles_root, say or (lambda _m: None))


def _recover(profiles_root, say):
    """[{bundle, model, outcome, holds}] for every staging directory (the caller holds the install lock).

    outcome: rolled_back (the journal's stages were still marked as being installed by its bundle: the model
    holds its old caches), dropped (no marker names the bundle any more: the install finished or a later prime
    superseded it; nothing is rolled back), cleared (the install died before it changed a live cache).
    """
    root = staging_root(profiles_root)
    out = []
    if not os.path.isdir(root):
        return out
    layout = Layout(profiles_root=profiles_root)
    for name in sorted(os.listdir(root)):
        staged = os.path.join(root, name)
        outcome = _recover_one(profiles_root, staged, layout, say)
        out.append(outcome)
        say("%s bundle %s for %s: the model holds its %s caches" % (
            {"rolled_back": "rolled back the interrupted install of", "dropped": "dropped the journal of the finished or "
             "superseded install of", "cleared": "cleared the staging of the interrupted install of"}[outcome["outcome"]],
            outcome["bundle"] or name, outcome["model"] or "an unknown model", outcome["holds"]))
    return out


def _release_markers(layout, journal, stages):
    """Remove the install's markers of ``stages``, putting back any a stage run had left before the install began."""
    previous = journal.get("previous_markers") if isinstance(journal.get("previous_markers"), dict) else {}
    for stage in stages:
        marker = layout.fs(contract.marker_path(stage))
        if isinstance(previous.get(stage), dict):
            locks.write_marker(marker, previous[stage])
        else:
            locks.remove_marker(marker)


def _marked_by(layout, journal):
    """The journal's stages whose in-progress marker still names its bundle and its owner."""
    marked = []
    for stage in journal.get("stages") or []:
        if stage not in contract.STAGE_ORDER:
            continue
        marker = locks.read_marker(layout.fs(contract.marker_path(stage))) or {}
        if marker.get("installing_bundle") == journal.get("digest") and marker.get("owner_pid") == journal.get("owner_pid"):
            marked.append(stage)
    return marked


def _recover_one(profiles_root, staged, layout, say):
    try:
        journal = jsonio.read_json(os.path.join(staged, JOURNAL))
    except (OSError, ValueError):
        journal = None
    journal = journal if isinstance(journal, dict) else {}
    outcome = {"bundle": journal.get("digest"), "model": journal.get("model"), "staging": staged}
    marked = _marked_by(layout, journal) if journal.get("phase") == "applying" else []
    if marked:
        _roll_back(profiles_root, staged, journal, say)
        _release_markers(layout, journal, marked)
        outcome.update(outcome="rolled_back", holds="old")
    elif journal.get("phase") == "applying":
        outcome.update(outcome="dropped", holds="new or re-primed")
    else:
        named = [stage for stage in journal.get("stages") or [] if stage in contract.STAGE_ORDER and (locks.read_marker(
            layout.fs(contract.marker_path(stage))) or {}).get("installing_bundle") == journal.get("digest")]
        _release_markers(layout, journal, named)  # nothing live changed: markers it may have written go
        outcome.update(outcome="cleared", holds="old")
    shutil.rmtree(staged, ignore_errors=True)
    return outcome


def _roll_back(profiles_root, staged, journal, say):
    """Undo an install that did not finish, from its journal: added entries (still the bundle's) go, old subtrees come back."""
    _remove_added(profiles_root, journal, say)
    for rel in reversed(journal.get("made_dirs") or []):
        try:
            os.rmdir(os.path.join(profiles_root, rel))  # only when empty: what another writer put there stays
        except OSError:
            pass
    _put_back_swapped(profiles_root, staged, journal, say)


def _remove_added(profiles_root, journal, say):
    """Remove the entries the install added, where they are still the bundle's."""
    for rel, item in reversed(list(zip(journal.get("added") or [], journal.get("added_items") or []))):
        live = os.path.join(profiles_root, rel)
        try:
            if item.get("type") == "symlink":
                if os.path.islink(live) and os.readlink(live) == item.get("target"):
                    os.unlink(live)
            elif os.path.isfile(live) and not os.path.islink(live) and file_sha256(live) == item.get("sha256"):
                os.unlink(live)
        except OSError as exc:
            say("could not remove %s (%s)" % (live, exc))


def _put_back_swapped(profiles_root, staged, journal, say):
    """Put the subtrees the install swapped out back in place (the bundle's go back under <staged>/new)."""
    new_dir = os.path.join(staged, "new")
    for rel in reversed(journal.get("swapped") or []):
        live = os.path.join(profiles_root, rel)
        aside = os.path.join(staged, "old", rel)
        moved_in = os.path.join(new_dir, rel)
        try:
            if os.path.lexists(live) and not os.path.lexists(moved_in):
                os.makedirs(os.path.dirname(moved_in), DIR_MODE, exist_ok=True)
                os.rename(live, moved_in)
            if os.path.lexists(aside) and not os.path.lexists(live):
                os.rename(aside, live)
        except OSError as exc:
            say("could not put %s back (%s)" % (live, exc))


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
    """The stage locks of every bundled stage, so no stage run writes the caches while they are changed."""

    def __init__(self, layout, stages, run_id, timeout_s, say):
        self.held = []
        self.args = (layout, stages, run_id, timeout_s, say)

    def __enter__(self):
        layout, stages, run_id, timeout_s, say = self.args
        os.makedirs(layout.fs(contract.LOCKS_DIR), DIR_MODE, exist_ok=True)
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


def _same(live, item):
    """True when the live entry at ``live`` is what the bundle's ``item`` describes."""
    try:
        st = os.lstat(live)
    except FileNotFoundError:
        return None
    if item["type"] == "dir":
        return stat.S_ISDIR(st.st_mode)
    if item["type"] == "symlink":
        return stat.S_ISLNK(st.st_mode) and os.readlink(live) == item["target"]
    return stat.S_ISREG(st.st_mode) and st.st_size == item["size"] and file_sha256(live) == item["sha256"]


def plan_merge(profiles_root, manifest):
    """What installing changes: {swapped: [model subtrees], add: [entries], mkdirs: [dirs], kept: n, conflicts: [...]}."""
    swapped = sorted(set(model_subtree(f["path"]) for f in manifest["files"] if model_subtree(f["path"])))
    plan = {"swapped": swapped, "add": [], "mkdirs": [], "kept": 0, "conflicts": []}
    for top in manifest["caches"]:
        if not os.path.lexists(os.path.join(profiles_root, top)):
            plan["mkdirs"].append({"path": top, "type": "dir"})
    for item in manifest["files"]:
        rel = item["path"]
        if model_subtree(rel) or rel in swapped:
            continue
        live = os.path.join(profiles_root, rel)
        parent = os.path.dirname(live)
        if os.path.realpath(parent) != os.path.join(os.path.realpath(profiles_root), os.path.dirname(rel)):
            raise _unsafe("bundle entry %s would be written through a symlink of this host (%s resolves to %s)"
                          % (rel, os.path.dirname(rel), os.path.realpath(parent)), path=rel, field="files")
        same = _same(live, item)
        if same is None:
            (plan["mkdirs"] if item["type"] == "dir" else plan["add"]).append(item)
        elif same:
            plan["kept"] += 1
        else:
            what = "bytes" if item["type"] == "file" else "content"
            plan["conflicts"].append({"path": rel, "why": "this host has other %s" % what})
    return plan


def install(path, profiles_root, model, current, run_id=None, expected_sha256=None, headroom_mb=1024,
            lock_timeout=600.0, say=None, before_swap=None):
    """Install the bundle at ``path`` into ``profiles_root`` for ``model``; returns a summary dict.

    ``current`` is this host's signature of every bundled stage ({stage: fields}, what ensure would
    record); a bundle whose signatures differ is refused with PrepError(bundle_mismatch) naming each
    field; an entry this host has with other bytes refuses it with PrepError(bundle_conflict). Nothing of
    another model is ever removed. ``before_swap(rel)`` is called before each live change (tests interrupt there).
    """
    with _umask():
        return _install(path, profiles_root, model, current, run_id, expected_sha256, headroom_mb, lock_timeout,
                        say or (lambda _m: None), before_swap)


def _require_match(path, manifest, model, current):
    """PrepError(bundle_mismatch) when the bundle is of another model or this host's signatures differ from it."""
    if manifest["model_slug"] != contract.model_slug(model):
        raise PrepError("bundle_mismatch", "bundle %s holds caches for model %s, not %s; nothing was installed"
                        % (path, manifest["model"], model), reasons=[{"stage": None, "field": "model",
                                                                      "old": manifest["model"], "new": model}])
    reasons = compare(manifest, current)
    if reasons:
        raise PrepError("bundle_mismatch", "this host's signature differs from the bundle's (group %s, built on %s): %s; "
                        "nothing was installed, so this host primes itself"
                        % (manifest["group_key"], manifest["source_host"], describe(reasons)), reasons=reasons)


def _stage_in(path, staged, profiles_root, known, model, current, run_id, stages, digest, expected_sha256):
    """Unpack into <staged>/new, plan the merge (PrepError(bundle_conflict) on a conflict) and write this host's
    signatures into the model's subtree; (manifest rekeyed to this host's model, plan, when the unpack finished,
    the archive's sha256).

    The archive's sha256 is taken while it is unpacked: it must be ``expected_sha256`` (or the digest the bundle's
    name gives) before anything goes live (bundle_corrupt).
    """
    new_dir = os.path.join(staged, "new")
    os.makedirs(new_dir, DIR_MODE)
    with _digest_named(path, expected_sha256):
        manifest, actual = _unpack(path, new_dir, model, known)
    if digest and actual != digest:
        raise _corrupt("bundle %s has sha256 %s, expected %s (corrupted or truncated in transfer)" % (path, actual, digest),
                       path=path, sha256=actual, expected_sha256=digest)
    digest = actual
    unpacked = time.monotonic()
    manifest = _rekey(manifest, new_dir, model)
    plan = plan_merge(profiles_root, manifest)
    if plan["conflicts"]:
        first = plan["conflicts"][0]
        raise PrepError("bundle_conflict", "%d entries of bundle %s exist on this host with other content (first: "
                        "%s, %s); nothing was installed and nothing was overwritten, so this host primes itself"
                        % (len(plan["conflicts"]), digest[:12], first["path"], first["why"]),
                        path=first["path"], conflicts=plan["conflicts"][:20])
    finished = ledger.iso(ledger.utc_now())
    for stage in stages:  # the signatures go into the model's subtree before it is swapped in
        rel = contract.stage_model_dir(stage, model)[len(contract.PROFILES_ROOT) + 1:]
        os.makedirs(os.path.join(new_dir, rel), DIR_MODE, exist_ok=True)
        signature.write(os.path.join(new_dir, rel, SIGNATURE_NAME), stage, current[stage], run_id, finished,
                        manifest["stages"][stage].get("duration_s"))
        if rel not in plan["swapped"]:
            plan["swapped"].append(rel)
    return manifest, plan, unpacked, digest


def _named_digest(path):
    """The sha256 a bundle's name gives (``<sha256>.tar.gz``), or None."""
    name = os.path.basename(path)
    return name[:-len(SUFFIX)] if name.endswith(SUFFIX) and HEX64.match(name[:-len(SUFFIX)]) else None


def _install(path, profiles_root, model, current, run_id, expected_sha256, headroom_mb, lock_timeout, say, before_swap):
    started = time.monotonic()
    layout = Layout(profiles_root=profiles_root)
    # the archive is read once, while it is unpacked into staging: its digest is checked there, before anything goes live
    digest = expected_sha256 or _named_digest(path)
    manifest, manifest_sha256 = _read_manifest(path, expected_sha256=expected_sha256)
    _require_match(path, manifest, model, current)
    stages = [s for s in contract.STAGE_ORDER if s in manifest["stages"]]
    with _install_lock(profiles_root, run_id, lock_timeout, say):
        with _StageLocks(layout, stages, run_id, lock_timeout, say):
            recovered = recover(profiles_root, say)
            require_room(profiles_root, manifest["total_bytes"], headroom_mb)
            staged = os.path.join(staging_root(profiles_root), "%s-%d" % ((digest or "bundle")[:16], os.getpid()))
            journal_path = os.path.join(staged, JOURNAL)
            journal = {"digest": digest, "model": model, "owner_pid": os.getpid(), "owner_host": socket.gethostname(),
                       "run_id": run_id, "stages": stages, "phase": "unpacking"}
            os.makedirs(staged, DIR_MODE)
            try:
                jsonio.write_json_atomic(journal_path, journal)
                manifest, plan, unpacked, digest = _stage_in(path, staged, profiles_root, (manifest, manifest_sha256),
                                                             model, current, run_id, stages, digest, expected_sha256)
                journal["digest"] = digest
            except BaseException:
                shutil.rmtree(staged, ignore_errors=True)
                raise
            marker_info = {"owner_pid": os.getpid(), "started_at": ledger.iso(ledger.utc_now()), "run_id": run_id,
                           "model": model, "installing_bundle": digest}
            os.makedirs(layout.fs(contract.IN_PROGRESS_DIR), DIR_MODE, exist_ok=True)
            # a stage run interrupted here earlier (another model's, say) keeps its marker: it is put back afterwards
            journal["previous_markers"] = dict((stage, locks.read_marker(layout.fs(contract.marker_path(stage))))
                                               for stage in stages)
            jsonio.write_json_atomic(journal_path, journal)
            for stage in stages:
                locks.write_marker(layout.fs(contract.marker_path(stage)), dict(marker_info, stage=stage))
            journal.update(phase="applying", swapped=sorted(plan["swapped"]),
                           made_dirs=[d["path"] for d in plan["mkdirs"]], added=[f["path"] for f in plan["add"]],
                           added_items=[dict((k, f.get(k)) for k in ("type", "sha256", "target")) for f in plan["add"]])
            jsonio.write_json_atomic(journal_path, journal)
            try:
                try:
                    _apply(profiles_root, staged, plan, before_swap)
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise PrepError("insufficient_disk", "the disk under %s filled up while installing bundle %s (%s); "
                                        "the install was rolled back: free space on this host"
                                        % (profiles_root, digest[:12], exc.strerror), path=profiles_root)
                    if exc.errno == errno.EEXIST:
                        raise PrepError("bundle_conflict", "%s appeared on this host while bundle %s was being installed; "
                                        "the install was rolled back and nothing was overwritten: run it again, or let this "
                                        "host prime itself" % (exc.filename, digest[:12]), path=exc.filename)
                    raise
                check_links_resolved(profiles_root, manifest["files"], "bundle %s installed under %s" % (digest[:12], profiles_root))
            except BaseException:
                _roll_back(profiles_root, staged, journal, say)
                _release_markers(layout, journal, stages)
                shutil.rmtree(staged, ignore_errors=True)
                raise
            _release_markers(layout, journal, stages)
            shutil.rmtree(staged, ignore_errors=True)
    return {"digest": digest, "group_key": manifest["group_key"], "source_host": manifest["source_host"],
            "source_run_id": manifest["source_run_id"], "stages": stages, "caches": manifest["caches"],
            "file_count": manifest["file_count"], "total_bytes": manifest["total_bytes"],
            "added": len(plan["add"]), "kept": plan["kept"], "swapped": sorted(plan["swapped"]),
            "archive_bytes": os.path.getsize(path), "recovered": recovered,
            "restored": [r["model"] for r in recovered if r["outcome"] == "rolled_back"],
            "unpack_s": round(unpacked - started, 3), "install_s": round(time.monotonic() - started, 3)}


def _rekey(manifest, new_dir, model):
    """The bundle's model subtrees renamed to this host's model key (the same model under another path), and its files."""
    theirs, mine = contract.model_key(manifest["model"]), contract.model_key(model)
    if theirs == mine:
        return manifest
    for top in manifest["caches"]:
        if os.path.isdir(os.path.join(new_dir, top, theirs)):
            os.rename(os.path.join(new_dir, top, theirs), os.path.join(new_dir, top, mine))

    def moved(rel):
        parts = rel.split("/")
        return "/".join([parts[0], mine] + parts[2:]) if len(parts) >= 2 and model_subtree(rel) and parts[1] == theirs else rel
    return dict(manifest, files=[dict(f, path=moved(f["path"])) for f in manifest["files"]])


def _apply(profiles_root, staged, plan, before_swap):
    """Make the planned changes: new directories, new entries (never over an existing name), the model subtrees swapped."""
    new_dir = os.path.join(staged, "new")
    for item in plan["mkdirs"]:
        if before_swap:
            before_swap(item["path"])
        os.mkdir(os.path.join(profiles_root, item["path"]), DIR_MODE)
    for item in plan["add"]:
        if before_swap:
            before_swap(item["path"])
        live = os.path.join(profiles_root, item["path"])
        if item["type"] == "symlink":
            os.symlink(item["target"], live)
        else:
            _link_new(os.path.join(new_dir, item["path"]), live)
    for rel in sorted(plan["swapped"]):
        if before_swap:
            before_swap(rel)
        live = os.path.join(profiles_root, rel)
        aside = os.path.join(staged, "old", rel)
        os.makedirs(os.path.dirname(live), DIR_MODE, exist_ok=True)
        if os.path.lexists(live):
            os.makedirs(os.path.dirname(aside), DIR_MODE, exist_ok=True)
            os.rename(live, aside)
        os.rename(os.path.join(new_dir, rel), live)


def _link_new(source, live):
    """Put ``source`` at ``live``, never over an existing name (EEXIST rather than overwrite what appeared meanwhile)."""
    try:
        os.link(source, live)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        tmp = "%s.bundle-%d.tmp" % (live, os.getpid())  # a cache on another file system: copy beside it, then link
        shutil.copy2(source, tmp)
        try:
            os.link(tmp, live)
        finally:
            _unlink(tmp)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cache bundles: one model's primed caches, packed so that identical hosts install them instead of compiling.

A bundle is a gzip'd tar named by the sha256 of its bytes (``<sha256>.tar.gz``), format 3. Its first member,
``sglang-cache-bundle.json``, is the manifest, a header that lists no file: the group key, each bundled stage's
signature as a digest plus its non-secret fields (a field that can carry a secret, such as ``extra_server_args`` or
``server_env``, travels as ``sha256:<hex>`` only), the cache directories it holds, the number of entries and of files
and their total bytes, the source host, the creation time and the collection version. Every other member is a file,
directory or symlink under one of the cache directories of contract.CACHES, a directory before what it holds; a
regular file carries its own sha256 in its PAX header (DIGEST_HEADER).

What travels is the bundled model's: the entries of the caches that are not another model's subtree
(``<cache>/<model_key>/``) and the bundled model's own subtrees. Signature files never travel (each host
writes its own), nor a log a cache keeps beside its entries (``*.log`` outside a model subtree).

Nothing grows with the bundle's size on either side. Packing walks the caches twice, streamed (the totals for the
header, then the members), holding neither the tree nor tarfile's member list. Installing checks the header as a
schema (check_manifest: every field has a type and a bound, nesting is limited, the signatures must name the
bundled model, the format must be this one: a format-2 bundle is refused with a message to re-publish it), then
each member as it is written (_Unpacker): an absolute path, a ``..`` component, a path outside the cache
directories, a path seen before, a hard link, a symlink whose target has ``..`` or is absolute, a device file or
FIFO, a member written through a link, a file whose bytes are not the sha256 of its header (or without one) each
refuse the whole bundle before anything under the live caches is touched; then the totals against the header and
every link (none through another, each resolved by the file system inside its cache). What the install remembers
across members (every entry, and what the merge does with it) is an index on disk in the staging directory
(_Index: sqlite3, of Python's standard library), which the journal's roll back reads too.

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
import io
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

FORMAT_VERSION = "3"
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
MANIFEST_FIELDS = ("format", "group_key", "model", "model_slug", "stages", "caches", "entry_count", "file_count",
                   "total_bytes", "source_host", "source_run_id", "created_at", "collection_version")
# Each regular member's sha256, in its PAX header (format 3): the receiver hashes the member as it writes it
DIGEST_HEADER = "SGLANG.sha256"
INDEX = "index.sqlite"  # in a staging directory: every unpacked entry and what the install does with it
# Bounds of the checked manifest (the header: no list of files since format 3)
MAX_MANIFEST_BYTES = 1024 * 1024
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
    with open(path, "rb") as handle:
        return _sha256_of(handle)


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


def _entries(profiles_root, model):
    """Every entry of ``model`` under the cache directories, streamed in a fixed order (each directory's names sorted,
    a directory before what it holds): (rel, kind, lstat result, a link's target or None).

    Another model's subtree (<cache>/<model_key>/) stays out, and in a BUNDLE_MODEL cache only the model's own
    subtree travels; signature files never travel, nor a cache's own log. Refuses what cannot travel. Nothing is
    held but the sorted names of the directories on the way down (no list of the whole tree).
    """
    own_key = contract.model_key(model)
    for name in cache_names():
        top = os.path.join(profiles_root, name)
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        per_model = cache_mode(name) == contract.BUNDLE_MODEL
        keyed = name in _model_caches()
        names = []
        with os.scandir(top) as found:
            for entry in found:
                if entry.is_dir():  # as os.walk: a link to a directory counts as one here
                    if entry.name == own_key if per_model or (keyed and MODEL_KEY.match(entry.name)) else True:
                        names.append(entry.name)
                elif not per_model:
                    names.append(entry.name)
        stack = [(name, iter(sorted(names)))]
        while stack:
            rel_dir, names = stack[-1]
            entry = next(names, None)
            if entry is None:
                stack.pop()
                continue
            rel = rel_dir + "/" + entry
            full = os.path.join(profiles_root, rel)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(full)
                _check_link(rel, target)
                _check_link_chain(profiles_root, rel, target)
                yield rel, "symlink", st, target
            elif stat.S_ISDIR(st.st_mode):
                yield rel, "dir", st, None
                stack.append((rel, iter(sorted(os.listdir(full)))))
            elif stat.S_ISREG(st.st_mode):
                if not _is_signature_file(rel) and not _host_log(rel):
                    yield rel, "file", st, None
            else:
                raise PrepError("bundle_unsafe", "%s under %s is not a regular file, directory or symlink (a device "
                                "file, FIFO or socket); it cannot travel in a bundle: remove it" % (rel, profiles_root),
                                path=rel)


def _check_link_chain(profiles_root, rel, target):
    """A link whose target passes through another link of this host's caches cannot travel (the kernel would follow it)."""
    through = _link_through(rel, target, lambda prefix: os.path.islink(os.path.join(profiles_root, prefix)))
    if through:
        raise _unsafe("this host's caches: symlink %s -> %s passes through another link (%s)"
                      % (rel, target, through), path=rel, target=target, field="target")


def _totals(profiles_root, model):
    """{entry_count, file_count, total_bytes, caches} of what ``_entries`` yields (a pass over the metadata only)."""
    entries = files = total = 0
    tops = set()
    for rel, kind, st, _target in _entries(profiles_root, model):
        entries += 1
        tops.add(rel.split("/", 1)[0])
        if kind == "file":
            files += 1
            total += st.st_size
    return {"entry_count": entries, "file_count": files, "total_bytes": total, "caches": sorted(tops)}


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
    totals = _totals(profiles_root, model)
    if not totals["entry_count"]:
        raise PrepError("bundle_unavailable", "%s has no cache entries of %s on this host: there is nothing to bundle"
                        % (profiles_root, model))
    manifest = dict(totals, **{
        "format": FORMAT_VERSION,
        "group_key": group_key(signatures),
        "model": model,
        "model_slug": contract.model_slug(model),
        "stages": dict((stage, {"fields": public_fields(signatures[stage]),
                                "signature_sha256": signature_digest(signatures[stage]),
                                "signature_group": records[stage].get("signature_group"),
                                "source_run_id": records[stage].get("run_id"),
                                "duration_s": records[stage].get("duration_s")}) for stage in stages),
        "source_host": source_host or socket.gethostname(),
        "source_run_id": run_id,
        "created_at": ledger.iso(now or ledger.utc_now()),
        "collection_version": collection_version,
    })
    os.makedirs(out_dir, DIR_MODE, exist_ok=True)
    tmp = os.path.join(out_dir, ".pack-%d.tmp" % os.getpid())
    try:
        with open(tmp, "wb") as raw:
            with _GzipWriter(raw) as gz:
                # no member list kept (cleared after each member); the archive written once, compressed beside the reads
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    header = json.dumps(manifest, sort_keys=True, indent=1).encode("utf-8")
                    info = _info(MANIFEST_NAME, tarfile.REGTYPE, 0o644, 0)
                    info.size = len(header)
                    tar.addfile(info, io.BytesIO(header))
                    written = {"entry_count": 0, "file_count": 0, "total_bytes": 0}
                    for rel, kind, st, target in _entries(profiles_root, model):
                        _add(tar, profiles_root, rel, kind, st, target)
                        tar.members.clear()
                        written["entry_count"] += 1
                        if kind == "file":
                            written["file_count"] += 1
                            written["total_bytes"] += st.st_size
                    if any(written[k] != totals[k] for k in written):
                        raise PrepError("bundle_unavailable", "the caches under %s changed while they were packed (%s "
                                        "counted, %s packed): pack again once no stage runs" % (
                                            profiles_root, dict((k, totals[k]) for k in written), written))
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


def _info(name, kind, mode, mtime):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = int(mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add(tar, profiles_root, rel, kind, st, target):
    """One member: a regular file carries its sha256 in its PAX header (DIGEST_HEADER), taken before its bytes are
    written; a file that changes meanwhile stops the pack."""
    if kind == "dir":
        tar.addfile(_info(rel, tarfile.DIRTYPE, 0o755, st.st_mtime))
        return
    if kind == "symlink":
        info = _info(rel, tarfile.SYMTYPE, 0o777, st.st_mtime)
        info.linkname = target
        tar.addfile(info)
        return
    full = os.path.join(profiles_root, rel)
    info = _info(rel, tarfile.REGTYPE, st.st_mode & 0o755, st.st_mtime)
    info.size = st.st_size
    with open(full, "rb") as handle:
        if st.st_size <= CHUNK:  # a small file is read once, hashed and written from memory
            data = handle.read(CHUNK + 1)
            if len(data) != st.st_size:
                raise _changed(full)
            info.pax_headers = {DIGEST_HEADER: hashlib.sha256(data).hexdigest()}
            tar.addfile(info, io.BytesIO(data))
            return
        expected = _sha256_of(handle)
        info.pax_headers = {DIGEST_HEADER: expected}
        handle.seek(0)
        hashed = _HashingReader(handle)
        tar.addfile(info, hashed)
        if hashed.digest.hexdigest() != expected or handle.read(1):
            raise _changed(full)


def _changed(path):
    return PrepError("bundle_unavailable", "%s changed while it was packed: pack again once no stage runs" % path, path=path)


def _sha256_of(handle):
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


class _HashingReader(object):
    """A file whose bytes are hashed as tarfile copies them into the archive."""

    def __init__(self, handle):
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size=-1):
        data = self.handle.read(size)
        self.digest.update(data)
        return data


# ---------------------------------------------------------------- checking (any host)

def _unsafe(message, **details):
    return PrepError("bundle_unsafe", message + "; the bundle was refused and nothing was installed", **details)


def _corrupt(message, **details):
    return PrepError("bundle_corrupt", message + "; the bundle was refused and nothing was installed (fetch it again, "
                     "or let this host prime itself)", **details)


def check_path(rel, field="member"):
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
                      target=target if isinstance(target, str) else None, field="member.target")
    parts = target.split("/")
    if ".." in parts or any(part in ("", ".") for part in parts) or "\x00" in target or len(target) > MAX_PATH:
        raise _unsafe("symlink %s -> %s: a link target may not have '..' (or empty) components" % (rel, target),
                      path=rel, target=target, field="member.target")


def _link_resolved(rel, target):
    return "/".join(rel.split("/")[:-1] + target.split("/"))


def _link_through(rel, target, is_link):
    """The first leading part of the link's resolved target (itself included) that ``is_link`` says is a link, or None."""
    resolved = _link_resolved(rel, target).split("/")
    for i in range(1, len(resolved) + 1):
        prefix = "/".join(resolved[:i])
        if is_link(prefix):
            return prefix
    return None


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
    """The header manifest, checked as a schema: PrepError(bundle_corrupt or bundle_unsafe, naming the field) otherwise.

    ``model``: the receiver's model path; the bundle's signatures must name it (and only it). The members are checked
    one by one as they are unpacked (_Unpacker), and the totals against this header at the end.
    """
    _check_shape(manifest, where)
    _check_model_fields(manifest, where)
    _check_stages(manifest, where, model)
    caches = manifest["caches"]
    if (not isinstance(caches, list) or not caches or caches != sorted(set(c for c in caches if isinstance(c, str)))
            or any(c not in _tables()[1] for c in caches)):
        raise _corrupt("%s manifest field caches is %s, not the sorted cache directories it holds (of %s)"
                       % (where, _kind(caches), ", ".join(cache_names())), field="caches")
    entries = _int(manifest["entry_count"], "entry_count", where, MAX_FILES)
    if _int(manifest["file_count"], "file_count", where, MAX_FILES) > entries or not entries:
        raise _corrupt("%s manifest says %d files in %d entries" % (where, manifest["file_count"], entries),
                       field="file_count")
    _int(manifest["total_bytes"], "total_bytes", where, MAX_FILE_BYTES)
    return manifest


def _check_shape(manifest, where):
    """An object of the known fields, not too deep, of this format, with a hex group key."""
    if not isinstance(manifest, dict):
        raise _corrupt("%s has no manifest object" % where, field="manifest")
    if not _depth(manifest, MAX_DEPTH):
        raise _corrupt("%s manifest nests deeper than %d levels" % (where, MAX_DEPTH), field="manifest")
    if manifest.get("format") != FORMAT_VERSION:
        old = manifest.get("format") in ("1", "2")
        raise _corrupt("%s has format %s; this collection reads format %s (%s)" % (
            where, _kind(manifest.get("format")), FORMAT_VERSION,
            "a bundle of an older collection: re-publish it, that is pack it again on a builder that runs this "
            "collection" if old else "build the bundle again with this collection"), field="format")
    missing = [f for f in MANIFEST_FIELDS if f not in manifest]
    if missing:
        raise _corrupt("%s manifest lacks %s" % (where, ", ".join(missing)), field=missing[0])
    unknown = sorted(str(f)[:40] for f in manifest if f not in MANIFEST_FIELDS)
    if unknown:
        raise _corrupt("%s manifest has fields this collection does not know: %s" % (where, ", ".join(unknown[:5])),
                       field=unknown[0])
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


def _check_entry_place(rel, where, own_key, bundled_model):
    """No signature file, nothing of another model, nothing outside the model's subtree of a per-model cache."""
    if _is_signature_file(rel):
        raise _unsafe("%s carries the signature file %s: signatures never travel (each host writes its own)" % (where, rel),
                      path=rel, field="member")
    subtree = model_subtree(rel)
    if subtree and subtree.split("/")[1] != own_key:
        raise _unsafe("%s carries %s, in the subtree of another model than %s" % (where, rel, bundled_model[:200]),
                      path=rel, field="member")
    if cache_mode(rel.split("/")[0]) == contract.BUNDLE_MODEL and subtree is None and "/" in rel:
        raise _unsafe("%s carries %s outside the model's subtree of a per-model cache" % (where, rel), path=rel, field="member")


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
    manifest is not parsed again.
    """
    try:
        first = tar.next()
        if first is None or first.name != MANIFEST_NAME or not first.isreg():
            raise _corrupt("bundle %s does not start with %s" % (path, MANIFEST_NAME), path=path, field="manifest")
        if first.size > MAX_MANIFEST_BYTES:
            raise _corrupt("the manifest of bundle %s has %d bytes (at most %d: since format %s it lists no file; a "
                           "larger one is a format-2 bundle of an older collection, so re-publish it: pack it again on a "
                           "builder that runs this collection)" % (path, first.size, MAX_MANIFEST_BYTES, FORMAT_VERSION),
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
    scratch = tempfile.mkdtemp(prefix=".bundle-index-", dir=os.path.dirname(os.path.abspath(dest)))
    index = _Index(os.path.join(scratch, INDEX))
    try:
        return _unpack(path, dest, index, model)[0]
    finally:
        index.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _unpack(path, dest, index, model=None, known=None):
    """unpack, reading the archive once as a stream: (the manifest, the archive's sha256); ``known``: _manifest_member's.

    Every entry goes to ``index`` (on disk), under this host's model key when ``model`` is given.
    """
    reader = _ArchiveReader(path)
    try:
        try:
            tar = tarfile.open(fileobj=reader, mode="r:")  # plain tar: the reader decompresses, forward only
            manifest = _manifest_member(tar, path, model, known)[0]
            unpacker = _Unpacker(manifest, path, os.path.realpath(dest), index, model)
            member = tar.next()
            while member is not None:
                _unpack_member(tar, member, unpacker, unpacker.dest_real)
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
    unpacker.finish()
    return manifest, digest


class _Index(object):
    """What an install remembers across members, on disk: an sqlite table in the staging directory (sqlite3 is in
    Python's standard library) of every unpacked entry (its path under this host's model key, type, size, sha256, a
    link's target) and what the install does with it (plan: add, mkdir, kept). Memory stays at sqlite's bounded page
    cache and a page of rows, whatever the bundle's size; a roll back reads the same table."""

    PAGE = 1024
    COLUMNS = "path, type, size, sha256, target"

    def __init__(self, path, create=True):
        try:
            import sqlite3
        except ImportError:  # a python3 built without it: say so, never a traceback
            raise PrepError("bundle_unavailable", "this container's python3 has no sqlite3 module (part of Python's "
                            "standard library), which installing a bundle needs for its index: install the full "
                            "standard library of the image's python3, or let this host prime itself")
        self.errors = (sqlite3.Error,)
        self.integrity = sqlite3.IntegrityError
        self.path = path
        if not create and not os.path.isfile(path):
            raise FileNotFoundError(path)
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
            for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-2048", "temp_store=FILE"):
                self.db.execute("PRAGMA " + pragma)
            self.db.execute("CREATE TABLE IF NOT EXISTS entries (path TEXT PRIMARY KEY, type TEXT NOT NULL, size INTEGER, "
                            "sha256 TEXT, target TEXT, plan TEXT) WITHOUT ROWID")
            self.db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise OSError("the bundle index %s cannot be opened (%s)" % (path, exc))

    def add(self, rel, kind, size, sha256, target):
        """Record an unpacked entry; PrepError(bundle_unsafe) when its path was unpacked already."""
        try:
            self.db.execute("INSERT INTO entries (path, type, size, sha256, target) VALUES (?, ?, ?, ?, ?)",
                            (rel, kind, size, sha256, target))
        except self.integrity:
            raise _unsafe("bundle member %s appears twice" % rel, path=rel, field="member")

    def kind(self, rel):
        row = self.db.execute("SELECT type FROM entries WHERE path = ?", (rel,)).fetchone()
        return row[0] if row else None

    def rows(self, kind=None, plan=None, descending=False):
        """Every entry as a dict, in path order (a directory before what it holds; reversed: after), a page at a time."""
        where, params = [], []
        for column, value in (("type", kind), ("plan", plan)):
            if value is not None:
                where.append("%s = ?" % column)
                params.append(value)
        last = None
        while True:
            cond = list(where)
            if last is not None:
                cond.append("path %s ?" % ("<" if descending else ">"))
            sql = "SELECT %s FROM entries%s ORDER BY path%s LIMIT %d" % (
                self.COLUMNS, (" WHERE " + " AND ".join(cond)) if cond else "", " DESC" if descending else "", self.PAGE)
            page = self.db.execute(sql, params + ([last] if last is not None else [])).fetchall()
            for path, kind_, size, sha256, target in page:
                yield {"path": path, "type": kind_, "size": size, "sha256": sha256, "target": target}
            if len(page) < self.PAGE:
                return
            last = page[-1][0]

    def set_plan(self, updates):
        self.db.executemany("UPDATE entries SET plan = ? WHERE path = ?", updates)

    def sync(self):
        """Commit and write to disk (what a roll back after a kill reads)."""
        self.db.execute("COMMIT")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.db.execute("BEGIN")

    def close(self):
        try:
            if self.db.in_transaction:
                self.db.execute("COMMIT")
        finally:
            self.db.close()


class _Unpacker(object):
    """Checks each member as it is unpacked (nothing of the bundle is held: the entries go to the index) and, at the
    end, the totals and the links against the manifest."""

    def __init__(self, manifest, path, dest_real, index, model=None):
        self.manifest = manifest
        self.where = "bundle %s" % path
        self.path = path
        self.dest_real = dest_real
        self.index = index
        self.theirs = contract.model_key(manifest["model"])
        self.mine = contract.model_key(model) if model else self.theirs
        self.counts = {"entry_count": 0, "file_count": 0, "total_bytes": 0}
        self.tops = set()
        self.verified = set()  # directories made here and resolved without a symlink (bounded: cleared when large)
        self.dirs = set()  # directories known to be entries (bounded likewise)

    def moved(self, rel):
        """``rel`` with the bundle's model key replaced by this host's (the same model under another path)."""
        if self.theirs == self.mine:
            return rel
        parts = rel.split("/")
        if len(parts) >= 2 and parts[1] == self.theirs and model_subtree(rel):
            return "/".join([parts[0], self.mine] + parts[2:])
        return rel

    def take(self, member, kind):
        """Check ``member`` against the manifest and what came before it, record it; (its path here, sha256 or None)."""
        rel = member.name
        top = rel.split("/", 1)[0]
        if top == rel:
            raise _corrupt("bundle member %s is a cache directory itself, not an entry in one" % rel, path=rel, field="member")
        if top not in self.manifest["caches"]:
            raise _corrupt("bundle member %s is in %s, which its manifest's caches (%s) do not name"
                           % (rel, top, ", ".join(self.manifest["caches"])), path=rel, field="caches")
        self.tops.add(top)
        self._count("entry_count", 1, rel)
        digest = None
        if kind == "file":
            self._count("file_count", 1, rel)
            self._count("total_bytes", member.size, rel)
            digest = member.pax_headers.get(DIGEST_HEADER)
            if not isinstance(digest, str) or not HEX64.match(digest):
                raise _corrupt("bundle member %s has no sha256 of 64 hex digits in its PAX header %s"
                               % (rel, DIGEST_HEADER), path=rel, field=DIGEST_HEADER)
        here = self.moved(rel)
        parent = here.rsplit("/", 1)[0]
        if "/" in parent and parent not in self.dirs:  # a cache directory itself is never a member
            found = self.index.kind(parent)
            if found == "symlink":
                raise _unsafe("bundle member %s would be written through the symlink %s" % (rel, parent), path=rel,
                              field="member")
            if found != "dir":
                raise _corrupt("bundle member %s comes before its directory %s" % (rel, parent), path=rel, field="member")
            _remember(self.dirs, parent)
        self.index.add(here, kind, member.size if kind == "file" else None, digest,
                       member.linkname if kind == "symlink" else None)
        if kind == "dir":
            _remember(self.dirs, here)  # what it holds comes next: no look-up for its parent
        return here, digest

    def _count(self, key, amount, rel):
        self.counts[key] += amount
        if self.counts[key] > self.manifest[key]:
            raise _corrupt("bundle %s holds more than its manifest's %s %d (at %s)" % (self.path, key, self.manifest[key], rel),
                           path=self.path, field=key)

    def finish(self):
        """The totals against the manifest, then every link: none passes through another, each stays in its cache."""
        counts, manifest = self.counts, self.manifest
        if counts["entry_count"] < manifest["entry_count"]:
            raise _corrupt("bundle %s lacks %d of the %d entries its manifest says: a truncated transfer"
                           % (self.path, manifest["entry_count"] - counts["entry_count"], manifest["entry_count"]),
                           path=self.path, field="entry_count")
        for key in ("file_count", "total_bytes"):
            if counts[key] != manifest[key]:
                raise _corrupt("bundle %s manifest says %s %d; its members have %d" % (self.path, key, manifest[key], counts[key]),
                               path=self.path, field=key)
        if sorted(self.tops) != manifest["caches"]:
            raise _corrupt("bundle %s manifest field caches says %s; its members are in %s"
                           % (self.path, ", ".join(manifest["caches"]), ", ".join(sorted(self.tops))), path=self.path,
                           field="caches")
        for item in self.index.rows(kind="symlink"):
            through = _link_through(item["path"], item["target"], lambda prefix: self.index.kind(prefix) == "symlink")
            if through:
                raise _unsafe("%s: symlink %s -> %s passes through another link (%s)"
                              % (self.where, item["path"], item["target"], through),
                              path=item["path"], target=item["target"], field="member.target")
        check_links_resolved(self.dest_real, self.index.rows(kind="symlink"), self.where)


def check_links_resolved(root, items, where):
    """Resolve every symlink of ``items`` under ``root`` with the file system: each must stay in its cache (bundle_unsafe)."""
    for item in items:
        if item["type"] != "symlink":
            continue
        top = os.path.realpath(os.path.join(root, item["path"].split("/")[0]))
        resolved = os.path.realpath(os.path.join(root, item["path"]))
        if resolved != top and not resolved.startswith(top + os.sep):
            raise _unsafe("%s: symlink %s -> %s resolves to %s, outside its cache %s"
                          % (where, item["path"], item["target"], resolved, top), path=item["path"], field="member.target")


def _member_kind(member, unpacker):
    """The kind of a member that may be unpacked: a file, directory or safe symlink in the bundled model's place."""
    rel = member.name
    check_path(rel)
    _check_entry_place(rel, unpacker.where, unpacker.theirs, unpacker.manifest["model"])
    if member.islnk():
        raise _unsafe("bundle member %s is a hard link" % rel, path=rel)
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise _unsafe("bundle member %s is a device file or FIFO" % rel, path=rel)
    kind = "dir" if member.isdir() else "symlink" if member.issym() else "file" if member.isreg() else None
    if kind is None:
        raise _unsafe("bundle member %s has an unsupported type" % rel, path=rel)
    if kind == "symlink":
        _check_link(rel, member.linkname)
    if kind == "file" and member.size > MAX_FILE_BYTES:
        raise _corrupt("bundle member %s has %d bytes (at most %d)" % (rel, member.size, MAX_FILE_BYTES), path=rel)
    return kind


def _unpack_member(tar, member, unpacker, dest_real):
    rel = member.name
    kind = _member_kind(member, unpacker)
    here, digest = unpacker.take(member, kind)
    target = os.path.join(dest_real, here)
    parent = os.path.dirname(target)
    if parent not in unpacker.verified:  # only this unpack writes under dest, and it never removes a directory
        os.makedirs(parent, DIR_MODE, exist_ok=True)
        if os.path.realpath(parent) != parent:
            raise _unsafe("bundle member %s would be written through a symlink" % rel, path=rel)
        _remember(unpacker.verified, parent)
    try:
        if kind == "dir":
            os.mkdir(target, DIR_MODE)
            _remember(unpacker.verified, target)  # made here, in a resolved directory: no link on its way
        elif kind == "symlink":
            os.symlink(member.linkname, target)
        else:
            _unpack_file(tar, member, digest, target)
    except FileExistsError:
        raise _unsafe("bundle member %s is written where an earlier member put another entry" % rel, path=rel,
                      field="member")


def _remember(verified, directory, limit=4096):
    if len(verified) >= limit:
        verified.clear()
    verified.add(directory)


def _unpack_file(tar, member, expected, target):
    """Write a regular member to ``target`` (never through a symlink), hashing it as it is written: its sha256 must be
    ``expected`` (its PAX header's)."""
    rel = member.name
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
        if written != member.size or digest.hexdigest() != expected:
            raise _corrupt("bundle member %s has %d bytes with sha256 %s; its header says %d bytes, sha256 %s"
                           % (rel, written, digest.hexdigest(), member.size, expected), path=rel, field=DIGEST_HEADER)
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


def _roll_back(profiles_root, staged, journal, say, index=None):
    """Undo an install that did not finish, from its journal and its index: added entries (still the bundle's) go, the
    directories it made go when empty, old subtrees come back."""
    opened = None
    if index is None and journal.get("index"):
        try:
            index = opened = _Index(os.path.join(staged, os.path.basename(journal["index"])), create=False)
        except (OSError, PrepError) as exc:
            say("the index of the interrupted install under %s could not be read (%s); its added entries stay" % (staged, exc))
    try:
        _remove_added(profiles_root, journal, say, index)
        if index is not None:
            try:
                for item in index.rows(plan="mkdir", descending=True):  # deepest first
                    _rmdir(profiles_root, item["path"])
            except index.errors as exc:
                say("the index under %s could not be read to the end (%s)" % (staged, exc))
        for rel in reversed(journal.get("made_dirs") or []):
            _rmdir(profiles_root, rel)
        _put_back_swapped(profiles_root, staged, journal, say)
    finally:
        if opened is not None:
            opened.close()


def _rmdir(profiles_root, rel):
    try:
        os.rmdir(os.path.join(profiles_root, rel))  # only when empty: what another writer put there stays
    except OSError:
        pass


def _remove_added(profiles_root, journal, say, index=None):
    """Remove the entries the install added, where they are still the bundle's (the index's rows marked add; a
    journal of an older collection lists them itself)."""
    items = [dict(item, path=rel) for rel, item in zip(journal.get("added") or [], journal.get("added_items") or [])]
    try:
        for item in (index.rows(plan="add", descending=True) if index is not None else reversed(items)):
            live = os.path.join(profiles_root, item["path"])
            try:
                if item.get("type") == "symlink":
                    if os.path.islink(live) and os.readlink(live) == item.get("target"):
                        os.unlink(live)
                elif os.path.isfile(live) and not os.path.islink(live) and file_sha256(live) == item.get("sha256"):
                    os.unlink(live)
            except OSError as exc:
                say("could not remove %s (%s)" % (live, exc))
    except (index.errors if index is not None else ()) as exc:
        say("the index under %s could not be read to the end (%s)" % (journal.get("index"), exc))


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


def plan_merge(profiles_root, manifest, index):
    """What installing changes, marked in the index (plan: add, mkdir, kept) a page at a time; returns
    {index, swapped: [model subtrees], tops: [cache directories to make], add: n, mkdir: n, kept: n,
    conflicts: [the first 20], conflict_count: n}."""
    plan = {"index": index, "swapped": set(), "tops": [], "add": 0, "mkdir": 0, "kept": 0, "conflicts": [],
            "conflict_count": 0}
    for top in manifest["caches"]:
        if not os.path.lexists(os.path.join(profiles_root, top)):
            plan["tops"].append(top)
    root_real = os.path.realpath(profiles_root)
    resolved = set()  # parents checked to resolve without a link of this host (bounded)
    updates = []
    for item in index.rows():
        rel = item["path"]
        subtree = model_subtree(rel)
        if subtree:
            plan["swapped"].add(subtree)
            continue
        live = os.path.join(profiles_root, rel)
        parent = os.path.dirname(live)
        if parent not in resolved:
            if os.path.realpath(parent) != os.path.join(root_real, os.path.dirname(rel)):
                raise _unsafe("bundle entry %s would be written through a symlink of this host (%s resolves to %s)"
                              % (rel, os.path.dirname(rel), os.path.realpath(parent)), path=rel, field="member")
            _remember(resolved, parent)
        same = _same(live, item)
        if same is None:
            step = "mkdir" if item["type"] == "dir" else "add"
            plan[step] += 1
            updates.append((step, rel))
        elif same:
            plan["kept"] += 1
        else:
            plan["conflict_count"] += 1
            if len(plan["conflicts"]) < 20:
                what = "bytes" if item["type"] == "file" else "content"
                plan["conflicts"].append({"path": rel, "why": "this host has other %s" % what})
        if len(updates) >= index.PAGE:
            index.set_plan(updates)
            updates = []
    index.set_plan(updates)
    plan["swapped"] = sorted(plan["swapped"])
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


def _stage_in(path, staged, profiles_root, known, model, current, run_id, stages, digest, expected_sha256, index):
    """Unpack into <staged>/new (under this host's model key), plan the merge (PrepError(bundle_conflict) on a conflict)
    and write this host's signatures into the model's subtree; (manifest, plan, when the unpack finished, the
    archive's sha256).

    The archive's sha256 is taken while it is unpacked: it must be ``expected_sha256`` (or the digest the bundle's
    name gives) before anything goes live (bundle_corrupt).
    """
    new_dir = os.path.join(staged, "new")
    os.makedirs(new_dir, DIR_MODE)
    with _digest_named(path, expected_sha256):
        manifest, actual = _unpack(path, new_dir, index, model, known)
    if digest and actual != digest:
        raise _corrupt("bundle %s has sha256 %s, expected %s (corrupted or truncated in transfer)" % (path, actual, digest),
                       path=path, sha256=actual, expected_sha256=digest)
    digest = actual
    unpacked = time.monotonic()
    plan = plan_merge(profiles_root, manifest, index)
    if plan["conflicts"]:
        first = plan["conflicts"][0]
        raise PrepError("bundle_conflict", "%d entries of bundle %s exist on this host with other content (first: "
                        "%s, %s); nothing was installed and nothing was overwritten, so this host primes itself"
                        % (plan["conflict_count"], digest[:12], first["path"], first["why"]),
                        path=first["path"], conflicts=plan["conflicts"])
    finished = ledger.iso(ledger.utc_now())
    for stage in stages:  # the signatures go into the model's subtree before it is swapped in
        rel = contract.stage_model_dir(stage, model)[len(contract.PROFILES_ROOT) + 1:]
        os.makedirs(os.path.join(new_dir, rel), DIR_MODE, exist_ok=True)
        signature.write(os.path.join(new_dir, rel, SIGNATURE_NAME), stage, current[stage], run_id, finished,
                        manifest["stages"][stage].get("duration_s"))
        if rel not in plan["swapped"]:
            plan["swapped"].append(rel)
    index.sync()  # what a roll back after a kill reads
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
            index = None
            try:
                jsonio.write_json_atomic(journal_path, journal)
                index = _Index(os.path.join(staged, INDEX))  # every entry, on disk: nothing grows with the bundle
                manifest, plan, unpacked, digest = _stage_in(path, staged, profiles_root, (manifest, manifest_sha256),
                                                             model, current, run_id, stages, digest, expected_sha256, index)
                journal["digest"] = digest
            except BaseException:
                if index is not None:
                    index.close()
                shutil.rmtree(staged, ignore_errors=True)
                raise
            try:
                summary = _go_live(path, profiles_root, model, run_id, stages, layout, staged, journal, journal_path,
                                   manifest, plan, digest, before_swap, say)
            finally:
                index.close()
                shutil.rmtree(staged, ignore_errors=True)
    summary.update(recovered=recovered, restored=[r["model"] for r in recovered if r["outcome"] == "rolled_back"],
                   unpack_s=round(unpacked - started, 3), install_s=round(time.monotonic() - started, 3))
    return summary


def _go_live(path, profiles_root, model, run_id, stages, layout, staged, journal, journal_path, manifest, plan, digest,
             before_swap, say):
    """Mark the stages, journal the plan, make the changes (rolled back on any failure); the install's summary."""
    marker_info = {"owner_pid": os.getpid(), "started_at": ledger.iso(ledger.utc_now()), "run_id": run_id,
                   "model": model, "installing_bundle": digest}
    os.makedirs(layout.fs(contract.IN_PROGRESS_DIR), DIR_MODE, exist_ok=True)
    # a stage run interrupted here earlier (another model's, say) keeps its marker: it is put back afterwards
    journal["previous_markers"] = dict((stage, locks.read_marker(layout.fs(contract.marker_path(stage))))
                                       for stage in stages)
    jsonio.write_json_atomic(journal_path, journal)
    for stage in stages:
        locks.write_marker(layout.fs(contract.marker_path(stage)), dict(marker_info, stage=stage))
    # the entries it adds and the directories it makes are the index's rows marked add and mkdir
    journal.update(phase="applying", swapped=sorted(plan["swapped"]), made_dirs=list(plan["tops"]), index=INDEX)
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
        check_links_resolved(profiles_root, plan["index"].rows(kind="symlink"),
                             "bundle %s installed under %s" % (digest[:12], profiles_root))
    except BaseException:
        _roll_back(profiles_root, staged, journal, say, plan["index"])
        _release_markers(layout, journal, stages)
        raise
    _release_markers(layout, journal, stages)
    return {"digest": digest, "group_key": manifest["group_key"], "source_host": manifest["source_host"],
            "source_run_id": manifest["source_run_id"], "stages": stages, "caches": manifest["caches"],
            "file_count": manifest["file_count"], "total_bytes": manifest["total_bytes"],
            "added": plan["add"], "kept": plan["kept"], "swapped": sorted(plan["swapped"]),
            "archive_bytes": os.path.getsize(path)}


def _apply(profiles_root, staged, plan, before_swap):
    """Make the planned changes: new directories (parents first), new entries (never over an existing name), the
    model subtrees swapped."""
    new_dir = os.path.join(staged, "new")
    index = plan["index"]
    for rel in plan["tops"]:
        if before_swap:
            before_swap(rel)
        os.mkdir(os.path.join(profiles_root, rel), DIR_MODE)
    for item in index.rows(plan="mkdir"):
        if before_swap:
            before_swap(item["path"])
        os.mkdir(os.path.join(profiles_root, item["path"]), DIR_MODE)
    for item in index.rows(plan="add"):
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

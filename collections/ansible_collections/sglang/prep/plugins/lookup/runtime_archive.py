# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: runtime_archive
short_description: Pack the sglang_prep runtime into one checksummed archive on the controller
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.1.0
description:
  - Packs the collection's runtime package (C(plugins/module_utils/sglang_prep), the shared contract and
    the container program) into one reproducible C(.tar.gz) on the controller, read as the controller's
    own user, and returns its path and SHA-256.
  - The same content always gives the same archive (sorted names, fixed times, owners and modes), so its
    checksum says whether a host's deployed copy is current. An archive already built for the same content
    is reused.
  - The archive holds the manifest C(sglang_prep/MANIFEST.sha256), the SHA-256 of every file in C(sha256sum) format,
    so the host can check on every run that the unpacked tree is still exactly what was deployed.
  - The role M(ansible.builtin.copy)s the archive to each host as the host user (skipped when the checksum
    matches) and unpacks it there, one transfer instead of one per file.
options:
  _terms:
    description: Not used.
    required: false
  cache_dir:
    description:
      - Controller directory for the archives. Empty means C(sglang-prep-<uid>) in the controller's
        temporary directory, created with mode 0700.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Show the runtime archive and its checksum
  ansible.builtin.debug:
    msg: "{{ lookup('sglang.prep.runtime_archive') }}"
"""

RETURN = r"""
_raw:
  description: One dictionary.
  type: list
  elements: dict
  contains:
    path:
      description: The archive on the controller.
      type: str
    sha256:
      description: SHA-256 of the archive.
      type: str
    files:
      description: How many files it holds.
      type: int
    package:
      description: The name of the top directory inside the archive (C(sglang_prep)).
      type: str
    manifest:
      description:
        - The name of the manifest inside the package (C(MANIFEST.sha256)), in C(sha256sum) format, with the SHA-256
          of every file; M(sglang.prep.sglang_host_info) checks the deployed tree against it.
      type: str
    manifest_sha256:
      description: SHA-256 of the manifest.
      type: str
"""

import gzip
import hashlib
import io
import os
import tarfile
import tempfile

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible_collections.sglang.prep.plugins.module_utils import _runtime_manifest as runtime_manifest
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract

PACKAGE = contract.RUNTIME_PACKAGE
SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils", PACKAGE)


def runtime_files(source=SOURCE):
    """(relative path, absolute path) of every file of the package, sorted; bytecode left out."""
    return [(rel.replace("/", os.sep), path) for rel, path in runtime_manifest.package_files(source)]


def manifest_of(source=SOURCE):
    """The manifest's text and SHA-256 (what pack() writes as PACKAGE/MANIFEST.sha256) without packing, and how many
    files the archive holds (the package's and the manifest)."""
    digests = dict((rel.replace(os.sep, "/"), runtime_manifest.digest_file(path)) for rel, path in runtime_files(source))
    listed = runtime_manifest.text(digests).encode("utf-8")
    return listed, hashlib.sha256(listed).hexdigest(), len(digests) + 1 if digests else 0


def pack(source=SOURCE, manifest=None):
    """The archive's bytes: the package under PACKAGE/, with its manifest (PACKAGE/MANIFEST.sha256: the SHA-256 of
    every file, which the host checks on every run), reproducible for the same content. ``manifest``, a dict, gets
    the manifest's text and its SHA-256."""
    listed, listed_sha256, _count = manifest_of(source)
    if manifest is not None:
        manifest.update(text=listed.decode("utf-8"), sha256=listed_sha256)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs_done = set()
        files = runtime_files(source) + [(runtime_manifest.NAME, None)]
        for rel, path in sorted(files):
            parts = rel.split(os.sep)[:-1]
            for depth in range(len(parts) + 1):
                name = "/".join([PACKAGE] + parts[:depth])
                if name not in dirs_done:
                    dirs_done.add(name)
                    info = tarfile.TarInfo(name)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            if path is None:
                data = listed
            else:
                with open(path, "rb") as handle:
                    data = handle.read()
            info = tarfile.TarInfo("/".join([PACKAGE] + rel.split(os.sep)))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue(), len(files)


def _sha256_of(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _packed_before(cache_dir, manifest_sha256):
    """The archive already packed for this manifest (the archive is reproducible: the same manifest, names and
    digests of every file, always packs to the same bytes), as (path, sha256), when it is still there and intact;
    else None. Packing and compressing again costs a no-op re-prime about 40 ms; hashing the archive about 1 ms."""
    index = os.path.join(cache_dir, "%s-manifest-%s" % (PACKAGE, manifest_sha256))
    try:
        with open(index) as handle:
            digest = handle.read().strip()
        path = os.path.join(cache_dir, "%s-%s.tar.gz" % (PACKAGE, digest[:16]))
        return (path, digest) if _sha256_of(path) == digest else None
    except (OSError, ValueError):
        return None


def _write_atomic(cache_dir, path, data):
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".runtime-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def archive(cache_dir):
    """The archive of the runtime in ``cache_dir`` (packed only when this runtime's is not there yet): the lookup's
    answer."""
    try:
        _listed, manifest_sha256, count = manifest_of()
    except OSError as exc:
        raise AnsibleError("cannot read the sglang_prep runtime at %s as this user (uid %d): %s"
                           % (SOURCE, os.getuid(), exc))
    if count == 0:
        raise AnsibleError("the sglang_prep runtime at %s is empty or unreadable: reinstall the collection" % SOURCE)
    found = _packed_before(cache_dir, manifest_sha256)
    if found:
        path, digest = found
    else:
        manifest = {}
        try:
            data, count = pack(manifest=manifest)
        except OSError as exc:
            raise AnsibleError("cannot read the sglang_prep runtime at %s as this user (uid %d): %s"
                               % (SOURCE, os.getuid(), exc))
        digest = hashlib.sha256(data).hexdigest()
        path = os.path.join(cache_dir, "%s-%s.tar.gz" % (PACKAGE, digest[:16]))
        try:
            os.makedirs(cache_dir, mode=0o700, exist_ok=True)
            if not os.path.exists(path) or _sha256_of(path) != digest:
                _write_atomic(cache_dir, path, data)
            _write_atomic(cache_dir, os.path.join(cache_dir, "%s-manifest-%s" % (PACKAGE, manifest["sha256"])),
                          digest.encode("ascii"))
        except OSError as exc:
            raise AnsibleError("cannot write the runtime archive under %s: %s (set the lookup's cache_dir)" % (cache_dir, exc))
        manifest_sha256 = manifest["sha256"]
    return [{"path": path, "sha256": digest, "files": count, "package": PACKAGE,
             "manifest": runtime_manifest.NAME, "manifest_sha256": manifest_sha256}]


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        return archive(self.get_option("cache_dir") or os.path.join(tempfile.gettempdir(), "sglang-prep-%d" % os.getuid()))

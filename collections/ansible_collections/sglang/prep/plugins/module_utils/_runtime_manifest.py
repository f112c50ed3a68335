# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""The manifest of the deployed runtime: the SHA-256 of every file of the package, in ``sha256sum`` format.

The lookup sglang.prep.runtime_archive writes it into the archive as ``<package>/MANIFEST.sha256``; the module
sglang.prep.sglang_host_info checks the unpacked tree against it on every run (so an edited, removed or added
file is found, not only a different archive). An operator can check it by hand:
``cd <host root>/runtime/sglang_prep && sha256sum -c MANIFEST.sha256``.
"""

from __future__ import annotations

import hashlib
import os

NAME = "MANIFEST.sha256"
SKIPPED_DIRS = ("__pycache__",)
SKIPPED_SUFFIXES = (".pyc", ".pyo")


def package_files(top):
    """(relative path with '/', absolute path) of every file under ``top``, sorted; bytecode and the manifest left out."""
    found = []
    for here, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in files:
            path = os.path.join(here, name)
            rel = os.path.relpath(path, top).replace(os.sep, "/")
            if name.endswith(SKIPPED_SUFFIXES) or rel == NAME:
                continue
            found.append((rel, path))
    return sorted(found)


def digest_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def text(digests):
    """The manifest of {relative path: sha256}, one ``<sha256>  <path>`` line each, sorted."""
    return "".join("%s  %s\n" % (digests[rel], rel) for rel in sorted(digests))


def parse(data):
    """{relative path: sha256} of a manifest's text; ValueError for a line that is not ``<sha256>  <path>``."""
    out = {}
    for line in data.splitlines():
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or not rel:
            raise ValueError("not a '<sha256>  <path>' line: %r" % line[:120])
        out[rel] = digest
    return out


def verify(top):
    """The package under ``top`` against its manifest: what is present, the manifest's own SHA-256, and the files
    modified, missing and added since it was unpacked (paths relative to ``top``)."""
    out = {"path": top, "present": os.path.isdir(top), "manifest_sha256": None, "modified": [], "missing": [],
           "added": [], "problem": None}
    if not out["present"]:
        return out
    try:
        with open(os.path.join(top, NAME), "rb") as handle:
            raw = handle.read()
        out["manifest_sha256"] = hashlib.sha256(raw).hexdigest()
        expected = parse(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        out["problem"] = "%s: %s" % (os.path.join(top, NAME), getattr(exc, "strerror", None) or exc)
        return out
    seen = set()
    for rel, path in package_files(top):
        seen.add(rel)
        if rel not in expected:
            out["added"].append(rel)
            continue
        try:
            if digest_file(path) != expected[rel]:
                out["modified"].append(rel)
        except OSError:
            out["modified"].append(rel)
    out["missing"] = sorted(set(expected) - seen)
    return out

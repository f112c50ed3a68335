#!/usr/bin/env python3
"""The Debian mirror and suite this machine's apt uses, for debootstrap (scripts/build-images.sh).

    scripts/apt_mirror.py [--apt-dir DIR]      prints "<mirror> <suite>", e.g.
                                               "http://mirror.example.internal/debian bookworm"

Reads, in apt's order, DIR/sources.list, then DIR/sources.list.d/*.list (one-line format) and
DIR/sources.list.d/*.sources (deb822), DIR defaulting to /etc/apt; other file names (*.save,
*.disabled-by-farm, ...) are ignored, as apt ignores them. An entry qualifies when it is a "deb"
entry (not deb-src, not commented out, not in an "Enabled: no" stanza) with component "main", a
plain release suite (not */updates, *-security, *-updates, *-backports, ...) and a URI debootstrap
can fetch from (http, https, ftp, file; not mirror+file:, cdrom:, tor+http:, ...).

Non-Debian repositories are left out: an entry counts as Debian when its suite is a Debian release
(bookworm, trixie, stable, ...), when it is signed by the Debian archive keyring or when "debian"
is in its URI path; the entry with the most of these signs wins (network URIs before file: ones),
the first in apt's order among equals.

SGLANG_PREP_DEBIAN_MIRROR and SGLANG_PREP_DEBIAN_SUITE override what the sources say (with only
the suite given, an entry of that suite is preferred). Exits 1 with a message naming the files it
read when nothing qualifies. stdlib only, for the system python3 (3.7 and later).
"""

import argparse
import os
import re
import sys
from urllib.parse import urlsplit

MIRROR_ENV = "SGLANG_PREP_DEBIAN_MIRROR"
SUITE_ENV = "SGLANG_PREP_DEBIAN_SUITE"
DEFAULT_APT_DIR = "/etc/apt"

# Debian release codenames and the archive's aliases for them (unstable is sid).
DEBIAN_SUITES = frozenset("""
    squeeze wheezy jessie stretch buster bullseye bookworm trixie forky duke sid
    oldoldstable oldstable stable testing unstable
""".split())
# Suites that only add to a release (a base system cannot be bootstrapped from them alone).
NOT_A_RELEASE = ("-security", "-updates", "-backports", "-backports-sloppy", "-proposed", "-debug")
NOT_A_RELEASE_NAMES = frozenset(("experimental", "rc-buggy"))
FETCHABLE_SCHEMES = ("http", "https", "ftp", "file")
# apt reads only files in sources.list.d whose names are made of these characters.
PART_NAME = re.compile(r"^[A-Za-z0-9_.\-]+\.(list|sources)$")
DEB822_FALSE = frozenset(("no", "false", "without", "off", "disable"))


class NoMirror(Exception):
    """Nothing in the apt sources qualifies; the message says where it looked and what to set."""


class Entry:
    """One (URI, suite) of a "deb"/"deb-src" line or deb822 stanza, and where it was written."""

    def __init__(self, type_, uri, suite, components, options, origin, enabled=True):
        self.type = type_
        self.uri = uri
        self.suite = suite
        self.components = list(components)
        self.options = dict(options)  # lower-case keys
        self.origin = origin  # "file:line"
        self.enabled = enabled

    def __repr__(self):
        return "Entry(%r, %r, %r, %r, %s)" % (self.type, self.uri, self.suite, self.components, self.origin)

    @property
    def mirror(self):
        """The URI without trailing slashes (apt and debootstrap treat both alike)."""
        stripped = self.uri.rstrip("/")
        return stripped if stripped and not stripped.endswith(":") else self.uri

    def scheme(self):
        return self.uri.split(":", 1)[0].lower() if ":" in self.uri else ""

    def why_not(self):
        """None when debootstrap could start from this entry, else the reason it cannot."""
        if not self.enabled:
            return "disabled"
        if self.type != "deb":
            return "type %s" % self.type
        if "main" not in self.components:
            return "no component main"
        if (not self.suite or "/" in self.suite or self.suite in NOT_A_RELEASE_NAMES
                or self.suite.endswith(NOT_A_RELEASE)):
            return "suite %s is not a release" % (self.suite or "(none)")
        if self.scheme() not in FETCHABLE_SCHEMES:
            return "URI %s cannot be used by debootstrap" % self.uri
        return None

    def debian_signs(self):
        """How many signs say this is a Debian archive (0 to 3)."""
        signed_by = self.options.get("signed-by", "")
        path = urlsplit(self.uri).path if self.scheme() != "file" else self.uri[len("file:"):]
        return sum((self.suite in DEBIAN_SUITES,
                    "debian-archive-keyring" in signed_by,
                    "debian" in path.lower()))


# ------------------------------------------------------------------------------------------ parsing

def parse_one_line(text, name):
    """Entries of a sources.list-style file (one "deb [options] uri suite [component...]" per line)."""
    entries = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        type_, rest = (line.split(None, 1) + [""])[:2]
        if type_ not in ("deb", "deb-src"):
            continue
        options = {}
        if rest.startswith("["):
            body, sep, rest = rest[1:].partition("]")
            if not sep:
                continue  # apt rejects an unterminated options block
            for word in body.split():
                key, _, value = word.partition("=")
                options[key.rstrip("+-").lower()] = value
        words = rest.split()
        if len(words) < 2:
            continue
        entries.append(Entry(type_, words[0], words[1], words[2:], options, "%s:%d" % (name, lineno)))
    return entries


def deb822_stanzas(text):
    """(first line number, {lower-case field: value}) per stanza; continuation lines joined."""
    stanzas, fields, start, key = [], {}, None, None
    for lineno, raw in enumerate(text.splitlines() + [""], 1):
        line = raw.rstrip()
        if raw.startswith("#"):
            continue
        if not line.strip():
            if fields:
                stanzas.append((start, fields))
            fields, start, key = {}, None, None
            continue
        if raw[0] in " \t":
            if key is not None:
                fields[key] += "\n" + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        fields[key] = value.strip()
        if start is None:
            start = lineno
    return stanzas


def parse_deb822(text, name):
    """Entries of a .sources file: one per URI and suite of each stanza (URIs outer, as apt)."""
    entries = []
    for lineno, fields in deb822_stanzas(text):
        enabled = fields.get("enabled", "yes").strip().lower() not in DEB822_FALSE
        options = {k: v for k, v in fields.items() if k not in ("types", "uris", "suites", "components")}
        for type_ in fields.get("types", "").split():
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    entries.append(Entry(type_, uri, suite, fields.get("components", "").split(), options,
                                         "%s:%d" % (name, lineno), enabled))
    return entries


def source_files(apt_dir):
    """The files apt reads, in its order: sources.list, then sources.list.d/ sorted by name."""
    files = []
    main = os.path.join(apt_dir, "sources.list")
    if os.path.isfile(main):
        files.append(main)
    parts = os.path.join(apt_dir, "sources.list.d")
    if os.path.isdir(parts):
        files += [os.path.join(parts, n) for n in sorted(os.listdir(parts))
                  if PART_NAME.match(n) and os.path.isfile(os.path.join(parts, n))]
    return files


def read_sources(apt_dir=DEFAULT_APT_DIR):
    """Every entry of the apt sources under apt_dir, in apt's order (unreadable files are skipped)."""
    entries = []
    for path in source_files(apt_dir):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        entries += (parse_deb822 if path.endswith(".sources") else parse_one_line)(text, path)
    return entries


# ------------------------------------------------------------------------------------------ choosing

def where_looked(apt_dir):
    return ", ".join(os.path.join(apt_dir, p) for p in
                     ("sources.list", "sources.list.d/*.list", "sources.list.d/*.sources"))


def best_entry(entries, suite=None):
    """The entry to bootstrap from, or None: see the module docstring."""
    candidates = [e for e in entries if e.why_not() is None and (e.debian_signs() or e.suite == suite)]
    if not candidates:
        return None
    order = {id(e): i for i, e in enumerate(entries)}
    return min(candidates, key=lambda e: (e.suite != suite if suite else False, -e.debian_signs(),
                                          e.scheme() == "file", order[id(e)]))


def resolve(apt_dir=DEFAULT_APT_DIR, environ=None):
    """(mirror, suite): the environment's overrides, the rest from the apt sources under apt_dir."""
    environ = os.environ if environ is None else environ
    mirror, suite = environ.get(MIRROR_ENV) or None, environ.get(SUITE_ENV) or None
    if mirror and suite:
        return mirror, suite
    entries = read_sources(apt_dir)
    entry = best_entry(entries, suite)
    if entry is None:
        raise NoMirror(no_mirror_message(apt_dir, entries, need_suite_only=bool(mirror)))
    return mirror or entry.mirror, suite or entry.suite


def no_mirror_message(apt_dir, entries, need_suite_only=False):
    lines = ["error: no Debian mirror found in the apt sources (looked in %s)." % where_looked(apt_dir),
             "  debootstrap needs a \"deb\" entry with component main for a Debian release suite (e.g. bookworm;",
             "  not -security/-updates/-backports) and an http, https, ftp or file URI."]
    seen = [e for e in entries if e.type == "deb"]
    for e in seen[:10]:
        lines.append("  skipped %s: %s %s (%s)" % (e.origin, e.uri, e.suite,
                                                   e.why_not() or "not a Debian archive"))
    if len(seen) > 10:
        lines.append("  ... and %d more" % (len(seen) - 10))
    if need_suite_only:
        lines.append("Set %s (e.g. bookworm) as well as %s." % (SUITE_ENV, MIRROR_ENV))
    else:
        lines.append("Set %s to a Debian mirror or local repository (e.g. http://local-repo/debian)"
                     " and %s to its suite (e.g. bookworm)." % (MIRROR_ENV, SUITE_ENV))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--apt-dir", default=DEFAULT_APT_DIR,
                        help="the apt configuration directory to read (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        mirror, suite = resolve(args.apt_dir)
    except NoMirror as exc:
        print(exc, file=sys.stderr)
        return 1
    print(mirror, suite)
    return 0


if __name__ == "__main__":
    sys.exit(main())

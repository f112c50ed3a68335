# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""A registry's CA, trusted by the host's Docker engine for that registry only (prime_bundle_registry_ca).

The engine reads ``/etc/docker/certs.d/<host[:port]>/*.crt`` as the extra roots of the registry ``host[:port]`` on every
connection, so installing the file needs no restart and trusts the CA for that one registry: nothing else the engine
talks to, and TLS stays verified (no ``insecure-registries``). Only certificates are written, normalised (each PEM
block re-encoded from its decoded bytes), so the same CA given twice writes the same bytes and a re-run changes nothing.
A private key in the text is refused; the text itself never appears in a message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import tempfile

from ansible_collections.sglang.prep.plugins.module_utils import _oci_bundle as ob

CERTS_DIR = "/etc/docker/certs.d"
FILE_NAME = "ca.crt"
BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


def registry_host(registry):
    """``host[:port]`` of a repository ``host[:port]/path`` or of a bare ``host[:port]``; OciError(bad_input) otherwise."""
    value = registry or ""
    if "/" not in value:
        value += "/x"
    host, _path = ob.check_repository(value)
    return host


def normalise(text, what="prime_bundle_registry_ca"):
    """The certificates of the PEM ``text`` re-encoded (64-column base64, one trailing newline each) and their count;
    OciError(bad_input) for text with no certificate, a block that does not decode, or a private key."""
    if not (text or "").strip():
        raise ob.OciError("bad_input", "%s is empty or could not be read: give the registry's CA bundle as PEM text, or the "
                          "path of a readable PEM file on the controller (nothing was written)" % what)
    blocks = BLOCK.findall(text)
    if any("PRIVATE KEY" in kind for kind, _body in blocks):
        raise ob.OciError("bad_input", "%s holds a private key: give only the CA certificate(s) the registry's certificate "
                          "chains to (nothing was written)" % what)
    certs = []
    for kind, body in blocks:
        if kind != "CERTIFICATE":
            continue
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            der = b""
        if not der or der[:1] != b"\x30":  # a DER certificate is a SEQUENCE
            raise ob.OciError("bad_input", "%s has a CERTIFICATE block that is not a base64 DER certificate "
                              "(nothing was written)" % what)
        b64 = base64.b64encode(der).decode("ascii")
        certs.append("-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n"
                     % "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)))
    if not certs:
        raise ob.OciError("bad_input", "%s holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the registry's CA "
                          "bundle as PEM text, or the path of a PEM file on the controller (nothing was written)" % what)
    return "".join(certs), len(certs)


def _sha256(data):
    return hashlib.sha256(data.encode("ascii") if isinstance(data, str) else data).hexdigest()


def plan(registry, text, certs_dir=CERTS_DIR, what="prime_bundle_registry_ca"):
    """What trusting the CA means here: {host, path, pem, certificates, sha256, before_sha256, changed}."""
    host = registry_host(registry)
    pem, count = normalise(text, what)
    path = os.path.join(certs_dir, host, FILE_NAME)
    try:
        with open(path, "rb") as handle:
            before = _sha256(handle.read())
    except FileNotFoundError:
        before = None
    except OSError as exc:
        raise ob.OciError("permissions_unexpected", "cannot read %s (%s): installing a registry CA for the Docker engine "
                          "needs root on the host" % (path, exc.strerror))
    return {"host": host, "path": path, "pem": pem, "certificates": count, "sha256": _sha256(pem),
            "before_sha256": before, "changed": before != _sha256(pem)}


def install(found):
    """Write ``found['pem']`` (plan's answer) to ``found['path']`` atomically, mode 0644, its directory 0755."""
    path = found["path"]
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, 0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ca.crt.", dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(found["pem"])
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise ob.OciError("permissions_unexpected", "cannot write %s (%s): the Docker engine reads a registry's CA from "
                          "there, which needs root on the host (the prime role becomes root for this one task: let the "
                          "connecting user use sudo, or connect as root with prime_host_user)" % (path, exc.strerror))
    return path

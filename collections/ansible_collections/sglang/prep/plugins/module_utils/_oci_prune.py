# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""Retention of bundle artifacts in a registry (playbook sglang.prep.bundle_prune), with skopeo on the controller.

The Docker CLI can neither list a repository's tags nor delete a manifest, so retention uses skopeo (a maintained
registry client, a Debian package), on the controller only: ``skopeo list-tags``, ``skopeo inspect`` (digest and
labels without pulling) and ``skopeo delete``. Credentials go through an auth file (``--authfile``, a private
temporary file written here, or the given Docker config directory's ``config.json``), never a command line; TLS is
verified, with the system's and ``/etc/docker/certs.d`` trust, or a CA file (``--cert-dir`` of a private copy).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile

from ansible_collections.sglang.prep.plugins.module_utils import _oci_bundle as ob
from ansible_collections.sglang.prep.plugins.module_utils import _oci_trust as ot


def plan(artifacts, keep, in_use):
    """Which artifacts to delete: [{tag, digest, model, group_key, created, reason}], newest first per model.

    ``artifacts``: the bundle artifacts ({tag, digest, model, group_key, created}); ``keep``: how many to keep per
    model; ``in_use``: the group keys some inventory host has (None: that rule is off). An artifact of a group no host
    has goes; of the rest, each model keeps its ``keep`` newest.
    """
    delete = []
    kept = {}
    for item in sorted(artifacts, key=lambda a: (a.get("model") or "", a.get("created") or ""), reverse=True):
        if in_use is not None and item.get("group_key") not in in_use:
            delete.append(dict(item, reason="no host in the inventory has signature group %s" % item.get("group_key")))
            continue
        model = item.get("model") or "?"
        kept[model] = kept.get(model, 0) + 1
        if kept[model] > keep:
            delete.append(dict(item, reason="older than the newest %d of %s" % (keep, model)))
    return delete


class Skopeo(object):
    def __init__(self, skopeo, repository, username=None, password=None, auth_dir=None, ca_file=None, timeout=300,
                 ca_text=None):
        self.skopeo = skopeo
        # PEM text (prime_bundle_registry_ca), checked here and written into the private --cert-dir
        self.ca_pem = ot.normalise(ca_text)[0] if ca_text is not None else None
        self.repository = repository
        self.host, _path = ob.check_repository(repository)
        self.username, self.password, self.auth_dir, self.ca_file, self.timeout = username, password, auth_dir, ca_file, timeout
        self.tmp = None
        self.options = []

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="sglang-prep-prune-")
        os.chmod(self.tmp, 0o700)
        if self.username:
            authfile = os.path.join(self.tmp, "auth.json")
            token = base64.b64encode(("%s:%s" % (self.username, self.password or "")).encode()).decode()
            fd = os.open(authfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({"auths": {self.host: {"auth": token}}}, handle)
            self.options += ["--authfile", authfile]
        elif self.auth_dir:
            self.options += ["--authfile", os.path.join(self.auth_dir, "config.json")]
        if self.ca_file or self.ca_pem:
            certs = os.path.join(self.tmp, "certs")
            os.makedirs(certs)
            if self.ca_file:
                shutil.copyfile(self.ca_file, os.path.join(certs, "ca.crt"))
            else:
                with open(os.path.join(certs, "ca.crt"), "w") as handle:
                    handle.write(self.ca_pem)
            self.options += ["--cert-dir", certs]
        return self

    def __exit__(self, *exc):
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def run(self, *args):
        argv = [self.skopeo, args[0]] + self.options + list(args[1:])
        try:
            proc = subprocess.run(  # pylint: disable=ansible-bad-function
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise ob.OciError("registry_unavailable", "skopeo %s did not answer within %ds" % (args[0], self.timeout))
        except OSError as exc:
            raise ob.OciError("bad_input", "cannot run %s: %s (install skopeo on the controller)" % (self.skopeo, exc))
        if proc.returncode != 0:
            text = ob.scrub(proc.stderr or proc.stdout, [self.password])
            error_type = ob.classify(text)
            raise ob.OciError("registry_error" if error_type == "absent" else error_type,
                              "skopeo %s %s: %s" % (args[0], args[-1], text.strip()[-600:]))
        return proc.stdout

    def tags(self):
        try:
            return json.loads(self.run("list-tags", "docker://" + self.repository)).get("Tags") or []
        except ob.OciError as exc:
            if "repository name not known" in exc.message.lower() or "name unknown" in exc.message.lower():
                return []
            raise

    def inspect(self, tag):
        found = json.loads(self.run("inspect", "docker://%s:%s" % (self.repository, tag)))
        return found.get("Digest"), found.get("Labels") or {}

    def delete(self, digest):
        self.run("delete", "docker://%s@%s" % (self.repository, digest))


def artifacts(client):
    """The repository's bundle artifacts ({tag, digest, model, group_key, created, signature}); other tags are left alone."""
    tags = client.tags()
    signatures = set(t for t in tags if t.startswith("sha256-") and t.endswith(".sig"))
    out = []
    for tag in sorted(set(tags) - signatures):
        digest, found = client.inspect(tag)
        facts = ob.read_labels(found)
        if not facts["group_key"]:
            continue  # not a bundle of this collection
        sig = ob.signature_tag(digest) if digest else None
        out.append({"tag": tag, "digest": digest, "model": facts["model"], "group_key": facts["group_key"],
                    "created": facts["created"], "signature": sig if sig in signatures else None})
    return out


def prune(client, keep, in_use, check_mode):
    """Delete what plan() says (and each one's signature); returns {deleted or would_delete, kept}."""
    found = artifacts(client)
    doomed = plan(found, keep, in_use)
    if not check_mode:
        for item in doomed:
            if item["signature"]:
                sig_digest, _labels = client.inspect(item["signature"])
                client.delete(sig_digest)
            client.delete(item["digest"])
    gone = set(d["tag"] for d in doomed)
    return {"would_delete" if check_mode else "deleted": doomed, "kept": [a for a in found if a["tag"] not in gone]}

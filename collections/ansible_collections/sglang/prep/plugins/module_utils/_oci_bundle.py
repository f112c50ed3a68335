# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""Cache bundles as OCI artifacts in a registry, moved by the host's own Docker engine, signed with SSH keys.

A bundle travels as an image with no base (what ``FROM scratch`` makes), built by ``docker import`` from a
tar stream that holds two files: the bundle (``sglang-cache-bundle.tar.gz``) and its manifest
(``sglang-cache-bundle.json``). The image config's labels (Docker's form of OCI annotations) carry the model,
the group key, each stage's signature digest, the collection version, the source host, the creation time, the
bundle's sha256 and the seconds the builder spent priming. ``docker push`` and ``docker pull`` move it, so the
host's own registry login, mirrors and TLS trust (``/etc/docker/certs.d``) apply, and nothing is installed on a
GPU host for it.

The tag is derived from the bundle format and the signature group: ``<model slug>-b<format>-g<group key>``, so a
receiver only ever finds bundles of the format it reads (a host that runs an older collection looks up its own
format's tag, finds none and primes itself; this collection never sees an older one's bundles). A receiver resolves the tag once,
then works only with the digest it got (``<repository>@sha256:...``): the signature it checks, the labels it
reads and the bundle it unpacks all belong to that one manifest.

Signing: the publisher signs the manifest digest (the text ``sha256:<hex>``) with ``ssh-keygen -Y sign`` in the
namespace ``sglang-prep-bundle`` and pushes the signature as a second artifact, tagged ``sha256-<hex>.sig`` (the
tag layout cosign uses). A receiver with an allowed-signers file verifies it before anything is unpacked
(``bundle_untrusted`` otherwise). The manifest digest covers the config (the labels) and the layer (the
bundle's bytes), so the signature covers both.

The docker CLI and ssh-keygen run through subprocess, not AnsibleModule.run_command: a bundle of gigabytes is streamed
through a pipe (run_command buffers whole outputs), and the same code serves the bench outside Ansible.

Credentials never reach a command line: a user name and password log in through ``docker login
--password-stdin`` into a private, temporary Docker config directory that is removed afterwards; or a Docker
config directory (an auth file) is named. Every message is scrubbed of the password.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time

NAMESPACE = "sglang-prep-bundle"
LABEL = "org.sglang-prep.bundle."
BUNDLE_MEMBER = "sglang-cache-bundle.tar.gz"
MANIFEST_MEMBER = "sglang-cache-bundle.json"
SIGNATURE_MEMBER = "sglang-cache-bundle.sig"
CHUNK = 1024 * 1024
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
# host[:port]/path, as Docker names a repository (lower case path components)
REPOSITORY = re.compile(r"^(?P<host>[A-Za-z0-9.-]+(?::[0-9]{1,5})?)/(?P<path>[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)$")
TAG_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
# The bundle format this collection packs and reads (container/bundle.py FORMAT_VERSION, kept equal by a unit test;
# this module runs where the container runtime is not imported)
BUNDLE_FORMAT = "3"
# what a registry or the engine says, mapped to error types (first match wins)
CLASSES = (
    ("absent", ("manifest unknown", "not found", "does not exist", "no such manifest", "name unknown")),
    ("registry_auth", ("unauthorized", "authentication required", "no basic auth credentials", "denied",
                       "incorrect username or password", "401")),
    ("registry_tls", ("x509", "certificate", "tls:", "https server gave http response")),
    ("registry_unavailable", ("connection refused", "no such host", "i/o timeout", "timeout", "dial tcp",
                              "server misbehaving", "connection reset", "eof", "network is unreachable",
                              "no route to host", "503", "502")),
)


class OciError(Exception):
    """A classified failure: error_type, a message a person can act on, and details for the result."""

    def __init__(self, error_type, message, **details):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message
        self.details = details


def check_repository(value):
    """(host, path) of ``host[:port]/path``; OciError(bad_input) for anything else (a scheme, a tag, a digest)."""
    match = REPOSITORY.match(value or "")
    if not match:
        raise OciError("bad_input", "prime_bundle_registry %r is not a repository name host[:port]/path (for example "
                       "registry.example.org/sglang-prep-caches: no scheme, no tag, lower-case path)" % (value,))
    return match.group("host"), match.group("path")


def tag_for(model_slug, group_key):
    """The tag of a signature group's artifact: ``<model slug>-b<bundle format>-g<group key>`` (at most 128 characters)."""
    if not group_key or not re.match(r"^[0-9a-f]{1,64}$", group_key):
        raise OciError("bad_input", "group key %r is not hex digits" % (group_key,))
    slug = TAG_CHARS.sub("_", model_slug or "model").lstrip(".-") or "model"
    suffix = "-b%s-g%s" % (BUNDLE_FORMAT, group_key)
    return slug[:127 - len(suffix)] + suffix


def signature_tag(digest):
    """The tag of the signature of the manifest ``digest`` (``sha256-<hex>.sig``)."""
    return digest.replace(":", "-") + ".sig"


def labels(manifest, bundle_sha256):
    """The labels of a bundle's image, from the bundle's manifest (pack's answer)."""
    stages = manifest.get("stages") or {}
    compile_s = sum(float(s.get("duration_s") or 0) for s in stages.values())
    out = {
        LABEL + "format": "1",
        LABEL + "bundle_format": str(manifest.get("format") or ""),
        LABEL + "model": manifest["model"],
        LABEL + "model_slug": manifest["model_slug"],
        LABEL + "group_key": manifest["group_key"],
        LABEL + "sha256": bundle_sha256,
        LABEL + "collection_version": str(manifest.get("collection_version") or ""),
        LABEL + "source_host": str(manifest.get("source_host") or ""),
        LABEL + "created": str(manifest.get("created_at") or ""),
        LABEL + "compile_s": "%.3f" % compile_s,
        LABEL + "stages": ",".join(sorted(stages)),
        "org.opencontainers.image.created": str(manifest.get("created_at") or ""),
    }
    for stage, row in stages.items():
        out[LABEL + "signature." + stage] = str(row.get("signature_sha256") or "")
    return out


def read_labels(found):
    """The bundle facts of an image's labels ({} of the label dict): what the receiver and the report use."""
    found = found or {}

    def get(name):
        return found.get(LABEL + name)
    try:
        compile_s = float(get("compile_s") or 0)
    except ValueError:
        compile_s = None
    return {"model": get("model"), "model_slug": get("model_slug"), "group_key": get("group_key"), "sha256": get("sha256"),
            "collection_version": get("collection_version"), "source_host": get("source_host"), "created": get("created"),
            "compile_s": compile_s, "stages": [s for s in (get("stages") or "").split(",") if s],
            "signatures": dict((k[len(LABEL + "signature."):], v) for k, v in found.items() if k.startswith(LABEL + "signature."))}


def change_args(values):
    """``--change 'LABEL k="v"'`` arguments for docker import (values quoted as a Dockerfile reads them)."""
    out = []
    for key in sorted(values):
        value = values[key]
        if "\n" in value or "\r" in value:
            raise OciError("bad_input", "label %s has a line break" % key)
        out.extend(["--change", 'LABEL %s="%s"' % (key, value.replace("\\", "\\\\").replace('"', '\\"'))])
    return out


def classify(text):
    """The error type of what docker said: absent, registry_auth, registry_tls, registry_unavailable or registry_error."""
    low = (text or "").lower()
    for error_type, needles in CLASSES:
        if any(n in low for n in needles):
            return error_type
    return "registry_error"


def parse_push_digest(output):
    """The manifest digest ``docker push`` printed (``<tag>: digest: sha256:... size: N``), or None."""
    match = re.search(r"digest: (sha256:[0-9a-f]{64})", output or "")
    return match.group(1) if match else None


def scrub(text, secrets):
    for secret in secrets:
        if secret:
            text = (text or "").replace(secret, "********")
    return text


# ---------------------------------------------------------------- signing (ssh-keygen -Y)

def sign(digest, key_path, keygen="ssh-keygen"):
    """The armored SSH signature of the text ``digest`` in NAMESPACE, made with the private key ``key_path``."""
    if not DIGEST.match(digest or ""):
        raise OciError("bad_input", "cannot sign %r: not a sha256 manifest digest" % (digest,))
    if not os.path.isfile(key_path):
        raise OciError("bad_input", "signing key %s does not exist (prime_bundle_signing_key: an SSH private key on the "
                       "publishing host)" % key_path)
    with tempfile.TemporaryDirectory(prefix="sglang-prep-sign-") as tmp:
        data = os.path.join(tmp, "digest")
        with open(data, "w") as handle:
            handle.write(digest)
        proc = subprocess.run([keygen, "-Y", "sign", "-f", key_path, "-n", NAMESPACE, data], stdin=subprocess.DEVNULL,  # pylint: disable=ansible-bad-function
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
        if proc.returncode != 0:
            raise OciError("bundle_sign_failed", "ssh-keygen -Y sign with %s failed: %s (a key with a passphrase cannot "
                           "sign unattended; use an agent-less key kept for signing)" % (key_path, proc.stderr.strip()))
        with open(data + ".sig") as handle:
            return handle.read()


def verify(digest, signature_text, allowed_signers, keygen="ssh-keygen"):
    """The principal whose key in ``allowed_signers`` signed ``digest`` in NAMESPACE; OciError(bundle_untrusted) otherwise."""
    if not os.path.isfile(allowed_signers):
        raise OciError("bad_input", "allowed signers file %s does not exist on this host (prime_bundle_allowed_signers)"
                       % allowed_signers)
    with tempfile.TemporaryDirectory(prefix="sglang-prep-verify-") as tmp:
        sig = os.path.join(tmp, "digest.sig")
        with open(sig, "w") as handle:
            handle.write(signature_text)
        found = subprocess.run(  # pylint: disable=ansible-bad-function
            [keygen, "-Y", "find-principals", "-s", sig, "-f", allowed_signers], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
        principals = [p.strip() for p in found.stdout.splitlines() if p.strip()]
        if found.returncode != 0 or not principals:
            raise OciError("bundle_untrusted", "the signature of %s was made by a key that %s does not list; nothing was "
                           "unpacked" % (digest, allowed_signers), digest=digest)
        for principal in principals:
            proc = subprocess.run(  # pylint: disable=ansible-bad-function
                [keygen, "-Y", "verify", "-f", allowed_signers, "-I", principal, "-n", NAMESPACE, "-s", sig],
                input=digest, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
            if proc.returncode == 0:
                return principal
        raise OciError("bundle_untrusted", "the signature does not verify for %s (signed by %s, but over other data or in "
                       "another namespace than %s); nothing was unpacked" % (digest, ", ".join(principals), NAMESPACE),
                       digest=digest)


# ---------------------------------------------------------------- the engine

class Engine(object):
    """The host's Docker CLI, with an optional private config directory (a login made with --password-stdin)."""

    def __init__(self, docker, repository, config_dir=None, username=None, password=None, timeout=600):
        self.docker = docker
        self.repository = repository
        self.host, _path = check_repository(repository)
        self.config_dir = config_dir
        self.username = username
        self.password = password
        self.timeout = timeout
        self.private = None
        self.cleanup = []

    def argv(self, *args):
        cfg = ["--config", self.private or self.config_dir] if (self.private or self.config_dir) else []
        return [self.docker] + cfg + list(args)

    def run(self, *args, **kwargs):
        data = kwargs.pop("data", None)
        try:
            proc = subprocess.run(  # pylint: disable=ansible-bad-function
                self.argv(*args), input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                check=False, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise OciError("registry_unavailable", "docker %s did not answer within %ds" % (args[0], self.timeout))
        except OSError as exc:
            raise OciError("engine_unreachable", "cannot run %s: %s" % (self.docker, exc))
        return proc.returncode, proc.stdout, scrub(proc.stderr, [self.password])

    def fail(self, what, text, **details):
        error_type = classify(text)
        hint = {
            "registry_auth": "check the registry credentials (prime_bundle_registry_username/password or "
                             "prime_bundle_registry_auth_dir, or the host's docker login)",
            "registry_tls": "this host's Docker engine does not trust the registry's certificate: set "
                            "prime_bundle_registry_ca to its CA bundle (PEM text or a PEM file on the controller), which "
                            "the prime role installs as /etc/docker/certs.d/%s/ca.crt for this registry only" % self.host,
            "registry_unavailable": "the registry %s does not answer from this host" % self.host,
        }.get(error_type, "")
        message = "%s: %s%s" % (what, scrub(text, [self.password]).strip()[-600:], ("; " + hint) if hint else "")
        return OciError(error_type if error_type != "absent" else "registry_error", message, **details)

    def __enter__(self):
        if self.username:
            self.private = tempfile.mkdtemp(prefix="sglang-prep-docker-")
            os.chmod(self.private, 0o700)
            rc, out, err = self.run("login", "--username", self.username, "--password-stdin", self.host,
                                    data=(self.password or "") + "\n")
            if rc != 0:
                self.__exit__()
                raise self.fail("docker login %s as %s" % (self.host, self.username), err or out)
        return self

    def __exit__(self, *exc):
        for argv in self.cleanup:
            self.run(*argv)
        self.cleanup = []
        if self.private:
            shutil.rmtree(self.private, ignore_errors=True)
            self.private = None

    # -------------------------------------------------------- helpers

    def import_files(self, ref, files, values):
        """``docker import`` of a tar stream holding ``files`` ({member: host path}) with the labels ``values``."""
        argv = self.argv("import", *(change_args(values) + ["-", ref]))
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # pylint: disable=ansible-bad-function
        try:
            with tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for member, path in sorted(files.items()):
                    info = tar.gettarinfo(path, arcname=member)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.mode = 0o644
                    with open(path, "rb") as handle:
                        tar.addfile(info, handle)
        except BrokenPipeError:
            pass
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            proc.stdin = None
        out, err = proc.communicate(timeout=self.timeout)
        if proc.returncode != 0:
            raise OciError("registry_error", "docker import %s failed: %s" % (ref, err.decode("utf-8", "replace").strip()[-600:]))
        self.cleanup.append(("image", "rm", "--force", ref))
        return out.decode().strip()

    def push(self, ref):
        rc, out, err = self.run("push", ref)
        digest = parse_push_digest(out)
        if rc != 0 or not digest:
            raise self.fail("docker push %s" % ref, err or out)
        return digest

    def pull(self, ref):
        """True when pulled; False when the registry has no such artifact; OciError otherwise."""
        rc, out, err = self.run("pull", "--quiet", ref)
        if rc == 0:
            self.cleanup.append(("image", "rm", "--force", ref))
            return True
        if classify(err or out) == "absent":
            return False
        raise self.fail("docker pull %s" % ref, err or out)

    def inspect(self, ref, template):
        rc, out, err = self.run("image", "inspect", "--format", template, ref)
        if rc != 0:
            raise OciError("registry_error", "docker image inspect %s: %s" % (ref, (err or out).strip()))
        return json.loads(out)

    def repo_digest(self, ref):
        for item in self.inspect(ref, "{{json .RepoDigests}}") or []:
            name, _sep, digest = item.partition("@")
            if name == self.repository and DIGEST.match(digest):
                return digest
        raise OciError("registry_error", "the engine knows no digest of %s in %s after pulling it" % (ref, self.repository))

    @contextlib.contextmanager
    def member_stream(self, ref, member):
        """A tar stream (docker cp ... -) of ``member`` of the image ``ref``, never started, removed afterwards."""
        rc, out, err = self.run("create", ref, "none")
        if rc != 0:
            raise OciError("registry_error", "docker create %s: %s" % (ref, (err or out).strip()))
        cid = out.strip()
        proc = None
        try:
            proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
                self.argv("cp", "%s:/%s" % (cid, member), "-"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            yield proc.stdout
            proc.stdout.close()
            _out, err = proc.communicate(timeout=self.timeout)
            if proc.returncode != 0:
                raise OciError("bundle_corrupt", "artifact %s has no %s (%s): it is not a bundle of this collection"
                               % (ref, member, err.decode("utf-8", "replace").strip()))
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            self.run("rm", "--force", cid)

    def read_member(self, ref, member, dest=None, limit=None):
        """The bytes of ``member`` of image ``ref`` (``dest`` None, at most ``limit`` bytes), or its sha256 once
        written to ``dest`` (streamed, memory flat)."""
        with self.member_stream(ref, member) as stream:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for info in tar:
                    if info.name.lstrip("./") != member or not info.isreg():
                        continue
                    source = tar.extractfile(info)
                    if dest is None:
                        if limit is not None and info.size > limit:
                            raise OciError("bundle_corrupt", "%s of %s has %d bytes (at most %d)" % (member, ref, info.size, limit))
                        return source.read()
                    digest = hashlib.sha256()
                    tmp = "%s.pull-%d.tmp" % (dest, os.getpid())
                    try:
                        with open(tmp, "wb") as handle:
                            for chunk in iter(lambda: source.read(CHUNK), b""):
                                digest.update(chunk)
                                handle.write(chunk)
                        os.replace(tmp, dest)
                    except BaseException:
                        if os.path.exists(tmp):
                            os.unlink(tmp)
                        raise
                    return digest.hexdigest()
        raise OciError("bundle_corrupt", "artifact %s has no regular file %s" % (ref, member))


# ---------------------------------------------------------------- the two verbs

GROUP_RECORD = "registry-group.%s.json"  # in the bundles directory: the group this host has for a model (bundle_prune)


def record_group(dest_dir, model_key, facts):
    """Write (atomically) which signature group this host has for the model ``model_key``: the registry's retention
    (playbook bundle_prune) keeps the artifacts of groups some host has."""
    os.makedirs(dest_dir, 0o755, exist_ok=True)
    path = os.path.join(dest_dir, GROUP_RECORD % model_key)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(facts, handle, sort_keys=True)
    os.replace(tmp, path)
    return path


def publish(engine, bundle_path, manifest, signing_key=None):
    """Push the bundle at ``bundle_path`` (pack's ``manifest``) as ``<repository>:<tag>`` and, with a signing key,
    its signature; returns {digest, ref, tag, signed, signature_tag, push_s}."""
    started = time.monotonic()
    sha = os.path.basename(bundle_path)[:-len(".tar.gz")]
    if not HEX64.match(sha):
        raise OciError("bad_input", "%s is not a bundle named by its sha256" % bundle_path)
    if str(manifest.get("format")) != BUNDLE_FORMAT:
        raise OciError("bad_input", "%s is a bundle of format %s; this collection publishes format %s, which its "
                       "receivers read: pack it again with sglang.prep.sglang_cache_bundle state=packed"
                       % (bundle_path, manifest.get("format"), BUNDLE_FORMAT))
    tag = tag_for(manifest["model_slug"], manifest["group_key"])
    ref = "%s:%s" % (engine.repository, tag)
    with tempfile.TemporaryDirectory(prefix="sglang-prep-publish-") as tmp:
        sidecar = os.path.join(tmp, MANIFEST_MEMBER)
        with open(sidecar, "w") as handle:
            json.dump(dict((k, v) for k, v in manifest.items() if k not in ("path", "host_path")), handle, sort_keys=True)
        engine.import_files(ref, {BUNDLE_MEMBER: bundle_path, MANIFEST_MEMBER: sidecar}, labels(manifest, sha))
        digest = engine.push(ref)
        out = {"digest": digest, "ref": "%s@%s" % (engine.repository, digest), "tag": tag, "signed": False,
               "signature_tag": None, "bundle_sha256": sha}
        if signing_key:
            text = sign(digest, signing_key)
            sig_file = os.path.join(tmp, SIGNATURE_MEMBER)
            with open(sig_file, "w") as handle:
                handle.write(text)
            sig_ref = "%s:%s" % (engine.repository, signature_tag(digest))
            engine.import_files(sig_ref, {SIGNATURE_MEMBER: sig_file}, {LABEL + "signs": digest})
            engine.push(sig_ref)
            out.update(signed=True, signature_tag=signature_tag(digest))
    out["push_s"] = round(time.monotonic() - started, 3)
    return out


def fetch(engine, model_slug, group_key, dest_dir, allowed_signers=None):
    """Look up the signature group's artifact and, when there is one, verify it and write its bundle to
    ``dest_dir/<sha256>.tar.gz``. Returns {status: absent} or {status: pulled, digest, ref, tag, path, sha256, ...}."""
    started = time.monotonic()
    tag = tag_for(model_slug, group_key)
    by_tag = "%s:%s" % (engine.repository, tag)
    if not engine.pull(by_tag):
        return {"status": "absent", "tag": tag, "ref": by_tag}
    digest = engine.repo_digest(by_tag)
    pinned = "%s@%s" % (engine.repository, digest)  # from here on, only the digest counts
    principal = None
    if allowed_signers:
        sig_ref = "%s:%s" % (engine.repository, signature_tag(digest))
        if not engine.pull(sig_ref):
            raise OciError("bundle_untrusted", "artifact %s is not signed (no %s in the registry) and "
                           "prime_bundle_allowed_signers is set; nothing was unpacked" % (pinned, signature_tag(digest)),
                           digest=digest)
        text = engine.read_member(sig_ref, SIGNATURE_MEMBER, limit=64 * 1024).decode("utf-8", "replace")
        principal = verify(digest, text, allowed_signers)
    if not engine.pull(pinned):
        raise OciError("registry_error", "%s vanished from the registry while it was being fetched" % pinned)
    facts = read_labels(engine.inspect(pinned, "{{json .Config.Labels}}"))
    if facts["group_key"] != group_key or not HEX64.match(facts["sha256"] or ""):
        raise OciError("bundle_corrupt", "artifact %s says group %s and bundle %s, not a bundle of group %s; nothing was "
                       "installed" % (pinned, facts["group_key"], facts["sha256"], group_key), digest=digest)
    os.makedirs(dest_dir, 0o755, exist_ok=True)
    path = os.path.join(dest_dir, facts["sha256"] + ".tar.gz")
    got = engine.read_member(pinned, BUNDLE_MEMBER, dest=path)
    if got != facts["sha256"]:
        os.unlink(path)
        raise OciError("bundle_corrupt", "the bundle in %s has sha256 %s, its label says %s; nothing was installed"
                       % (pinned, got, facts["sha256"]), digest=digest)
    return {"status": "pulled", "tag": tag, "digest": digest, "ref": pinned, "path": path, "sha256": got,
            "signer": principal, "signed": principal is not None, "source_host": facts["source_host"],
            "builder_compile_s": facts["compile_s"], "created": facts["created"],
            "collection_version": facts["collection_version"], "stages": facts["stages"],
            "archive_bytes": os.path.getsize(path), "pull_s": round(time.monotonic() - started, 3)}

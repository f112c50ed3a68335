"""_oci_bundle: bundles as OCI artifacts (tags, labels, error classes) and their SSH signatures.

Signing and verifying run the real ssh-keygen (-Y sign / find-principals / verify) with throw-away keys. publish and
fetch run against a fake engine (the docker CLI's answers), so the order of checks is tested without Docker: the
tiers with a real registry are tests/fleet/test_registry.py.
"""

import hashlib
import os
import subprocess

import pytest


from ansible_collections.sglang.prep.plugins.module_utils import _oci_bundle as ob

DIGEST = "sha256:" + "2d" * 32
MANIFEST = {"format": "3", "model": "/models/Qwen3-30B-A3B", "model_slug": "Qwen3-30B-A3B", "group_key": "4b1f0c2d3e4f5a6b",
            "stages": {"deep_gemm": {"signature_sha256": "a" * 64, "duration_s": 600.5},
                       "moe_tune": {"signature_sha256": "b" * 64, "duration_s": 3000}},
            "collection_version": "1.2.0", "source_host": "gpu-01", "created_at": "2026-12-07T00:00:00Z"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("builder", "stranger"):
        path = str(base / name)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path], check=True)
        kind, blob = open(path + ".pub").read().split()[:2]
        signers = str(base / (name + "_signers"))
        with open(signers, "w") as handle:
            handle.write('%s namespaces="%s" %s %s\n' % (name, ob.NAMESPACE, kind, blob))
        out[name] = (path, signers)
    return out


def test_tag_is_derived_from_the_group_and_valid_for_any_model_name():
    assert ob.tag_for("Qwen3-30B-A3B", "4b1f0c2d3e4f5a6b") == "Qwen3-30B-A3B-b3-g4b1f0c2d3e4f5a6b"
    tag = ob.tag_for(".odd name+x" * 20, "ab" * 8)
    assert len(tag) <= 128 and tag.endswith("-b3-g" + "ab" * 8) and not tag.startswith(".")
    assert all(c.isalnum() or c in "_.-" for c in tag)
    with pytest.raises(ob.OciError) as info:
        ob.tag_for("m", "not-hex")
    assert info.value.error_type == "bad_input"
    assert ob.signature_tag(DIGEST) == "sha256-" + "2d" * 32 + ".sig"


@pytest.mark.parametrize("value", ["https://registry.example.org/x", "registry.example.org/x:latest", "registry.example.org",
                                   "registry.example.org/X", "reg@sha256:ab/x", ""])
def test_a_repository_must_be_host_and_path(value):
    with pytest.raises(ob.OciError) as info:
        ob.check_repository(value)
    assert info.value.error_type == "bad_input"


def test_good_repository_names():
    assert ob.check_repository("registry.example.org/sglang-prep-caches") == ("registry.example.org", "sglang-prep-caches")
    assert ob.check_repository("172.17.0.1:47443/team/caches") == ("172.17.0.1:47443", "team/caches")


def test_labels_carry_what_the_receiver_and_the_report_need():
    found = ob.labels(MANIFEST, "c" * 64)
    facts = ob.read_labels(found)
    assert facts["group_key"] == MANIFEST["group_key"] and facts["sha256"] == "c" * 64
    assert facts["model"] == MANIFEST["model"] and facts["source_host"] == "gpu-01"
    assert facts["collection_version"] == "1.2.0" and facts["created"] == MANIFEST["created_at"]
    assert facts["compile_s"] == pytest.approx(3600.5)
    assert facts["signatures"] == {"deep_gemm": "a" * 64, "moe_tune": "b" * 64}
    assert facts["stages"] == ["deep_gemm", "moe_tune"]


def test_label_values_are_quoted_for_docker_import():
    args = ob.change_args({"k": 'a "quoted" \\ value with spaces'})
    assert args == ["--change", 'LABEL k="a \\"quoted\\" \\\\ value with spaces"']
    with pytest.raises(ob.OciError):
        ob.change_args({"k": "two\nlines"})


@pytest.mark.parametrize("text,expected", [
    ("Error response from daemon: manifest for r/x:t not found: manifest unknown: manifest unknown", "absent"),
    ("Error response from daemon: login attempt to https://r/v2/ failed with status: 401 Unauthorized", "registry_auth"),
    ("Error response from daemon: Head \"https://r/v2/x/manifests/t\": no basic auth credentials", "registry_auth"),
    ("Error response from daemon: Get \"https://r/v2/\": x509: certificate signed by unknown authority", "registry_tls"),
    ("Error response from daemon: Get \"https://r/v2/\": dial tcp 10.0.0.1:443: connect: connection refused",
     "registry_unavailable"),
    ("Error response from daemon: Get \"https://r/v2/\": dial tcp: lookup r: no such host", "registry_unavailable"),
    ("something else entirely", "registry_error"),
])
def test_what_docker_says_is_classified(text, expected):
    assert ob.classify(text) == expected


def test_push_digest_is_read_from_dockers_output():
    out = "The push refers to repository [r/x]\n5f70bf18a086: Pushed\nm-gab: digest: %s size: 528\n" % DIGEST
    assert ob.parse_push_digest(out) == DIGEST
    assert ob.parse_push_digest("nothing") is None


def test_scrub_hides_the_password():
    assert ob.scrub("login as u with s3cret failed", ["s3cret", None]) == "login as u with ******** failed"


def test_a_signature_verifies_for_its_key_only(keys):
    key, signers = keys["builder"]
    text = ob.sign(DIGEST, key)
    assert "BEGIN SSH SIGNATURE" in text
    assert ob.verify(DIGEST, text, signers) == "builder"
    with pytest.raises(ob.OciError) as info:  # a key the file does not list
        ob.verify(DIGEST, text, keys["stranger"][1])
    assert info.value.error_type == "bundle_untrusted"
    with pytest.raises(ob.OciError) as info:  # the signature of another digest
        ob.verify("sha256:" + "3e" * 32, text, signers)
    assert info.value.error_type == "bundle_untrusted"
    with pytest.raises(ob.OciError) as info:  # not a signature at all
        ob.verify(DIGEST, "garbage", signers)
    assert info.value.error_type == "bundle_untrusted"


def test_a_signature_in_another_namespace_is_refused(keys, tmp_path):
    key, signers = keys["builder"]
    data = tmp_path / "digest"
    data.write_text(DIGEST)
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", key, "-n", "file", str(data)], check=True, capture_output=True)
    with pytest.raises(ob.OciError) as info:
        ob.verify(DIGEST, (tmp_path / "digest.sig").read_text(), signers)
    assert info.value.error_type == "bundle_untrusted"


class FakeEngine:
    """The engine's answers as a registry holding ``images`` ({ref: {labels, members}}) gives them."""

    repository = "r.example/caches"

    def __init__(self, images=None, digests=None):
        self.images = images or {}
        self.digests = digests or {}
        self.calls = []
        self.imported = {}

    def pull(self, ref):
        self.calls.append(("pull", ref))
        return ref in self.images

    def repo_digest(self, ref):
        return self.digests[ref]

    def inspect(self, ref, template):
        return self.images[ref]["labels"]

    def read_member(self, ref, member, dest=None, limit=None):
        self.calls.append(("read", ref, member))
        data = self.images[ref]["members"][member]
        if dest is None:
            return data
        with open(dest, "wb") as handle:
            handle.write(data)
        return hashlib.sha256(data).hexdigest()

    def import_files(self, ref, files, values):
        self.imported[ref] = (dict((k, open(v, "rb").read()) for k, v in files.items()), values)

    def push(self, ref):
        self.calls.append(("push", ref))
        return DIGEST


def registry_with(bundle=b"bundle bytes", signed_by=None, labels=None):
    sha = hashlib.sha256(bundle).hexdigest()
    tag_ref = "%s:%s" % (FakeEngine.repository, ob.tag_for("Qwen3-30B-A3B", MANIFEST["group_key"]))
    pinned = "%s@%s" % (FakeEngine.repository, DIGEST)
    image = {"labels": labels or ob.labels(MANIFEST, sha), "members": {ob.BUNDLE_MEMBER: bundle}}
    images = {tag_ref: image, pinned: image}
    if signed_by:
        images["%s:%s" % (FakeEngine.repository, ob.signature_tag(DIGEST))] = {
            "labels": {}, "members": {ob.SIGNATURE_MEMBER: ob.sign(DIGEST, signed_by).encode()}}
    return FakeEngine(images, {tag_ref: DIGEST}), sha


def test_fetch_absent_changes_nothing(tmp_path):
    engine = FakeEngine()
    out = ob.fetch(engine, "Qwen3-30B-A3B", MANIFEST["group_key"], str(tmp_path / "b"))
    assert out["status"] == "absent" and not (tmp_path / "b").exists()


def test_fetch_pins_the_digest_and_verifies_before_unpacking(keys, tmp_path):
    engine, sha = registry_with(signed_by=keys["builder"][0])
    out = ob.fetch(engine, "Qwen3-30B-A3B", MANIFEST["group_key"], str(tmp_path), allowed_signers=keys["builder"][1])
    assert out["status"] == "pulled" and out["digest"] == DIGEST and out["ref"].endswith("@" + DIGEST)
    assert out["signer"] == "builder" and out["sha256"] == sha and out["builder_compile_s"] == pytest.approx(3600.5)
    assert open(out["path"], "rb").read() == b"bundle bytes"
    # the bundle is read from the pinned digest, never from the tag
    assert ("read", "r.example/caches@" + DIGEST, ob.BUNDLE_MEMBER) in engine.calls


@pytest.mark.parametrize("signer", [None, "stranger"])
def test_fetch_refuses_unsigned_or_wrongly_signed_and_writes_nothing(keys, tmp_path, signer):
    engine, _sha = registry_with(signed_by=keys[signer][0] if signer else None)
    with pytest.raises(ob.OciError) as info:
        ob.fetch(engine, "Qwen3-30B-A3B", MANIFEST["group_key"], str(tmp_path / "b"), allowed_signers=keys["builder"][1])
    assert info.value.error_type == "bundle_untrusted"
    assert not (tmp_path / "b").exists()
    assert not any(call[0] == "read" and call[2] == ob.BUNDLE_MEMBER for call in engine.calls)


def test_fetch_refuses_a_bundle_whose_bytes_differ_from_its_label(tmp_path):
    labels = ob.labels(MANIFEST, "f" * 64)
    engine, _sha = registry_with(labels=labels)
    with pytest.raises(ob.OciError) as info:
        ob.fetch(engine, "Qwen3-30B-A3B", MANIFEST["group_key"], str(tmp_path))
    assert info.value.error_type == "bundle_corrupt"
    assert os.listdir(str(tmp_path)) == []


def test_fetch_refuses_an_artifact_of_another_group(tmp_path):
    engine, _sha = registry_with(labels=ob.labels(dict(MANIFEST, group_key="0" * 16), "f" * 64))
    with pytest.raises(ob.OciError) as info:
        ob.fetch(engine, "Qwen3-30B-A3B", MANIFEST["group_key"], str(tmp_path))
    assert info.value.error_type == "bundle_corrupt"


def test_publish_pushes_the_bundle_and_signs_the_pushed_digest(keys, tmp_path):
    data = b"bundle bytes"
    path = tmp_path / (hashlib.sha256(data).hexdigest() + ".tar.gz")
    path.write_bytes(data)
    engine = FakeEngine()
    out = ob.publish(engine, str(path), MANIFEST, signing_key=keys["builder"][0])
    assert out["digest"] == DIGEST and out["signed"] and out["tag"] == "Qwen3-30B-A3B-b3-g4b1f0c2d3e4f5a6b"
    members, values = engine.imported["r.example/caches:" + out["tag"]]
    assert members[ob.BUNDLE_MEMBER] == data and values[ob.LABEL + "sha256"] == hashlib.sha256(data).hexdigest()
    sig_members, _values = engine.imported["r.example/caches:" + ob.signature_tag(DIGEST)]
    assert ob.verify(DIGEST, sig_members[ob.SIGNATURE_MEMBER].decode(), keys["builder"][1]) == "builder"


@pytest.mark.parametrize("old", ["2", None])
def test_publish_refuses_a_bundle_of_another_format_before_pushing(tmp_path, old):
    """A bundle packed by an older collection (format 2) would reach receivers that cannot read it: refused, nothing pushed."""
    data = b"old bundle bytes"
    path = tmp_path / (hashlib.sha256(data).hexdigest() + ".tar.gz")
    path.write_bytes(data)
    engine = FakeEngine()
    with pytest.raises(ob.OciError) as info:
        ob.publish(engine, str(path), dict(MANIFEST, format=old))
    assert info.value.error_type == "bad_input" and "pack it again" in info.value.message
    assert engine.imported == {}


def test_the_tag_names_the_bundle_format_the_runtime_packs_and_reads():
    """A receiver of one format never finds a bundle of another: the format is part of the tag, and it is the runtime's."""
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import bundle
    assert ob.BUNDLE_FORMAT == bundle.FORMAT_VERSION
    assert "-b%s-" % bundle.FORMAT_VERSION in ob.tag_for("m", "ab")
    assert ob.labels(MANIFEST, "f" * 64)[ob.LABEL + "bundle_format"] == bundle.FORMAT_VERSION


def test_every_error_type_of_the_registry_code_has_its_home_in_errors():
    """The host-side registry code classifies with the collection's error types (errors.ERROR_TYPES), none of its own."""
    import inspect
    import re
    from ansible_collections.sglang.prep.plugins.module_utils import _oci_bundle, _oci_prune, _oci_trust
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import ERROR_TYPES
    used = set(name for name, _needles in _oci_bundle.CLASSES if name != "absent") | {_oci_bundle.classify("")}
    for module in (_oci_bundle, _oci_prune, _oci_trust):
        used |= set(re.findall(r'OciError\(\s*"([a-z_]+)"', inspect.getsource(module)))
    assert {"registry_auth", "registry_tls", "bundle_untrusted"} <= used
    assert used - set(ERROR_TYPES) == set()

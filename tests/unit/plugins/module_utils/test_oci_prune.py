"""_oci_prune: which bundle artifacts bundle_prune deletes (and that it deletes nothing in check mode)."""

from ansible_collections.sglang.prep.plugins.module_utils import _oci_bundle as ob
from ansible_collections.sglang.prep.plugins.module_utils import _oci_prune as op


def art(tag, model, group, day):
    return {"tag": tag, "digest": "sha256:" + tag[-1] * 64, "model": model, "group_key": group,
            "created": "2026-12-%02dT00:00:00Z" % day, "signature": None}


ARTS = [art("a-g1", "/models/a", "1", 1), art("a-g2", "/models/a", "2", 2), art("a-g3", "/models/a", "3", 3),
        art("b-g4", "/models/b", "4", 1)]


def test_keeps_the_newest_n_per_model():
    gone = op.plan(ARTS, 2, None)
    assert [d["tag"] for d in gone] == ["a-g1"] and "newest 2" in gone[0]["reason"]


def test_removes_groups_no_host_has():
    gone = op.plan(ARTS, 5, ["2", "4"])
    assert sorted(d["tag"] for d in gone) == ["a-g1", "a-g3"]
    assert all("no host" in d["reason"] for d in gone)


def test_unused_groups_do_not_count_against_keep():
    gone = op.plan(ARTS, 1, ["1", "2", "4"])
    assert sorted(d["tag"] for d in gone) == ["a-g1", "a-g3"]  # g3 unused; of g2 and g1, g2 is the newest


class FakeSkopeo:
    def __init__(self):
        self.deleted = []
        self.labels = dict((a["tag"], ob.labels({"model": a["model"], "model_slug": "x", "group_key": a["group_key"],
                                                 "created_at": a["created"], "stages": {}}, "f" * 64)) for a in ARTS)

    def tags(self):
        return sorted(self.labels) + ["sha256-" + "1" * 64 + ".sig", "unrelated"]

    def inspect(self, tag):
        if tag == "unrelated":
            return "sha256:" + "9" * 64, {"some": "label"}
        if tag.endswith(".sig"):
            return "sha256:" + "8" * 64, {}
        return "sha256:" + tag[-1] * 64, self.labels[tag]

    def delete(self, digest):
        self.deleted.append(digest)


def test_check_mode_deletes_nothing_and_a_delete_takes_the_signature_along():
    client = FakeSkopeo()
    out = op.prune(client, 2, None, check_mode=True)
    assert [d["tag"] for d in out["would_delete"]] == ["a-g1"] and client.deleted == []
    assert "unrelated" not in [k["tag"] for k in out["kept"]]  # not a bundle: never touched
    out = op.prune(client, 2, None, check_mode=False)
    assert client.deleted == ["sha256:" + "8" * 64, "sha256:" + "1" * 64]


def test_a_ca_given_as_text_goes_to_skopeo_through_a_private_cert_dir(tmp_path):
    """bundle_prune with the hosts' prime_bundle_registry_ca: skopeo gets --cert-dir of a private copy, removed after."""
    import os
    import subprocess
    import pytest
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=prune test",
                    "-keyout", str(tmp_path / "ca.key"), "-out", str(tmp_path / "ca.crt")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pem = (tmp_path / "ca.crt").read_text()
    with op.Skopeo("skopeo", "r.example:5000/caches", ca_text=pem.replace("\n", "\r\n")) as client:
        certs = client.options[client.options.index("--cert-dir") + 1]
        assert open(os.path.join(certs, "ca.crt")).read() == pem
    assert not os.path.exists(certs)
    for bad in ("", (tmp_path / "ca.key").read_text()):
        with pytest.raises(ob.OciError) as info:
            op.Skopeo("skopeo", "r.example:5000/caches", ca_text=bad)
        assert info.value.error_type == "bad_input" and "prime_bundle_registry_ca" in info.value.message

"""Cache bundles (container/bundle.py): one host's primed caches, installed on an identical host.

What a user relies on: a bundle installed on a host with the same signatures makes its stages primed
there (signature recorded as this host's own, no in-progress marker: the next ensure is a noop); a host
whose signature differs refuses it and says which field; a bundle that would write outside the caches,
or that is corrupted or truncated, is refused before any live cache is touched; an install that is
interrupted leaves the old caches in place and never a partial one.
"""

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import bundle, locks, signature
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.layout import Layout
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError

MODEL = "/models/tiny-moe"
STAGES = ("deep_gemm", "moe_tune", "inductor")


def fields(stage, driver="570.148.08"):
    return {"device_name": "NVIDIA H200", "compute_capability": "9.0", "driver_version": driver, "cuda": "12.8",
            "torch_version": "2.11.0", "triton_version": "3.6.0", "tp": 1, "model_slug": "tiny-moe", "stage": stage}


def sig_fs(root, stage):
    return Layout(profiles_root=root).fs(contract.signature_path(stage, MODEL))


def primed_root(base, name="builder", files=None):
    """A profiles root where STAGES are primed: cache files, a symlink inside a cache, and each signature.json."""
    root = os.path.join(str(base), name, "profiles")
    files = files or {
        "deep_gemm/cache/kernel_a.cubin": b"A" * 3000,
        "triton/abc123/fused_moe.cubin": os.urandom(5000),
        "triton/abc123/fused_moe.json": b'{"num_warps": 4}',
        "torchinductor/fxgraph/xy/entry": b"graph",
        "moe_configs/configs/triton_3_6_0/E=8,N=64,device_name=NVIDIA_H200.json": b"{}",
    }
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    os.symlink("fused_moe.cubin", os.path.join(root, "triton", "abc123", "latest.cubin"))
    for stage in STAGES:
        os.makedirs(os.path.dirname(sig_fs(root, stage)), exist_ok=True)
        signature.write(sig_fs(root, stage), stage, fields(stage), "container-run-builder", "2026-11-30T00:00:00.000Z", 12.5)
    return root


def current():
    return dict((stage, fields(stage)) for stage in STAGES)


def tree(root):
    """{relative path: bytes or ('link', target)} of every cache file and symlink (signature.json files aside)."""
    out = {}
    for name in bundle.cache_names():
        top = os.path.join(root, name)
        for base, _dirs, files in os.walk(top):
            for entry in files + [d for d in _dirs if os.path.islink(os.path.join(base, d))]:
                full = os.path.join(base, entry)
                rel = os.path.relpath(full, root)
                if bundle._is_signature_file(rel):
                    continue  # each host writes its own (compared separately)
                if os.path.islink(full):
                    out[rel] = ("link", os.readlink(full))
                else:
                    with open(full, "rb") as handle:
                        out[rel] = handle.read()
    return out


def archived(path):
    """[(name, kind, PAX sha256 or None, link target or None)] of a bundle's members after its header, in order."""
    out = []
    with tarfile.open(path, "r:gz") as tar:
        first = tar.next()
        assert first.name == bundle.MANIFEST_NAME
        for info in iter(tar.next, None):
            kind = "dir" if info.isdir() else "symlink" if info.issym() else "file" if info.isreg() else "other"
            out.append((info.name, kind, info.pax_headers.get(bundle.DIGEST_HEADER), info.linkname or None))
    return out


def archived_paths(manifest):
    return [name for name, _kind, _digest, _target in archived(manifest["path"])]


@pytest.fixture
def built(tmp_path):
    root = primed_root(tmp_path)
    manifest = bundle.pack(root, MODEL, STAGES, str(tmp_path / "store"), source_host="gpu-h200-01", run_id="container-run-builder")
    return root, manifest


def receiver(tmp_path, name="receiver"):
    root = os.path.join(str(tmp_path), name, "profiles")
    os.makedirs(root)
    return root


# ---------------------------------------------------------------- pack and install

def test_pack_names_the_archive_by_its_sha256_and_describes_every_file(built):
    root, manifest = built
    with open(manifest["path"], "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == manifest["digest"]
    assert os.path.basename(manifest["path"]) == manifest["digest"] + ".tar.gz"
    members = archived(manifest["path"])
    listed = dict((name, (kind, digest, target)) for name, kind, digest, target in members)
    with open(os.path.join(root, "triton/abc123/fused_moe.cubin"), "rb") as handle:
        data = handle.read()
    # each file carries its own sha256 (a PAX header); the manifest holds only the totals
    assert listed["triton/abc123/fused_moe.cubin"] == ("file", hashlib.sha256(data).hexdigest(), None)
    assert listed["triton/abc123/latest.cubin"] == ("symlink", None, "fused_moe.cubin")
    assert "files" not in manifest and manifest["format"] == "3"
    assert manifest["entry_count"] == len(members) and manifest["file_count"] == sum(1 for m in members if m[1] == "file")
    assert manifest["caches"] == sorted(set(name.split("/")[0] for name in listed))
    # a directory comes before what it holds, each directory's names in order: the same tree packs the same way
    assert [name.split("/") for name in listed] == sorted(name.split("/") for name in listed)
    assert manifest["group_key"] == bundle.group_key(current())
    assert set(manifest["stages"]) == set(STAGES) and manifest["stages"]["deep_gemm"]["fields"] == fields("deep_gemm")
    assert manifest["source_host"] == "gpu-h200-01" and manifest["created_at"] and manifest["collection_version"]
    # signatures travel in the manifest, never as files: the receiver writes its own
    assert not [p for p in listed if p.endswith("/signature.json")]
    with open(os.path.join(os.path.dirname(manifest["path"]), manifest["digest"] + ".json")) as handle:
        assert json.load(handle)["digest"] == manifest["digest"]


def test_install_makes_the_receiver_primed_with_its_own_signature(tmp_path, built):
    root, manifest = built
    target = receiver(tmp_path)
    summary = bundle.install(manifest["path"], target, MODEL, current(), run_id="container-run-receiver",
                             expected_sha256=manifest["digest"], headroom_mb=0)
    assert tree(target) == tree(root)
    for stage in STAGES:
        record, problem = signature.read_record(sig_fs(target, stage))
        assert problem is None and record["fields"] == fields(stage) and record["run_id"] == "container-run-receiver"
        # what ensure looks at: the signature matches and there is no in-progress marker, so it is a noop
        assert locks.read_marker(Layout(profiles_root=target).fs(contract.marker_path(stage))) is None
    assert summary["digest"] == manifest["digest"] and summary["source_host"] == "gpu-h200-01"
    assert summary["stages"] == list(STAGES) and summary["file_count"] == manifest["file_count"]
    assert os.listdir(os.path.join(target, bundle.STAGING_DIR)) == []


def test_install_adds_to_the_receivers_caches_and_keeps_what_it_had(tmp_path, built):
    _root, manifest = built
    target = receiver(tmp_path)
    os.makedirs(os.path.join(target, "triton", "stale"))
    with open(os.path.join(target, "triton", "stale", "old.cubin"), "wb") as handle:
        handle.write(b"old")
    summary = bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    with open(os.path.join(target, "triton", "stale", "old.cubin"), "rb") as handle:
        assert handle.read() == b"old"
    assert os.path.isfile(os.path.join(target, "triton", "abc123", "fused_moe.cubin"))
    assert summary["added"] > 0 and summary["recovered"] == []


def test_pack_refuses_a_stage_that_is_not_primed(tmp_path):
    root = primed_root(tmp_path)
    os.unlink(sig_fs(root, "inductor"))
    with pytest.raises(PrepError) as err:
        bundle.pack(root, MODEL, STAGES, str(tmp_path / "store"))
    assert err.value.error_type == "bundle_unavailable" and "inductor" in err.value.message


def test_pack_refuses_an_interrupted_stage(tmp_path):
    root = primed_root(tmp_path)
    marker = Layout(profiles_root=root).fs(contract.marker_path("moe_tune"))
    os.makedirs(os.path.dirname(marker))
    locks.write_marker(marker, {"owner_pid": 1})
    with pytest.raises(PrepError) as err:
        bundle.pack(root, MODEL, STAGES, str(tmp_path / "store"))
    assert err.value.error_type == "bundle_unavailable" and "moe_tune" in err.value.message


# ---------------------------------------------------------------- refusals that touch nothing

def assert_untouched(target, before):
    assert tree(target) == before
    for stage in STAGES:
        assert not os.path.exists(sig_fs(target, stage))
        assert locks.read_marker(Layout(profiles_root=target).fs(contract.marker_path(stage))) is None
    staging = os.path.join(target, bundle.STAGING_DIR)
    assert not os.path.isdir(staging) or os.listdir(staging) == []


def receiver_with_old_cache(tmp_path):
    target = receiver(tmp_path)
    os.makedirs(os.path.join(target, "triton", "old"))
    with open(os.path.join(target, "triton", "old", "k.cubin"), "wb") as handle:
        handle.write(b"old kernel")
    return target, tree(target)


def test_a_different_driver_is_refused_with_the_field(tmp_path, built):
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    mine = dict((stage, fields(stage, driver="550.54.15")) for stage in STAGES)
    with pytest.raises(PrepError) as err:
        bundle.install(manifest["path"], target, MODEL, mine, headroom_mb=0)
    assert err.value.error_type == "bundle_mismatch"
    assert "driver_version '570.148.08' -> '550.54.15'" in err.value.message
    assert {"stage": "deep_gemm", "field": "driver_version", "old": "570.148.08", "new": "550.54.15"} in err.value.details["reasons"]
    assert_untouched(target, before)


def test_another_model_is_refused(tmp_path, built):
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    with pytest.raises(PrepError) as err:
        bundle.install(manifest["path"], target, "/models/other", current(), headroom_mb=0)
    assert err.value.error_type == "bundle_mismatch" and "other" in err.value.message
    assert_untouched(target, before)


def install_refused(target, before, path, **options):
    """Install the bundle at path: the PrepError it raises, with the receiver's cache (before) untouched."""
    options.setdefault("headroom_mb", 0)
    with pytest.raises(PrepError) as err:
        bundle.install(path, target, MODEL, current(), **options)
    assert_untouched(target, before)
    return err.value


def test_a_corrupted_bundle_is_refused_by_its_sha256(tmp_path, built):
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    with open(manifest["path"], "r+b") as handle:
        handle.seek(os.path.getsize(manifest["path"]) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    err = install_refused(target, before, manifest["path"], expected_sha256=manifest["digest"])
    assert err.error_type == "bundle_corrupt" and manifest["digest"] in err.message
    # without the expected digest the damage is still found while unpacking (gzip CRC, member sha256)
    assert install_refused(target, before, manifest["path"]).error_type == "bundle_corrupt"


def test_a_truncated_transfer_is_refused(tmp_path, built):
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    with open(manifest["path"], "r+b") as handle:
        handle.truncate(os.path.getsize(manifest["path"]) * 2 // 3)
    assert install_refused(target, before, manifest["path"]).error_type == "bundle_corrupt"


def test_too_little_disk_is_refused_before_unpacking(tmp_path, built):
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    st = os.statvfs(target)
    err = install_refused(target, before, manifest["path"], headroom_mb=st.f_bavail * st.f_frsize // 1048576 + 1)
    assert err.error_type == "insufficient_disk" and "free" in err.message


# ---------------------------------------------------------------- crafted bundles

def craft(path, members, extra_manifest=None, digests=None):
    """Write a format-3 bundle of ``members`` ([(TarInfo, bytes or None)]) whose header's totals are what the members
    hold, each regular member with its sha256 in its PAX header (``digests``: {name: another digest, or None for
    none}); ``extra_manifest`` changes the header."""
    digests = digests or {}
    regular = [(info, data) for info, data in members if info.isreg()]
    manifest = {"format": bundle.FORMAT_VERSION, "group_key": bundle.group_key(current()), "model": MODEL, "model_slug": "tiny-moe",
                "stages": dict((s, {"fields": bundle.public_fields(fields(s)), "signature_sha256": bundle.signature_digest(fields(s))})
                               for s in STAGES),
                "caches": sorted(set(info.name.split("/")[0] for info, _data in members) & set(bundle.cache_names())) or ["triton"],
                "entry_count": len(members),
                "file_count": len(regular), "total_bytes": sum(len(data or b"") for _info, data in regular), "source_host": "h",
                "source_run_id": None, "created_at": "x", "collection_version": "1.0.0"}
    manifest.update(extra_manifest or {})
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb") as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            data = json.dumps(manifest).encode()
            info = tarfile.TarInfo(bundle.MANIFEST_NAME)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            for info, payload in members:
                if payload is not None:
                    info.size = len(payload)
                if info.isreg():
                    digest = digests.get(info.name, hashlib.sha256(payload or b"").hexdigest())
                    info.pax_headers = {bundle.DIGEST_HEADER: digest} if digest else {}
                tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    with open(path, "wb") as handle:
        handle.write(raw.getvalue())
    return path


def refused(tmp_path, members, **manifest):
    """Install a crafted bundle on a receiver that holds an older cache: the PrepError it raises, the cache untouched."""
    target, before = receiver_with_old_cache(tmp_path)
    return install_refused(target, before, craft(str(tmp_path / "b.tar.gz"), members, **manifest))


def member(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info


UNSAFE = {
    "absolute path": [(member("/etc/cron.d/evil"), b"x")],
    "dot-dot": [(member("triton/../../evil"), b"x")],
    "outside the caches": [(member("telemetry/evil"), b"x")],
    "absolute symlink": [(member("triton/link", tarfile.SYMTYPE, "/etc/passwd"), None)],
    "symlink leaving its cache": [(member("triton/link", tarfile.SYMTYPE, "../deep_gemm/x"), None)],
    "symlink with a dot-dot that stays inside": [(member("triton/a", tarfile.DIRTYPE), None),
                                                 (member("triton/a/link", tarfile.SYMTYPE, "../b"), None)],
    # each link looks inside the cache, but l2 resolves through l1, which the kernel follows elsewhere
    "link chain": [(member("triton/sub", tarfile.DIRTYPE), None), (member("triton/l1", tarfile.SYMTYPE, "sub"), None),
                   (member("triton/l2", tarfile.SYMTYPE, "l1/x"), None)],
    "a name longer than the file system takes": [(member("triton/" + "n" * 300), b"x")],
    "hard link": [(member("triton/a"), b"x"), (member("triton/b", tarfile.LNKTYPE, "triton/a"), None)],
    "device file": [(member("triton/dev", tarfile.CHRTYPE), None)],
    "fifo": [(member("triton/fifo", tarfile.FIFOTYPE), None)],
    "the same path twice": [(member("triton/a"), b"x"), (member("triton/a"), b"x")],
    "a directory twice": [(member("triton/d", tarfile.DIRTYPE), None), (member("triton/d", tarfile.DIRTYPE), None)],
    "another model's signature file": [(member("deep_gemm/other-0123abcd", tarfile.DIRTYPE), None),
                                       (member("deep_gemm/other-0123abcd/signature.json"), b"{}")],
    "another model's subtree": [(member("deep_gemm/other-0123abcd", tarfile.DIRTYPE), None),
                                (member("deep_gemm/other-0123abcd/compile.log"), b"log")],
    "a link made where a directory was written": [(member("triton/d", tarfile.DIRTYPE), None), (member("triton/d/x"), b"x"),
                                                  (member("triton/d", tarfile.SYMTYPE, "x"), None)],
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_are_refused(tmp_path, case):
    err = refused(tmp_path, UNSAFE[case])
    assert err.error_type == "bundle_unsafe", err.message
    assert not os.path.exists(os.path.join(str(tmp_path), "etc")) and not os.path.exists(os.path.join(str(tmp_path), "evil"))


CORRUPT = {
    # (members, craft options, the field named, text in the message)
    "bytes that differ from their digest": ([(member("triton/k.cubin"), b"real bytes")],
                                            {"digests": {"triton/k.cubin": hashlib.sha256(b"other").hexdigest()}},
                                            bundle.DIGEST_HEADER, "sha256"),
    "a file without its digest": ([(member("triton/k.cubin"), b"real bytes")], {"digests": {"triton/k.cubin": None}},
                                  bundle.DIGEST_HEADER, bundle.DIGEST_HEADER),
    "a digest that is not hex": ([(member("triton/k.cubin"), b"real bytes")], {"digests": {"triton/k.cubin": "z" * 64}},
                                 bundle.DIGEST_HEADER, bundle.DIGEST_HEADER),
    "fewer entries than the header says": ([(member("triton/k.cubin"), b"k")], {"extra_manifest": {"entry_count": 2}},
                                           "entry_count", "truncated"),
    "more entries than the header says": ([(member("triton/k.cubin"), b"k"), (member("triton/j.cubin"), b"j")],
                                          {"extra_manifest": {"entry_count": 1, "file_count": 1}}, "entry_count", "more"),
    "more bytes than the header says": ([(member("triton/k.cubin"), b"k" * 100)], {"extra_manifest": {"total_bytes": 10}},
                                        "total_bytes", "total_bytes"),
    "fewer bytes than the header says": ([(member("triton/k.cubin"), b"k")], {"extra_manifest": {"total_bytes": 2}},
                                         "total_bytes", "total_bytes"),
    "fewer files than the header says": ([(member("triton/k.cubin"), b"k"), (member("triton/d", tarfile.DIRTYPE), None)],
                                         {"extra_manifest": {"file_count": 2}}, "file_count", "file_count"),
    "a cache the header does not name": ([(member("triton/k.cubin"), b"k"), (member("deep_gemm/k"), b"k")],
                                         {"extra_manifest": {"caches": ["triton"]}}, "caches", "deep_gemm"),
    "a cache the header names but no member is in": ([(member("triton/k.cubin"), b"k")],
                                                     {"extra_manifest": {"caches": ["deep_gemm", "triton"]}}, "caches",
                                                     "deep_gemm"),
    "a cache directory as a member": ([(member("triton", tarfile.DIRTYPE), None), (member("triton/k"), b"k")], {},
                                      "member", "cache directory itself"),
    "a member before its directory": ([(member("triton/d/x"), b"x"), (member("triton/d", tarfile.DIRTYPE), None)], {},
                                      "member", "before its directory"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_a_member_or_total_that_is_not_what_it_says_is_corrupt(tmp_path, case):
    members, options, field, needle = CORRUPT[case]
    target, before = receiver_with_old_cache(tmp_path)
    err = install_refused(target, before, craft(str(tmp_path / "b.tar.gz"), members, **options))
    assert err.error_type == "bundle_corrupt" and err.details.get("field") == field, (err.details, err.message)
    assert needle in err.message


def test_a_tampered_member_of_a_packed_bundle_is_corrupt(tmp_path, built):
    """A member's bytes changed in the archive (the archive rebuilt around it, so its own sha256 is whole): the
    member's digest in its PAX header finds it."""
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    raw = io.BytesIO()
    with tarfile.open(manifest["path"], "r:gz") as source, gzip.GzipFile(fileobj=raw, mode="wb") as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info in source:
                data = source.extractfile(info).read() if info.isreg() else None
                if info.name == "triton/abc123/fused_moe.json":
                    data = b'{"num_warps": 8}'
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path = tmp_path / "tampered.tar.gz"
    path.write_bytes(raw.getvalue())
    err = install_refused(target, before, str(path))
    assert err.error_type == "bundle_corrupt" and "triton/abc123/fused_moe.json" in err.message


@pytest.mark.parametrize("old", ["2", "1"])
def test_a_bundle_of_an_older_format_is_refused_saying_to_republish_it(tmp_path, old):
    """A format-2 bundle (a list of every file in its manifest) is refused before anything is unpacked."""
    files = [{"path": "triton/k", "type": "file", "size": 1, "sha256": hashlib.sha256(b"k").hexdigest()}]
    err = refused(tmp_path, [(member("triton/k"), b"k")], extra_manifest={"format": old, "files": files})
    assert err.error_type == "bundle_corrupt" and err.details["field"] == "format"
    assert "format '%s'" % old in err.message and "re-publish" in err.message


def test_an_older_bundle_whose_manifest_lists_many_files_is_refused_by_its_size_saying_to_republish_it(tmp_path):
    """A format-2 manifest of many files is larger than any header: refused unread, with the same advice."""
    files = [{"path": "triton/k%07d" % i, "type": "file", "size": 1, "sha256": "0" * 64} for i in range(12000)]
    err = refused(tmp_path, [(member("triton/k"), b"k")], extra_manifest={"format": "2", "files": files})
    assert err.error_type == "bundle_corrupt" and err.details["field"] == "manifest" and "re-publish" in err.message


def test_a_member_written_through_a_symlinked_directory_is_refused(tmp_path):
    """triton/d -> sub (inside the cache) then triton/d/x: a file may not be written through a link."""
    members = [(member("triton/sub", tarfile.DIRTYPE), None), (member("triton/d", tarfile.SYMTYPE, "sub"), None),
               (member("triton/d/x"), b"x")]
    err = refused(tmp_path, members)
    assert err.error_type == "bundle_unsafe" and "symlink" in err.message


def test_pack_refuses_a_link_that_leaves_the_cache(tmp_path):
    root = primed_root(tmp_path)
    os.symlink("/etc/passwd", os.path.join(root, "triton", "passwd"))
    with pytest.raises(PrepError) as err:
        bundle.pack(root, MODEL, STAGES, str(tmp_path / "store"))
    assert err.value.error_type == "bundle_unsafe"


def test_pack_refuses_a_link_that_resolves_through_another_link(tmp_path):
    # each link looks inside the cache, but l2 resolves through l1: the receiver's kernel would follow l1
    root = primed_root(tmp_path)
    os.mkdir(os.path.join(root, "triton", "sub"))
    os.symlink("sub", os.path.join(root, "triton", "l1"))
    os.symlink("l1/x", os.path.join(root, "triton", "l2"))
    with pytest.raises(PrepError) as err:
        bundle.pack(root, MODEL, STAGES, str(tmp_path / "store"))
    assert err.value.error_type == "bundle_unsafe" and "through another link (triton/l1)" in err.value.message
    store = str(tmp_path / "store")
    assert not os.path.isdir(store) or not os.listdir(store), "a refused pack leaves no bundle behind"


def test_pack_refuses_a_fifo(tmp_path):
    root = primed_root(tmp_path)
    os.mkfifo(os.path.join(root, "triton", "pipe"))
    with pytest.raises(PrepError) as err:
        bundle.pack(root, MODEL, STAGES, str(tmp_path / "store"))
    assert err.value.error_type == "bundle_unsafe" and "FIFO" in err.value.message


# ---------------------------------------------------------------- one model's bundle, merged into many models' caches

OTHER_A = "/models/model-a"
OTHER_B = "/models/model-b"


def prime_model(root, model, files, stages=STAGES):
    """What priming ``model`` leaves: its cache entries, its subtree (compile.log) and its signatures."""
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    layout = Layout(profiles_root=root)
    for stage in stages:
        sig = layout.fs(contract.signature_path(stage, model))
        os.makedirs(os.path.dirname(sig), exist_ok=True)
        signature.write(sig, stage, dict(fields(stage), model_slug=contract.model_slug(model)), "run-" + model[-1], "t", 1.0)
    log = layout.fs(contract.stage_model_dir("deep_gemm", model) + "/compile.log")
    with open(log, "w") as handle:
        handle.write("compiled for %s\n" % model)


def everything(root):
    """{relative path: bytes or ('link', target)} of every file under the caches, signatures included."""
    out = {}
    for name in bundle.cache_names():
        for base, dirs, files in os.walk(os.path.join(root, name)):
            for entry in files + [d for d in dirs if os.path.islink(os.path.join(base, d))]:
                full = os.path.join(base, entry)
                if os.path.islink(full):
                    out[os.path.relpath(full, root)] = ("link", os.readlink(full))
                else:
                    with open(full, "rb") as handle:
                        out[os.path.relpath(full, root)] = handle.read()
    return out


def two_models_receiver(tmp_path):
    target = receiver(tmp_path)
    prime_model(target, OTHER_A, {"triton/AAAA/k.cubin": b"a kernel", "torchinductor/fxgraph/aa/entry": b"a graph",
                                  "moe_configs/configs/triton_3_6_0/E=16,N=32,device_name=NVIDIA_H200.json": b'{"a": 1}'})
    prime_model(target, OTHER_B, {"triton/BBBB/k.cubin": b"b kernel", "deep_gemm/cache/kernel_b.cubin": b"b"})
    return target


def test_a_bundle_carries_only_its_models_subtrees_and_no_signature(tmp_path):
    root = primed_root(tmp_path)
    prime_model(root, OTHER_A, {"triton/AAAA/k.cubin": b"a kernel"})
    prime_model(root, MODEL, {})
    manifest = bundle.pack(root, MODEL, STAGES, str(tmp_path / "store"))
    paths = archived_paths(manifest)
    other_key, own_key = contract.model_key(OTHER_A), contract.model_key(MODEL)
    assert not [p for p in paths if other_key in p], "another model's subtree travelled"
    assert "deep_gemm/%s/compile.log" % own_key in paths
    assert not [p for p in paths if p.endswith("/signature.json")]
    assert manifest["caches"] == sorted(set(p.split("/")[0] for p in paths))


def test_a_third_models_bundle_keeps_both_models_the_receiver_had(tmp_path, built):
    """Receiver primed for A and B gets the bundle of a third model: every file of A and B stays, byte for byte."""
    _root, manifest = built
    target = two_models_receiver(tmp_path)
    before = everything(target)
    bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    after = everything(target)
    lost = dict((rel, data) for rel, data in before.items() if after.get(rel) != data)
    assert lost == {}, "installing a third model's bundle changed or removed %s" % sorted(lost)
    for other in (OTHER_A, OTHER_B):
        for stage in STAGES:
            record, problem = signature.read_record(Layout(profiles_root=target).fs(contract.signature_path(stage, other)))
            assert problem is None and record["fields"]["model_slug"] == contract.model_slug(other)
    assert os.path.isfile(os.path.join(target, "triton", "abc123", "fused_moe.cubin"))
    for stage in STAGES:
        assert signature.read_record(sig_fs(target, stage))[1] is None


def test_the_same_bundle_twice_keeps_every_entry(tmp_path, built):
    _root, manifest = built
    target = two_models_receiver(tmp_path)
    bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    first = everything(target)
    summary = bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    assert summary["added"] == 0 and summary["kept"] > 0
    second = everything(target)
    assert set(second) == set(first) and all(second[p] == first[p] for p in first if not p.endswith("signature.json"))


def test_an_entry_with_other_bytes_is_a_conflict_and_nothing_is_overwritten(tmp_path, built):
    _root, manifest = built
    target = two_models_receiver(tmp_path)
    path = os.path.join(target, "triton", "abc123", "fused_moe.cubin")
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as handle:
        handle.write(b"this host's own kernel")
    before = everything(target)
    with pytest.raises(PrepError) as err:
        bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    assert err.value.error_type == "bundle_conflict" and "triton/abc123/fused_moe.cubin" in err.value.message
    assert everything(target) == before
    assert os.listdir(os.path.join(target, bundle.STAGING_DIR)) == []


def test_a_receiver_directory_that_is_a_link_out_of_the_cache_is_unsafe(tmp_path, built):
    _root, manifest = built
    target = receiver(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    os.makedirs(os.path.join(target, "triton"))
    os.symlink(str(outside), os.path.join(target, "triton", "abc123"))
    with pytest.raises(PrepError) as err:
        bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    assert err.value.error_type == "bundle_unsafe"
    assert os.listdir(str(outside)) == []


# ---------------------------------------------------------------- the manifest is a checked schema

def item(rel, data=b"k"):
    return {"path": rel, "type": "file", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def deep(levels):
    value = []
    for _ in range(levels):
        value = [value]
    return value


BAD_MANIFESTS = {
    "caches empty": ({"caches": []}, "caches"),
    "caches outside profiles": ({"caches": ["../outside"]}, "caches"),
    "caches naming the bundle store": ({"caches": [".bundles"]}, "caches"),
    "caches not a list": ({"caches": {"triton": 1}}, "caches"),
    "total_bytes lying": ({"total_bytes": 999}, "total_bytes"),
    "total_bytes a text": ({"total_bytes": "10"}, "total_bytes"),
    "file_count lying": ({"file_count": 7}, "file_count"),
    "stages not an object": ({"stages": ["deep_gemm"]}, "stages"),
    "stage fields nested": ({"stages": {"deep_gemm": {"fields": {"tp": {"a": {"b": 1}}}, "signature_sha256": "0" * 64}}},
                            "stages.deep_gemm.fields.tp"),
    "stage unknown": ({"stages": {"rm -rf": {"fields": {}, "signature_sha256": "0" * 64}}}, "stages"),
    "signature of another model": ({"stages": {"deep_gemm": {"fields": dict(fields("deep_gemm"), model_slug="other"),
                                                             "signature_sha256": "0" * 64}}}, "stages.deep_gemm.fields.model_slug"),
    "a secret in clear": ({"stages": {"deep_gemm": {"fields": dict(fields("deep_gemm"), extra_server_args=["--api-key", "x"]),
                                                    "signature_sha256": "0" * 64}}}, "stages.deep_gemm.fields.extra_server_args"),
    "entry_count a boolean": ({"entry_count": True}, "entry_count"),
    "entry_count negative": ({"entry_count": -1}, "entry_count"),
    "entry_count missing": ({"entry_count": None}, "entry_count"),
    "a list of files (format 2's) in a format-3 header": ({"files": [item("triton/k")]}, "files"),
    "deep nesting": ({"source_host": deep(50)}, "manifest"),
    "unknown field": ({"run_this": "now"}, "run_this"),
    "model not a path": ({"model": "passwd", "model_slug": "passwd"}, "model"),
    "format missing": ({"format": None}, "format"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_a_malformed_manifest_is_refused_naming_its_field_never_a_traceback(tmp_path, case):
    change, field = BAD_MANIFESTS[case]
    err = refused(tmp_path, [(member("triton/k"), b"k")], extra_manifest=change)
    assert err.error_type in ("bundle_corrupt", "bundle_unsafe"), err.message
    assert err.details.get("field") == field, (err.details, err.message)


def test_a_manifest_that_is_not_json_is_corrupt(tmp_path):
    target, before = receiver_with_old_cache(tmp_path)
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb") as gz:
        with tarfile.open(fileobj=gz, mode="w") as tar:
            data = b"[" * 200000
            info = tarfile.TarInfo(bundle.MANIFEST_NAME)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "b.tar.gz"
    path.write_bytes(raw.getvalue())
    with pytest.raises(PrepError) as err:
        bundle.install(str(path), target, MODEL, current(), headroom_mb=0)
    assert err.value.error_type == "bundle_corrupt" and err.value.details["field"] == "manifest"
    assert_untouched(target, before)


# ---------------------------------------------------------------- no secret travels

SECRET = "sk-planted-0123456789abcdef"


def test_no_secret_travels_in_a_bundle_and_a_mismatch_names_the_field_only(tmp_path):
    root = primed_root(tmp_path)
    secret_fields = {}
    for stage in STAGES:
        secret_fields[stage] = dict(fields(stage), extra_server_args=["--api-key", SECRET, "--max-running-requests", "8"],
                                    server_env={"HF_TOKEN": SECRET + "-env"})
        signature.write(sig_fs(root, stage), stage, secret_fields[stage], "run", "t", 1.0)
    manifest = bundle.pack(root, MODEL, STAGES, str(tmp_path / "store"))
    with open(manifest["path"], "rb") as handle:
        unpacked = gzip.decompress(handle.read())
    assert SECRET.encode() not in unpacked
    for name in os.listdir(str(tmp_path / "store")):
        with open(str(tmp_path / "store" / name), "rb") as handle:
            assert SECRET.encode() not in handle.read(), name
    assert bundle.compare(manifest, secret_fields) == []
    other = dict((s, dict(secret_fields[s], extra_server_args=["--api-key", SECRET + "x"])) for s in STAGES)
    reasons = bundle.compare(manifest, other)
    assert {r["field"] for r in reasons} == {"extra_server_args"} and SECRET not in json.dumps(reasons)
    target = receiver(tmp_path)
    bundle.install(manifest["path"], target, MODEL, secret_fields, headroom_mb=0)  # the receiver accepts it


# ---------------------------------------------------------------- modes

def test_a_umask_of_000_creates_nothing_world_writable(tmp_path, built):
    _root, manifest = built
    target = receiver(tmp_path)
    old = os.umask(0)
    try:
        bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    finally:
        os.umask(old)
    writable = []
    for base, dirs, files in os.walk(target):
        for entry in dirs + files:
            full = os.path.join(base, entry)
            if not os.path.islink(full) and os.lstat(full).st_mode & 0o002:
                writable.append(os.path.relpath(full, target))
    assert writable == []


# ---------------------------------------------------------------- killed, concurrent and superseded installs

class Stop(BaseException):
    pass


def killed_install(path, target, at, model=MODEL, signatures=None):
    """Run an install in a child process that SIGKILLs itself before its ``at``-th live change; returns when it died."""
    pid = os.fork()
    if pid == 0:
        calls = []

        def die(_rel):
            calls.append(_rel)
            if len(calls) == at:
                os.kill(os.getpid(), 9)
        try:
            bundle.install(path, target, model, signatures or current(), headroom_mb=0, before_swap=die)
        finally:
            os._exit(0)
    _pid, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


def subtrees(target):
    return [contract.stage_model_dir(s, MODEL)[len(contract.PROFILES_ROOT) + 1:] for s in STAGES]


def live_changes(manifest, target):
    """How many live changes installing ``manifest``'s bundle on ``target`` makes (the plan of an unpack beside it)."""
    scratch = os.path.join(os.path.dirname(target), "plan-scratch")
    os.makedirs(os.path.join(scratch, "new"))
    index = bundle._Index(os.path.join(scratch, bundle.INDEX))
    try:
        bundle._unpack(manifest["path"], os.path.join(scratch, "new"), index, MODEL)
        plan = bundle.plan_merge(target, manifest, index)
    finally:
        index.close()
    return len(plan["tops"]) + plan["mkdir"] + plan["add"] + len(set(plan["swapped"]) | set(subtrees(target)))


@pytest.mark.parametrize("at", [1, 2, 4, 6, 9])
def test_a_kill_at_any_change_leaves_old_caches_once_recovered(tmp_path, built, at):
    _root, manifest = built
    target = two_models_receiver(tmp_path)
    before = everything(target)
    assert killed_install(manifest["path"], target, at), "the install was not killed"
    assert os.listdir(os.path.join(target, bundle.STAGING_DIR)), "a killed install leaves its staging"
    outcomes = bundle.clear_stale(target)
    assert [o["outcome"] for o in outcomes] == ["rolled_back"] and outcomes[0]["holds"] == "old"
    assert outcomes[0]["model"] == MODEL
    assert everything(target) == before
    for stage in STAGES:
        assert locks.read_marker(Layout(profiles_root=target).fs(contract.marker_path(stage))) is None
    assert os.listdir(os.path.join(target, bundle.STAGING_DIR)) == []


def test_a_kill_while_unpacking_leaves_nothing_once_cleared(tmp_path, built, monkeypatch):
    _root, manifest = built
    target = two_models_receiver(tmp_path)
    before = everything(target)
    pid = os.fork()
    if pid == 0:
        def die(*_a, **_k):
            os.kill(os.getpid(), 9)
        bundle.plan_merge = die  # dies after unpacking, before any live change
        try:
            bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.listdir(os.path.join(target, bundle.STAGING_DIR))
    assert [o["outcome"] for o in bundle.clear_stale(target)] == ["cleared"]
    assert everything(target) == before and os.listdir(os.path.join(target, bundle.STAGING_DIR)) == []


def test_a_journal_superseded_by_a_later_prime_is_dropped_never_rolled_back(tmp_path, built):
    """Killed mid-install, then the stage runs re-primed (their markers no longer name the bundle) before any
    recovery: the journal is dropped and nothing primed since the kill is removed."""
    _root, manifest = built
    target = two_models_receiver(tmp_path)
    assert killed_install(manifest["path"], target, live_changes(manifest, target) - 1)
    layout = Layout(profiles_root=target)
    for stage in STAGES:  # a prime that ran without recovering first (an older runtime), then finished
        locks.remove_marker(layout.fs(contract.marker_path(stage)))
    primed_since = everything(target)
    outcomes = bundle.clear_stale(target)
    assert [o["outcome"] for o in outcomes] == ["dropped"]
    assert everything(target) == primed_since


def test_kill_then_prime_then_another_install_loses_nothing_primed_after_the_kill(tmp_path, built):
    _root, manifest = built
    target = two_models_receiver(tmp_path)
    assert killed_install(manifest["path"], target, 3)
    # the prime after the kill: its stage run clears stale staging first, then compiles
    assert [o["outcome"] for o in bundle.clear_stale(target)] == ["rolled_back"]
    prime_model(target, MODEL, {"triton/CCCC/k.cubin": b"primed after the kill"})
    primed = everything(target)
    # another model's bundle, installed later, removes nothing
    other_root = str(tmp_path / "other-builder" / "profiles")
    prime_model(other_root, "/models/model-d", {"triton/DDDD/k.cubin": b"d"})
    other = bundle.pack(other_root, "/models/model-d", STAGES, str(tmp_path / "store-d"))
    mine = dict((s, dict(fields(s), model_slug="model-d")) for s in STAGES)
    bundle.install(other["path"], target, "/models/model-d", mine, headroom_mb=0)
    after = everything(target)
    assert dict((p, after.get(p)) for p in primed) == primed


def test_recovery_never_touches_a_running_install(tmp_path, built):
    """While an install holds the staging area's lock, clear_stale (a stage run, init) leaves its staging alone."""
    _root, manifest = built
    target = receiver(tmp_path)
    live = os.path.join(target, bundle.STAGING_DIR, "running-1")
    os.makedirs(live)
    jsonio_path = os.path.join(live, bundle.JOURNAL)
    with open(jsonio_path, "w") as handle:
        json.dump({"digest": "d", "owner_pid": os.getpid(), "stages": list(STAGES), "phase": "unpacking"}, handle)
    with bundle._install_lock(target, "run", 1.0, None):
        assert bundle.clear_stale(target) == []
        assert os.path.isdir(live)
    assert [o["outcome"] for o in bundle.clear_stale(target)] == ["cleared"]


def test_two_installs_at_once_both_finish_with_every_file(tmp_path, built):
    _root, manifest = built
    target = two_models_receiver(tmp_path)
    other_root = str(tmp_path / "other-builder" / "profiles")
    prime_model(other_root, "/models/model-d", {"triton/DDDD/k.cubin": b"d" * 100000})
    other = bundle.pack(other_root, "/models/model-d", STAGES, str(tmp_path / "store-d"))
    mine = dict((s, dict(fields(s), model_slug="model-d")) for s in STAGES)
    pids = []
    for path, model, sigs in ((manifest["path"], MODEL, current()), (other["path"], "/models/model-d", mine)):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                bundle.install(path, target, model, sigs, headroom_mb=0)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    assert [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids] == [0, 0]
    after = everything(target)
    for rel, data in tree(_root).items():
        assert after.get(rel) == data, rel
    assert after["triton/DDDD/k.cubin"] == b"d" * 100000
    assert os.listdir(os.path.join(target, bundle.STAGING_DIR)) == []


# ---------------------------------------------------------------- the cache registry says how a bundle installs each cache

def test_every_cache_says_how_a_bundle_installs_it():
    """A cache added to contract.CACHES names its bundle mode there, and only there."""
    for name, entry in contract.CACHES.items():
        assert getattr(entry, "bundle", None) in (contract.BUNDLE_MERGE, contract.BUNDLE_MODEL), name
        path, env = entry  # still the (directory, environment variable) pair every other reader unpacks
        assert path.startswith(contract.PROFILES_ROOT + "/") and env


def test_a_per_model_cache_carries_and_swaps_only_the_models_subtree(tmp_path, monkeypatch):
    monkeypatch.setitem(contract.CACHES, "moe_configs", contract.Cache(contract.PROFILES_ROOT + "/moe_configs",
                                                                       "SGLANG_MOE_CONFIG_DIR", contract.BUNDLE_MODEL))
    own = contract.model_key(MODEL)
    root = primed_root(tmp_path, files={"moe_configs/%s/tuned.json" % own: b"mine", "moe_configs/shared.json": b"loose",
                                        "triton/abc123/fused_moe.cubin": b"k"})
    manifest = bundle.pack(root, MODEL, STAGES, str(tmp_path / "store"))
    paths = archived_paths(manifest)
    assert "moe_configs/%s/tuned.json" % own in paths and "moe_configs/shared.json" not in paths
    target = two_models_receiver(tmp_path)
    os.makedirs(os.path.join(target, "moe_configs", own))
    with open(os.path.join(target, "moe_configs", own, "old.json"), "wb") as handle:
        handle.write(b"old tuning of this model")
    before = everything(target)
    bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    after = everything(target)
    assert "moe_configs/%s/old.json" % own not in after  # the model's subtree was swapped whole
    assert after["moe_configs/%s/tuned.json" % own] == b"mine"
    assert dict((p, after.get(p)) for p in before if own not in p) == dict((p, d) for p, d in before.items() if own not in p)


def test_a_caches_own_log_stays_with_its_host(tmp_path):
    """FlashInfer appends flashinfer_jit.log in its workspace on every host: it never travels (it would always differ)."""
    root = primed_root(tmp_path, files={"flashinfer/90/flashinfer_jit.log": b"builder's history", "triton/abc123/k": b"k"})
    manifest = bundle.pack(root, MODEL, STAGES, str(tmp_path / "store"))
    assert "flashinfer/90/flashinfer_jit.log" not in archived_paths(manifest)
    target = two_models_receiver(tmp_path)
    os.makedirs(os.path.join(target, "flashinfer", "90"))
    with open(os.path.join(target, "flashinfer", "90", "flashinfer_jit.log"), "wb") as handle:
        handle.write(b"receiver's history")
    bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    with open(os.path.join(target, "flashinfer", "90", "flashinfer_jit.log"), "rb") as handle:
        assert handle.read() == b"receiver's history"


def test_an_entry_appearing_during_the_install_is_never_overwritten(tmp_path, built):
    """A writer beside the install (another stage's compile) creates an entry the install planned to add: the install
    is rolled back as a conflict and that entry keeps its bytes."""
    _root, manifest = built
    target = two_models_receiver(tmp_path)
    before = everything(target)
    appeared = os.path.join(target, "triton", "abc123", "fused_moe.json")

    def racing_writer(rel):
        if rel == "triton/abc123/fused_moe.cubin":
            with open(appeared, "wb") as handle:
                handle.write(b"written by a compile meanwhile")
    with pytest.raises(PrepError) as err:
        bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0, before_swap=racing_writer)
    assert err.value.error_type == "bundle_conflict"
    with open(appeared, "rb") as handle:
        assert handle.read() == b"written by a compile meanwhile"
    after = everything(target)
    del after["triton/abc123/fused_moe.json"]
    assert after == before


def test_a_stage_run_interrupted_before_the_install_keeps_its_marker(tmp_path, built):
    """Another model's deep_gemm run was interrupted here: its marker (re-run me) outlives an install and a killed one."""
    _root, manifest = built
    target = two_models_receiver(tmp_path)
    marker = Layout(profiles_root=target).fs(contract.marker_path("deep_gemm"))
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    left = {"owner_pid": 999999, "stage": "deep_gemm", "model": OTHER_A, "run_id": "run-a"}
    locks.write_marker(marker, left)
    assert killed_install(manifest["path"], target, 2)
    assert [o["outcome"] for o in bundle.clear_stale(target)] == ["rolled_back"]
    assert locks.read_marker(marker) == left
    bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    assert locks.read_marker(marker) == left


# ---------------------------------------------------------------- one pass over the archive

def test_an_install_reads_the_archive_once_and_checks_its_digest_while_unpacking(tmp_path, built, monkeypatch):
    _root, manifest = built
    target = receiver(tmp_path)
    hashed = []
    real = bundle.file_sha256
    monkeypatch.setattr(bundle, "file_sha256", lambda path: hashed.append(path) or real(path))
    result = bundle.install(manifest["path"], target, MODEL, current(), expected_sha256=manifest["digest"], headroom_mb=0)
    assert result["digest"] == manifest["digest"] and result["file_count"] == manifest["file_count"]
    assert manifest["path"] not in hashed  # no separate pass to hash the archive
    assert tree(target) == tree(_root)


def copy_named(manifest, tmp_path, name, tail=b""):
    path = str(tmp_path / name)
    with open(manifest["path"], "rb") as source, open(path, "wb") as out:
        out.write(source.read() + tail)
    return path


def test_a_bundle_whose_bytes_are_not_the_digest_its_name_gives_is_refused(tmp_path, built):
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    path = copy_named(manifest, tmp_path, "f" * 64 + bundle.SUFFIX)
    err = install_refused(target, before, path)
    assert err.error_type == "bundle_corrupt" and manifest["digest"] in err.message and "f" * 64 in err.message
    assert os.listdir(os.path.join(target, bundle.STAGING_DIR)) == []


def test_bytes_after_the_gzip_stream_are_refused(tmp_path, built):
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    err = install_refused(target, before, copy_named(manifest, tmp_path, "appended.tar.gz", tail=b"not a bundle"))
    assert err.error_type == "bundle_corrupt" and "after its gzip stream" in err.message


def test_a_damaged_gzip_trailer_is_refused(tmp_path, built):
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    path = copy_named(manifest, tmp_path, "trailer.tar.gz")
    with open(path, "r+b") as handle:
        handle.seek(-8, os.SEEK_END)  # the CRC-32 of the uncompressed bytes
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert install_refused(target, before, path).error_type == "bundle_corrupt"

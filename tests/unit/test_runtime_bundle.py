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
import sys
import tarfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract  # noqa: E402
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import bundle, locks, signature  # noqa: E402
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.layout import Layout  # noqa: E402
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError  # noqa: E402

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
    listed = dict((f["path"], f) for f in manifest["files"])
    cubin = listed["triton/abc123/fused_moe.cubin"]
    with open(os.path.join(root, cubin["path"]), "rb") as handle:
        data = handle.read()
    assert cubin["size"] == len(data) and cubin["sha256"] == hashlib.sha256(data).hexdigest()
    assert listed["triton/abc123/latest.cubin"] == {"path": "triton/abc123/latest.cubin", "type": "symlink", "target": "fused_moe.cubin"}
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


def test_install_replaces_an_old_cache_whole(tmp_path, built):
    _root, manifest = built
    target = receiver(tmp_path)
    os.makedirs(os.path.join(target, "triton", "stale"))
    with open(os.path.join(target, "triton", "stale", "old.cubin"), "wb") as handle:
        handle.write(b"old")
    bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    assert not os.path.exists(os.path.join(target, "triton", "stale"))
    assert os.path.isfile(os.path.join(target, "triton", "abc123", "fused_moe.cubin"))


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


def test_a_corrupted_bundle_is_refused_by_its_sha256(tmp_path, built):
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    with open(manifest["path"], "r+b") as handle:
        handle.seek(os.path.getsize(manifest["path"]) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(PrepError) as err:
        bundle.install(manifest["path"], target, MODEL, current(), expected_sha256=manifest["digest"], headroom_mb=0)
    assert err.value.error_type == "bundle_corrupt" and manifest["digest"] in err.value.message
    assert_untouched(target, before)
    # without the expected digest the damage is still found while unpacking (gzip CRC, member sha256)
    with pytest.raises(PrepError) as err:
        bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    assert err.value.error_type == "bundle_corrupt"
    assert_untouched(target, before)


def test_a_truncated_transfer_is_refused(tmp_path, built):
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    with open(manifest["path"], "r+b") as handle:
        handle.truncate(os.path.getsize(manifest["path"]) * 2 // 3)
    with pytest.raises(PrepError) as err:
        bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    assert err.value.error_type == "bundle_corrupt"
    assert_untouched(target, before)


def test_too_little_disk_is_refused_before_unpacking(tmp_path, built):
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    st = os.statvfs(target)
    with pytest.raises(PrepError) as err:
        bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=st.f_bavail * st.f_frsize // 1048576 + 1)
    assert err.value.error_type == "insufficient_disk" and "free" in err.value.message
    assert_untouched(target, before)


# ---------------------------------------------------------------- crafted bundles

def craft(path, members, manifest_files=None, extra_manifest=None):
    """Write a bundle whose manifest lists ``manifest_files`` (default: what the members claim) and whose
    members are ``members``: [(TarInfo, bytes or None)]."""
    if manifest_files is None:
        manifest_files = []
        for info, data in members:
            kind = ("dir" if info.isdir() else "symlink" if info.issym() else "file" if info.isreg() else
                    "hardlink" if info.islnk() else "fifo" if info.isfifo() else "device")
            item = {"path": info.name, "type": kind}
            if info.issym():
                item["target"] = info.linkname
            elif info.isfile():
                item.update(size=len(data or b""), sha256=hashlib.sha256(data or b"").hexdigest())
            manifest_files.append(item)
    manifest = {"format": bundle.FORMAT_VERSION, "group_key": bundle.group_key(current()), "model": MODEL, "model_slug": "tiny-moe",
                "stages": dict((s, {"fields": fields(s)}) for s in STAGES), "caches": ["triton"], "files": manifest_files,
                "file_count": 1, "total_bytes": 10, "source_host": "h", "source_run_id": None, "created_at": "x",
                "collection_version": "1.0.0"}
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
                tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    with open(path, "wb") as handle:
        handle.write(raw.getvalue())
    return path


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
    "hard link": [(member("triton/a"), b"x"), (member("triton/b", tarfile.LNKTYPE, "triton/a"), None)],
    "device file": [(member("triton/dev", tarfile.CHRTYPE), None)],
    "fifo": [(member("triton/fifo", tarfile.FIFOTYPE), None)],
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_are_refused(tmp_path, case):
    target, before = receiver_with_old_cache(tmp_path)
    path = craft(str(tmp_path / "evil.tar.gz"), UNSAFE[case])  # the manifest lists the members as they are
    with pytest.raises(PrepError) as err:
        bundle.install(path, target, MODEL, current(), headroom_mb=0)
    assert err.value.error_type == "bundle_unsafe", err.value.message
    assert_untouched(target, before)
    assert not os.path.exists(os.path.join(str(tmp_path), "etc")) and not os.path.exists(os.path.join(str(tmp_path), "evil"))


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_are_refused_even_when_the_manifest_hides_them(tmp_path, case):
    """The manifest lists a harmless file; the archive carries the unsafe member: refused all the same."""
    target, before = receiver_with_old_cache(tmp_path)
    path = craft(str(tmp_path / "evil.tar.gz"), UNSAFE[case],
                 manifest_files=[{"path": "triton/ok", "type": "file", "size": 1, "sha256": "0" * 64}])
    with pytest.raises(PrepError) as err:
        bundle.install(path, target, MODEL, current(), headroom_mb=0)
    assert err.value.error_type == "bundle_unsafe", err.value.message
    assert_untouched(target, before)


def test_a_member_whose_bytes_differ_from_the_manifest_is_refused(tmp_path):
    target, before = receiver_with_old_cache(tmp_path)
    path = craft(str(tmp_path / "b.tar.gz"), [(member("triton/k.cubin"), b"real bytes")],
                 manifest_files=[{"path": "triton/k.cubin", "type": "file", "size": 10, "sha256": hashlib.sha256(b"other byte").hexdigest()}])
    with pytest.raises(PrepError) as err:
        bundle.install(path, target, MODEL, current(), headroom_mb=0)
    assert err.value.error_type == "bundle_corrupt" and "sha256" in err.value.message
    assert_untouched(target, before)


def test_a_member_whose_size_differs_from_the_manifest_is_refused(tmp_path):
    target, before = receiver_with_old_cache(tmp_path)
    path = craft(str(tmp_path / "b.tar.gz"), [(member("triton/k.cubin"), b"real bytes")],
                 manifest_files=[{"path": "triton/k.cubin", "type": "file", "size": 99, "sha256": hashlib.sha256(b"real bytes").hexdigest()}])
    with pytest.raises(PrepError) as err:
        bundle.install(path, target, MODEL, current(), headroom_mb=0)
    assert err.value.error_type == "bundle_corrupt" and "99" in err.value.message
    assert_untouched(target, before)


def test_a_file_listed_but_missing_from_the_archive_is_refused(tmp_path):
    target, before = receiver_with_old_cache(tmp_path)
    data = b"kernel"
    listed = [{"path": "triton/k.cubin", "type": "file", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
              {"path": "triton/gone.cubin", "type": "file", "size": 1, "sha256": "0" * 64}]
    path = craft(str(tmp_path / "b.tar.gz"), [(member("triton/k.cubin"), data)], manifest_files=listed)
    with pytest.raises(PrepError) as err:
        bundle.install(path, target, MODEL, current(), headroom_mb=0)
    assert err.value.error_type == "bundle_corrupt" and "truncated" in err.value.message
    assert_untouched(target, before)


def test_a_member_written_through_a_symlinked_directory_is_refused(tmp_path):
    """triton/d -> sub (inside the cache) then triton/d/x: a file may not be written through a link."""
    target, before = receiver_with_old_cache(tmp_path)
    members = [(member("triton/sub", tarfile.DIRTYPE), None), (member("triton/d", tarfile.SYMTYPE, "sub"), None),
               (member("triton/d/x"), b"x")]
    path = craft(str(tmp_path / "b.tar.gz"), members)
    with pytest.raises(PrepError) as err:
        bundle.install(path, target, MODEL, current(), headroom_mb=0)
    assert err.value.error_type == "bundle_unsafe" and "symlink" in err.value.message
    assert_untouched(target, before)


def test_pack_refuses_a_link_that_leaves_the_cache(tmp_path):
    root = primed_root(tmp_path)
    os.symlink("/etc/passwd", os.path.join(root, "triton", "passwd"))
    with pytest.raises(PrepError) as err:
        bundle.pack(root, MODEL, STAGES, str(tmp_path / "store"))
    assert err.value.error_type == "bundle_unsafe"


def test_pack_refuses_a_fifo(tmp_path):
    root = primed_root(tmp_path)
    os.mkfifo(os.path.join(root, "triton", "pipe"))
    with pytest.raises(PrepError) as err:
        bundle.pack(root, MODEL, STAGES, str(tmp_path / "store"))
    assert err.value.error_type == "bundle_unsafe" and "FIFO" in err.value.message


# ---------------------------------------------------------------- interrupted installs

class Stop(BaseException):
    pass


def test_an_install_interrupted_between_caches_leaves_the_old_caches(tmp_path, built):
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    swaps = []

    def stop_at_second(cache):
        swaps.append(cache)
        if len(swaps) == 2:
            raise Stop()

    with pytest.raises(Stop):
        bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0, before_swap=stop_at_second)
    assert_untouched(target, before)


def test_a_killed_install_is_undone_by_the_next_one(tmp_path, built, monkeypatch):
    """Killed after the old cache was moved aside and before the new one was in place: the markers stay (the
    stages re-run), and the next install first rolls the whole swap back (recover), old caches in place."""
    _root, manifest = built
    target, before = receiver_with_old_cache(tmp_path)
    real_rename = os.rename
    calls = []

    def killed(src, dst):
        calls.append((src, dst))
        if os.path.basename(src) == "triton" and os.path.dirname(src) == target:
            real_rename(src, dst)  # the old triton cache is moved aside, then the process dies
            raise Stop()
        return real_rename(src, dst)

    monkeypatch.setattr(bundle.os, "rename", killed)
    monkeypatch.setattr(bundle, "_roll_back", lambda *a: [])  # a killed process rolls nothing back
    with pytest.raises(Stop):
        bundle.install(manifest["path"], target, MODEL, current(), headroom_mb=0)
    monkeypatch.undo()
    assert not os.path.exists(os.path.join(target, "triton", "abc123"))  # no partial cache where a server reads
    markers = [locks.read_marker(Layout(profiles_root=target).fs(contract.marker_path(s))) for s in STAGES]
    assert all(m is not None for m in markers), "an interrupted install must leave every stage marked in progress"
    assert bundle.recover(target) == ["triton"]
    assert_untouched(target, before)

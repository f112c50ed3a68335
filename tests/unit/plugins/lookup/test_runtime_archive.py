"""The runtime travels as one archive: packed on the controller (lookup sglang.prep.runtime_archive),
unpacked and swapped into place on the host (roles/prime/files/unpack_runtime.py).

What a user relies on: the same collection gives the same checksum (so a re-run deploys nothing), the
archive holds the whole package (the container program in container/ too, no bytecode), and an update
replaces the deployed package whole: files the new runtime no longer has are gone, and an archive that
would write outside the package is refused without touching the deployed copy.
"""

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from unit_support.paths import REPO

from ansible_collections.sglang.prep.plugins.lookup import runtime_archive

UNPACK = os.path.join(REPO, "collections", "ansible_collections", "sglang", "prep", "roles", "prime", "files",
                      "unpack_runtime.py")


def names(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return sorted(m.name for m in tar.getmembers() if m.isfile())


def test_the_same_runtime_packs_to_the_same_bytes(tmp_path):
    copy = tmp_path / "sglang_prep"
    shutil.copytree(runtime_archive.SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    first, count = runtime_archive.pack()
    os.utime(copy / "contract.py", (1, 1))  # another checkout: other mtimes, same content
    second, _ = runtime_archive.pack(str(copy))
    assert first == second
    assert count == len(names(first))


def test_the_archive_holds_the_whole_package_and_no_bytecode(tmp_path):
    copy = tmp_path / "sglang_prep"
    shutil.copytree(runtime_archive.SOURCE, copy)
    (copy / "container" / "__pycache__").mkdir(exist_ok=True)
    (copy / "container" / "__pycache__" / "engine.cpython-312.pyc").write_bytes(b"\0")
    listed = names(runtime_archive.pack(str(copy))[0])
    assert "sglang_prep/contract.py" in listed
    assert "sglang_prep/container/engine.py" in listed
    assert "sglang_prep/__main__.py" in listed
    assert not [n for n in listed if n.endswith(".pyc") or "__pycache__" in n]


def test_a_changed_file_changes_the_checksum(tmp_path):
    copy = tmp_path / "sglang_prep"
    shutil.copytree(runtime_archive.SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = hashlib.sha256(runtime_archive.pack(str(copy))[0]).hexdigest()
    with open(copy / "container" / "engine.py", "a") as handle:
        handle.write("\n# changed\n")
    assert hashlib.sha256(runtime_archive.pack(str(copy))[0]).hexdigest() != before


def unpack(archive, target):
    return subprocess.run([sys.executable, UNPACK, str(archive), str(target)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def test_an_update_replaces_the_deployed_package_whole(tmp_path):
    target = tmp_path / "runtime" / "sglang_prep"
    (target / "container").mkdir(parents=True)
    (target / "container" / "retired_module.py").write_text("old\n")
    (target / "contract.py").write_text("old\n")
    (tmp_path / "runtime" / "sglang_prep-0ld.tar.gz").write_bytes(b"the archive of an earlier deploy")
    (tmp_path / "runtime" / "sglang_prep.tar.gz").write_bytes(b"the archive of a deploy before names had digests")
    data = runtime_archive.pack()[0]
    name = "sglang_prep-%s.tar.gz" % hashlib.sha256(data).hexdigest()
    archive = tmp_path / "runtime" / name
    archive.write_bytes(data)
    proc = unpack(archive, target)
    assert proc.returncode == 0, proc.stderr
    assert not (target / "container" / "retired_module.py").exists()
    with open(os.path.join(runtime_archive.SOURCE, "contract.py")) as handle:
        assert (target / "contract.py").read_text() == handle.read()
    # no staging left, and only this deploy's archive: its name is what the next prime looks for
    assert sorted(os.listdir(tmp_path / "runtime")) == ["sglang_prep", name]


@pytest.mark.parametrize("name", ["../escape.py", "/abs.py", "other_pkg/x.py"])
def test_an_archive_that_writes_outside_the_package_is_refused(tmp_path, name):
    target = tmp_path / "runtime" / "sglang_prep"
    target.mkdir(parents=True)
    (target / "contract.py").write_text("deployed\n")
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    proc = unpack(archive, target)
    assert proc.returncode != 0
    assert "refusing" in proc.stderr
    assert (target / "contract.py").read_text() == "deployed\n"
    assert not (tmp_path / "escape.py").exists()
    assert sorted(os.listdir(tmp_path / "runtime")) == ["sglang_prep"]


def test_the_archive_ships_a_manifest_the_unpacked_tree_matches(tmp_path):
    """The host's check (sglang_host_info, _runtime_manifest.verify) finds nothing changed in a fresh unpack, and
    names a file edited on the host afterwards; the manifest is the sha256sum format operators can check by hand."""
    from ansible_collections.sglang.prep.plugins.module_utils import _runtime_manifest as runtime_manifest
    listed = {}
    data, _count = runtime_archive.pack(manifest=listed)
    assert "sglang_prep/MANIFEST.sha256" in names(data)
    assert listed["sha256"] == hashlib.sha256(listed["text"].encode()).hexdigest()
    archive = tmp_path / "sglang_prep-x.tar.gz"
    archive.write_bytes(data)
    target = tmp_path / "runtime" / "sglang_prep"
    target.parent.mkdir()
    assert unpack(archive, target).returncode == 0
    fresh = runtime_manifest.verify(str(target))
    assert fresh["manifest_sha256"] == listed["sha256"] and fresh["problem"] is None
    assert fresh["modified"] == fresh["missing"] == fresh["added"] == []
    check = subprocess.run(["sha256sum", "--quiet", "-c", "MANIFEST.sha256"], cwd=target, capture_output=True)
    assert check.returncode == 0, check.stderr
    with open(target / "container" / "engine.py", "a") as handle:
        handle.write("# edited on the host\n")
    assert runtime_manifest.verify(str(target))["modified"] == ["container/engine.py"]


def lookup(cache_dir):
    return runtime_archive.archive(str(cache_dir))[0]


def test_a_second_lookup_reuses_the_archive_without_packing_again(tmp_path, monkeypatch):
    """Every prime asks for the archive: packing and compressing it again cost a no-op re-prime about 40 ms. The same
    runtime gives the same answer (path, checksum, manifest) from the archive already packed."""
    first = lookup(tmp_path)
    with open(first["path"], "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == first["sha256"]

    def no_pack(*_args, **_kwargs):
        raise AssertionError("packed again although the archive of this runtime is there")

    monkeypatch.setattr(runtime_archive, "pack", no_pack)
    assert lookup(tmp_path) == first


def test_a_damaged_cached_archive_is_packed_again(tmp_path):
    first = lookup(tmp_path)
    with open(first["path"], "wb") as handle:
        handle.write(b"truncated")
    again = lookup(tmp_path)
    assert again == first
    with open(again["path"], "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == first["sha256"]

"""sglang_cache_inspect: the cache snapshot from the manifest's canonical paths, partial markers included."""

import json
import os

import pytest


from ansible.module_utils.testing import patch_module_args
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.modules import sglang_cache_inspect
from unit_support.modules import RUN_ID, host_root, pointer_path, write_run


def run(args, capsys, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            sglang_cache_inspect.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def profiles_path(root, container_path):
    return root / "profiles" / os.path.relpath(container_path, contract.PROFILES_ROOT)


def fill(root, cache, files):
    directory = profiles_path(root, contract.CACHES[cache][0])
    directory.mkdir(parents=True, exist_ok=True)
    for name, size in files.items():
        (directory / name).write_bytes(b"x" * size)


def test_snapshot_reports_every_cache_from_the_manifest(tmp_path, capsys):
    root = host_root(tmp_path)
    write_run(root)
    fill(root, "deep_gemm", {"a.cubin": 1000, "b.cubin": 24})
    fill(root, "torchinductor", {"graph": 7})
    rc, out = run({"pointer": pointer_path(root)}, capsys)
    assert rc == 0 and out["changed"] is False
    assert set(out["caches"]) == set(contract.CACHES)
    dg = out["caches"]["deep_gemm"]
    assert dg["exists"] is True and dg["size"] == 1024 and dg["count"] == 2 and dg["partial"] is False
    assert dg["host_path"] == str(profiles_path(root, contract.CACHES["deep_gemm"][0]))
    assert out["caches"]["flashinfer"]["exists"] is False
    assert out["total_bytes"] == 1031
    assert out["run_id"] == RUN_ID and out["profiles_root"] == str(root / "profiles")


def test_an_interrupted_stage_marks_its_cache_partial(tmp_path, capsys):
    root = host_root(tmp_path)
    write_run(root)
    marker = profiles_path(root, contract.marker_path("moe_tune"))
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"owner_pid": 1, "started_at": "2026-11-29T16:00:00Z"}))
    rc, out = run({"pointer": pointer_path(root)}, capsys)
    assert out["partial_stages"] == ["moe_tune"]
    cache = out["caches"][contract.STAGE_CACHE["moe_tune"]]
    assert cache["partial"] is True and cache["partial_stages"] == ["moe_tune"]
    assert "interrupted stages: moe_tune" in out["msg"]


def test_recorded_signatures_for_a_model(tmp_path, capsys):
    root = host_root(tmp_path)
    write_run(root)
    model = "/models/tiny-moe"
    signature = profiles_path(root, contract.signature_path("deep_gemm", model))
    signature.parent.mkdir(parents=True)
    signature.write_text(json.dumps({"stage": "deep_gemm", "fields": {"tp": 1}}))
    rc, out = run({"pointer": pointer_path(root), "model": model}, capsys)
    assert out["signatures"]["deep_gemm"]["fields"] == {"tp": 1}
    assert out["signatures"]["moe_tune"] is None
    assert list(out["signatures"]) == list(contract.STAGE_ORDER)


def test_a_manifest_can_be_given_directly(tmp_path, capsys):
    root = host_root(tmp_path)
    host_manifest = write_run(root)
    os.remove(pointer_path(root))
    rc, out = run({"manifest": host_manifest}, capsys, check_mode=True)
    assert rc == 0 and out["manifest"] == host_manifest


def test_no_fallback_when_the_pointer_is_missing(tmp_path, capsys):
    root = host_root(tmp_path)
    rc, out = run({"pointer": pointer_path(root)}, capsys)
    assert rc == 1 and out["error_type"] == "bad_pointer" and "does not exist" in out["msg"]
    assert "caches" not in out


def test_pointer_and_manifest_are_exclusive(tmp_path, capsys):
    rc, out = run({"pointer": "/a", "manifest": "/b"}, capsys)
    assert rc == 1 and "mutually exclusive" in out["msg"]

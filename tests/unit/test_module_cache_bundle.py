"""sglang_cache_bundle: packs or installs a cache bundle through `docker exec` and translates the RESULT line.

The docker CLI is test_module_stage's fake (records every argv, answers with a recorded runtime result), so
these tests need no Docker: they check the argv the runtime gets (the stage settings the signatures depend
on), refusal of bad input before anything runs, `changed`, and that a refusal keeps its error_type and the
field-level reasons.
"""

import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from test_module_stage import docker, exec_call  # noqa: E402,F401  (docker is a fixture)

from ansible.module_utils.testing import patch_module_args  # noqa: E402
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract  # noqa: E402
from ansible_collections.sglang.prep.plugins.modules import sglang_cache_bundle  # noqa: E402

DIGEST = "ab" * 32
INSTALLED = {"status": "installed", "changed": True, "digest": DIGEST, "group_key": "4b1f0c2d3e4f5a6b",
             "stages": ["deep_gemm", "moe_tune", "flashinfer", "inductor"], "source_host": "gpu-01", "install_s": 1.5,
             "file_count": 12, "total_bytes": 4096, "archive_bytes": 2048, "message": "installed deep_gemm, ... from bundle abab"}
MISMATCH = {"status": "error", "status_code": 1, "error_type": "bundle_mismatch", "command": "bundle",
            "message": "this host's signature differs from the bundle's: deep_gemm.driver_version '570.148.08' -> '550.54.15'",
            "reasons": [{"stage": "deep_gemm", "field": "driver_version", "old": "570.148.08", "new": "550.54.15"}]}


def run(args, capsys, check_mode=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            sglang_cache_bundle.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def install_args(path, **extra):
    args = {"container": "sglang-prep", "state": "installed", "model": "/models/tiny-moe", "docker_cli": path,
            "bundle": "/profiles/.bundles/%s.tar.gz" % DIGEST, "sha256": DIGEST, "tp": 2, "moe_batch_sizes": [1, 8],
            "extra_server_args": ["--enable-mixed-chunk"]}
    args.update(extra)
    return args


def test_install_runs_the_runtime_with_the_stage_settings_and_reports_changed(docker, capsys):
    path, configure, calls = docker
    configure(stdout=contract.RESULT_PREFIX + json.dumps(INSTALLED) + "\n")
    rc, out = run(install_args(path), capsys)
    assert rc == 0 and out["changed"] is True and out["status"] == "installed" and out["digest"] == DIGEST
    argv = exec_call(calls())[0]
    assert argv[:4] == ["exec", "-u", contract.DEVUSER, "sglang-prep"]
    tail = argv[4:]
    assert tail[:5] == ["python3", "-m", "sglang_prep", "bundle", "install"]
    assert tail[tail.index("--bundle") + 1] == "/profiles/.bundles/%s.tar.gz" % DIGEST
    assert tail[tail.index("--sha256") + 1] == DIGEST
    assert tail[tail.index("--tp") + 1] == "2" and "--extra-server-arg=--enable-mixed-chunk" in tail
    assert tail[tail.index("--moe-batch-sizes") + 1:tail.index("--moe-batch-sizes") + 3] == ["1", "8"]


def test_a_mismatch_fails_with_its_error_type_and_reasons(docker, capsys):
    path, configure, _calls = docker
    configure(stdout=contract.RESULT_PREFIX + json.dumps(MISMATCH) + "\n", rc=1)
    rc, out = run(install_args(path), capsys)
    assert rc == 1 and out["failed"] is True and out["changed"] is False
    assert out["error_type"] == "bundle_mismatch" and "driver_version" in out["msg"]
    assert out["reasons"] == MISMATCH["reasons"]


def test_pack_passes_the_source_host(docker, capsys):
    path, configure, calls = docker
    packed = {"status": "ok", "changed": True, "digest": DIGEST, "stages": ["deep_gemm"], "host_path": "/h/p/.bundles/x.tar.gz"}
    configure(stdout=contract.RESULT_PREFIX + json.dumps(packed) + "\n")
    rc, out = run({"container": "c", "state": "packed", "model": "/models/tiny-moe", "docker_cli": path, "source_host": "gpu-01"}, capsys)
    assert rc == 0 and out["changed"] is True and out["host_path"] == "/h/p/.bundles/x.tar.gz"
    tail = exec_call(calls())[0][4:]
    assert tail[4] == "create" and tail[tail.index("--source-host") + 1] == "gpu-01"


@pytest.mark.parametrize("extra,needle", [
    ({"model": "tiny-moe"}, "not under /models"),
    ({"sha256": "xyz"}, "64 lowercase hex"),
    ({"state": "packed", "stages": ["serve_check"]}, "only priming stages"),
])
def test_bad_input_is_refused_before_anything_runs(docker, capsys, extra, needle):
    path, configure, calls = docker
    rc, out = run(install_args(path, **extra), capsys)
    assert rc == 1 and needle in out["msg"]
    assert exec_call(calls()) == []


def test_check_mode_runs_nothing(docker, capsys):
    path, _configure, calls = docker
    rc, out = run(install_args(path), capsys, check_mode=True)
    assert rc == 0 and out["changed"] is True and out["status"] == "would_install"
    assert exec_call(calls()) == []


def test_env_values_reach_the_runtime_but_never_the_result(docker, capsys, tmp_path):
    path, configure, calls = docker
    configure(stdout=contract.RESULT_PREFIX + json.dumps(INSTALLED) + "\n")
    secret = "hf_bundle_s3cr3t"
    rc, out = run(install_args(path, env={"HF_TOKEN": secret}, _ansible_inject_invocation=True), capsys)
    assert rc == 0 and secret not in json.dumps(out)
    assert out["invocation"]["module_args"]["env"] == {"HF_TOKEN": "VALUE_NOT_RECORDED"}
    argv = exec_call(calls())[0]
    assert argv[argv.index("-e") + 1] == "HF_TOKEN" and secret not in json.dumps(argv)
    with open(os.environ["FAKE_DOCKER_CALLS"] + ".env") as seen:  # what docker exec hands the container
        assert json.loads(seen.read().splitlines()[-1]) == {"HF_TOKEN": secret}

"""sglang_cache_bundle: packs or installs a cache bundle through `docker exec` and translates the RESULT line.

A table: module args in; exit code, result and the runtime argv out. The docker CLI is the recording fake of
conftest.py (answers with a recorded runtime result), so these tests need no Docker: they check the argv the
runtime gets (the stage settings the signatures depend on), refusal of bad input before anything runs,
`changed`, and that a refusal keeps its error_type and the field-level reasons.
"""

import json
import os

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.modules import sglang_cache_bundle
from unit_support.modules import Case, Has, cases, exec_call, run_module

DIGEST = "ab" * 32
BUNDLE = "/profiles/.bundles/%s.tar.gz" % DIGEST
INSTALLED = {"status": "installed", "changed": True, "digest": DIGEST, "group_key": "4b1f0c2d3e4f5a6b",
             "stages": ["deep_gemm", "moe_tune", "flashinfer", "inductor"], "source_host": "gpu-01", "install_s": 1.5,
             "file_count": 12, "total_bytes": 4096, "archive_bytes": 2048, "message": "installed deep_gemm, ... from bundle abab"}
MISMATCH = {"status": "error", "status_code": 1, "error_type": "bundle_mismatch", "command": "bundle",
            "message": "this host's signature differs from the bundle's: deep_gemm.driver_version '570.148.08' -> '550.54.15'",
            "reasons": [{"stage": "deep_gemm", "field": "driver_version", "old": "570.148.08", "new": "550.54.15"}]}
PACKED = {"status": "ok", "changed": True, "digest": DIGEST, "stages": ["deep_gemm"], "host_path": "/h/p/.bundles/x.tar.gz"}
INSTALL = {"container": "sglang-prep", "state": "installed", "model": "/models/tiny-moe", "docker_cli": "{docker}",
           "bundle": BUNDLE, "sha256": DIGEST, "tp": 2, "moe_batch_sizes": [1, 8],
           "extra_server_args": ["--enable-mixed-chunk"]}
PACK = {"container": "c", "state": "packed", "model": "/models/tiny-moe", "docker_cli": "{docker}", "source_host": "gpu-01"}


def answer(result, rc=0):
    return {"stdout": contract.RESULT_PREFIX + json.dumps(result) + "\n", "rc": rc}


@cases(
    Case("install runs the runtime with the stage settings", INSTALL, docker=answer(INSTALLED),
         result={"changed": True, "status": "installed", "digest": DIGEST},
         exec_argv=[["exec", "-u", contract.DEVUSER, "sglang-prep", "python3", "-m", "sglang_prep", "bundle", "install"],
                    ["--bundle", BUNDLE], ["--sha256", DIGEST], ["--tp", "2"], ["--extra-server-arg=--enable-mixed-chunk"],
                    ["--moe-batch-sizes", "1", "8"]]),
    Case("a mismatch fails with its error_type and reasons", INSTALL, docker=answer(MISMATCH, rc=1), rc=1,
         result={"failed": True, "changed": False, "error_type": "bundle_mismatch", "msg": Has("driver_version"),
                 "reasons": MISMATCH["reasons"]}),
    Case("pack passes the source host", PACK, docker=answer(PACKED),
         result={"changed": True, "host_path": "/h/p/.bundles/x.tar.gz"},
         exec_argv=[["sglang_prep", "bundle", "create"], ["--source-host", "gpu-01"]]),
    Case("a model outside /models is refused", dict(INSTALL, model="tiny-moe"), rc=1,
         result={"msg": Has("not under /models")}, exec_argv=None),
    Case("a bad sha256 is refused", dict(INSTALL, sha256="xyz"), rc=1,
         result={"msg": Has("64 lowercase hex")}, exec_argv=None),
    Case("only priming stages are packed", dict(PACK, stages=["serve_check"]), rc=1,
         result={"msg": Has("only priming stages")}, exec_argv=None),
    Case("check mode runs nothing", INSTALL, check_mode=True,
         result={"changed": True, "status": "would_install"}, exec_argv=None),
)
def test_cache_bundle(case, capsys, docker):
    case.check(sglang_cache_bundle, capsys, docker)


def test_env_values_reach_the_runtime_but_never_the_result(docker, capsys):
    path, configure, calls = docker
    configure(**answer(INSTALLED))
    secret = "hf_bundle_s3cr3t"
    args = dict(INSTALL, docker_cli=path, env={"HF_TOKEN": secret}, _ansible_inject_invocation=True)
    rc, out = run_module(sglang_cache_bundle, args, capsys)
    assert rc == 0 and secret not in json.dumps(out)
    assert out["invocation"]["module_args"]["env"] == {"HF_TOKEN": "VALUE_NOT_RECORDED"}
    argv = exec_call(calls())[0]
    assert argv[argv.index("-e") + 1] == "HF_TOKEN" and secret not in json.dumps(argv)
    with open(os.environ["FAKE_DOCKER_CALLS"] + ".env") as seen:  # what docker exec hands the container
        assert json.loads(seen.read().splitlines()[-1]) == {"HF_TOKEN": secret}

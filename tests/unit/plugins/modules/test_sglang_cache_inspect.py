"""sglang_cache_inspect: the cache snapshot from the manifest's canonical paths, partial markers included.

A table: what the host holds (given) and the module args in; exit code and result out."""

import json
import os

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.modules import sglang_cache_inspect
from unit_support.modules import ABSENT, RUN_ID, Case, Has, cases, host_root, pointer_path, write_run

MODEL = "/models/tiny-moe"


def profiles_path(root, container_path):
    return root / "profiles" / os.path.relpath(container_path, contract.PROFILES_ROOT)


def fill(root, cache, files):
    directory = profiles_path(root, contract.CACHES[cache][0])
    directory.mkdir(parents=True, exist_ok=True)
    for name, size in files.items():
        (directory / name).write_bytes(b"x" * size)


def write(root, container_path, data):
    path = profiles_path(root, container_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))


GIVEN = {
    "run": write_run,
    "no pointer": lambda root: os.remove(pointer_path(root)),
    "deep_gemm and inductor files": lambda root: (fill(root, "deep_gemm", {"a.cubin": 1000, "b.cubin": 24}),
                                                  fill(root, "torchinductor", {"graph": 7})),
    "an interrupted moe_tune": lambda root: write(root, contract.marker_path("moe_tune"),
                                                  {"owner_pid": 1, "started_at": "2026-11-29T16:00:00Z"}),
    "a deep_gemm signature": lambda root: write(root, contract.signature_path("deep_gemm", MODEL),
                                                {"stage": "deep_gemm", "fields": {"tp": 1}}),
}
DEEP_GEMM_DIR = "{root}/profiles/" + os.path.relpath(contract.CACHES["deep_gemm"][0], contract.PROFILES_ROOT)


@cases(
    Case("the snapshot reports every cache of the manifest", {"pointer": "{pointer}"},
         given=["run", "deep_gemm and inductor files"],
         result={"changed": False, "run_id": RUN_ID, "profiles_root": "{root}/profiles", "total_bytes": 1031,
                 "caches": dict({name: {} for name in contract.CACHES},
                                deep_gemm={"exists": True, "size": 1024, "count": 2, "partial": False,
                                           "host_path": DEEP_GEMM_DIR},
                                flashinfer={"exists": False})}),
    Case("an interrupted stage marks its cache partial", {"pointer": "{pointer}"}, given=["run", "an interrupted moe_tune"],
         result={"partial_stages": ["moe_tune"], "msg": Has("interrupted stages: moe_tune"),
                 "caches": {contract.STAGE_CACHE["moe_tune"]: {"partial": True, "partial_stages": ["moe_tune"]}}}),
    Case("the recorded signatures of a model", {"pointer": "{pointer}", "model": MODEL}, given=["run", "a deep_gemm signature"],
         result={"signatures": dict({stage: None for stage in contract.STAGE_ORDER if stage != "deep_gemm"},
                                    deep_gemm={"stage": "deep_gemm", "fields": {"tp": 1}})}),
    Case("a manifest can be given directly", {"manifest": "{manifest}"}, given=["run", "no pointer"], check_mode=True,
         result={"manifest": "{manifest}"}),
    Case("no fallback when the pointer is missing", {"pointer": "{pointer}"}, rc=1,
         result={"error_type": "bad_pointer", "msg": Has("does not exist"), "caches": ABSENT}),
    Case("pointer and manifest are exclusive", {"pointer": "/a", "manifest": "/b"}, rc=1,
         result={"msg": Has("mutually exclusive")}),
)
def test_cache_inspect(case, capsys, tmp_path):
    root = host_root(tmp_path)
    manifest = None
    for step in case.given:
        made = GIVEN[step](root)
        manifest = made if isinstance(made, str) else manifest  # write_run returns the host manifest's path
    result = case.check(sglang_cache_inspect, capsys, root=root, pointer=pointer_path(root), manifest=manifest)
    if "signatures" in case.result:
        assert list(result["signatures"]) == list(contract.STAGE_ORDER)
    if "caches" in case.result and case.result["caches"] is not ABSENT:
        assert set(result["caches"]) == set(contract.CACHES)

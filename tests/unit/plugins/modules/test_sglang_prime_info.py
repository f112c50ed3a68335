"""sglang_prime_info: the priming state of the current run as recorded, read from the host's files in one call.

The run is laid out on a temporary "host" as the container writes it: the pointer and the manifest (container paths
and the host roots), and stage records written by the runtime's own writer (ledger.write_stage, ledger.aggregate)
through the host roots. No container runs: the module reads the host's files only.
"""

import json
import os
import sys

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import ledger
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.layout import Layout
from ansible_collections.sglang.prep.plugins.modules import sglang_prime_info
from unit_support.modules import run_module

RUN_ID = "container-run-20261129T160740Z-339c4104"
MODEL = "/models/tiny-moe"
SIGNATURE = {"device_name": "NVIDIA H100 80GB HBM3", "compute_capability": "sm_90", "cuda": "12.8",
             "driver_version": "570.148.08", "model_slug": "tiny-moe", "tp": 1}


class HostRun(object):
    """A container run as the host sees it: <root>/telemetry and <root>/profiles, the pointer and the manifest."""

    def __init__(self, root):
        self.tel, self.prof = os.path.join(root, "telemetry"), os.path.join(root, "profiles")
        self.layout = Layout(self.tel, self.prof)
        cpaths = contract_paths()
        for path in (self.layout.fs(cpaths["run_dir"]), self.layout.fs(contract.TELEMETRY_ROOT + "/logs"), self.prof):
            os.makedirs(path, exist_ok=True)
        self.manifest = self.layout.fs(cpaths["manifest"])
        data = {"schema_version": "1", "container_run_id": RUN_ID, "started_at": "2026-11-29T16:07:40Z",
                "image": "sglang-prep/standin:test", "git_revision": None, "services": {},
                "telemetry_surfaces": {"prometheus": None}, "storage": {"log_file": cpaths["log_file"]}, "caches": {},
                "profile_cache": {"start": {}},
                "paths": {"container": cpaths, "host": {"telemetry_root": self.tel, "profiles_root": self.prof,
                                                        "log_file": self.layout.fs(cpaths["log_file"])}}}
        with open(self.manifest, "w") as handle:
            json.dump(data, handle)
        self.pointer = os.path.join(self.tel, contract.POINTER_NAME)
        with open(self.pointer, "w") as handle:
            handle.write("%s=%s\n%s=%s\n" % (contract.POINTER_KEY, cpaths["manifest"], contract.POINTER_HOST_KEY,
                                            self.manifest))

    def record(self, stage, **result):
        """A stage result, written as the runtime writes it, and the aggregate rebuilt from the stage files."""
        stamp = "2026-11-29T16:08:%02dZ" % (list(contract.STAGE_ORDER).index(stage) + 1)
        ledger.write_stage(self.layout, RUN_ID, stage, dict(
            {"stage": stage, "run_id": RUN_ID, "model": MODEL, "mode": "ensure", "ran": True, "status": "ok",
             "status_code": 0, "duration_s": 4.2, "signature": SIGNATURE, "previous_signature": None,
             "reprime_reasons": [], "error_type": None, "message": "primed", "warnings": [], "errors": [],
             "log_tail": [], "started_at": stamp, "finished_at": stamp,
             "stage_json": contract.stage_json_path(RUN_ID, stage, MODEL)}, **result))
        ledger.aggregate(self.layout, RUN_ID, MODEL)


def contract_paths():
    run_dir = contract.TELEMETRY_ROOT + "/container_runs/" + RUN_ID
    return {"telemetry_root": contract.TELEMETRY_ROOT, "profiles_root": contract.PROFILES_ROOT,
            "models_root": contract.MODELS_ROOT, "manifest": run_dir + ".json", "run_dir": run_dir,
            "log_file": "%s/logs/%s.log" % (contract.TELEMETRY_ROOT, RUN_ID)}


@pytest.fixture(autouse=True)
def as_on_a_host(monkeypatch):
    """Warnings as a module on a host returns them (a controller plugin another test loaded would display them)."""
    from ansible.module_utils import _internal
    from ansible.module_utils.common import warnings
    monkeypatch.setattr(warnings, "_global_warnings", {})
    monkeypatch.setattr(_internal, "is_controller", False)


@pytest.fixture
def host(tmp_path):
    return HostRun(str(tmp_path))


def run(args, capsys):
    return run_module(sglang_prime_info, args, capsys, check_mode=True)  # an info module answers the same in check mode


def test_the_recorded_state_comes_from_one_call_with_host_paths(host, capsys):
    host.record("deep_gemm")
    host.record("moe_tune", status="error", ran=True, error_type="tuner_failed", message="the tuner exited with 1")
    rc, out = run({"pointer": host.pointer, "model": MODEL}, capsys)
    assert rc == 0 and out["changed"] is False
    state = out["state"]
    assert state["command"] == "report" and state["order"] == list(contract.STAGE_ORDER)
    assert state["run"]["run_id"] == RUN_ID and state["run"]["manifest"] == host.manifest
    assert state["run"]["log_file"].startswith(host.tel + "/")
    rows = state["stages"]
    assert rows["deep_gemm"]["status"] == "ok" and rows["moe_tune"]["error_type"] == "tuner_failed"
    assert all(rows[stage]["status"] == "not_run" for stage in contract.STAGE_ORDER[2:])
    # every host path the state names is on this host, where the run's records are
    assert os.path.isfile(rows["deep_gemm"]["stage_json_host"])
    assert os.path.isfile(state["prep_result_path"]) and state["prep_result"]["stages"]["deep_gemm"]["status"] == "ok"
    assert state["caches"]["profiles_root"] == host.prof
    assert set(out["signatures"]) == set(contract.STAGE_ORDER)


def test_without_a_model_the_runs_latest_model_is_read(host, capsys):
    host.record("deep_gemm")
    rc, out = run({"pointer": host.pointer, "stages": ["deep_gemm"]}, capsys)
    assert rc == 0 and out["state"]["order"] == ["deep_gemm"] and out["state"]["stages"]["deep_gemm"]["status"] == "ok"
    assert "signatures" not in out


def test_a_run_with_nothing_recorded_yet_says_so(host, capsys):
    rc, out = run({"pointer": host.pointer, "model": MODEL}, capsys)
    assert rc == 0 and out["state"]["prep_result"] is None
    assert "no stage recorded yet" in out["msg"]
    assert {row["status"] for row in out["state"]["stages"].values()} == {"not_run"}


@pytest.mark.parametrize("damage, error_type", [("missing", "bad_pointer"), ("no_host_line", "bad_pointer"),
                                                ("manifest_gone", "bad_manifest")])
def test_a_missing_or_broken_run_is_a_classified_error_without_a_traceback(host, capsys, damage, error_type):
    if damage == "missing":
        os.unlink(host.pointer)
    elif damage == "no_host_line":
        with open(host.pointer, "w") as handle:
            handle.write("%s=%s\n" % (contract.POINTER_KEY, contract_paths()["manifest"]))
    else:
        os.unlink(host.manifest)
    rc, out = run({"pointer": host.pointer}, capsys)
    assert rc == 1 and out["failed"] and out["error_type"] == error_type, out
    assert "Traceback" not in json.dumps(out) and host.pointer in out["msg"] or host.manifest in out["msg"]


def test_with_expected_uid_the_pointer_and_manifest_must_be_the_host_users(host, capsys):
    rc, out = run({"pointer": host.pointer, "expected_uid": os.getuid()}, capsys)
    assert rc == 0 and out["state"]["run"]["run_id"] == RUN_ID, out
    rc, out = run({"pointer": host.pointer, "expected_uid": os.getuid() + 1}, capsys)
    assert rc == 1 and out["error_type"] == "permissions_unexpected", out
    assert out["msg"].startswith("pointer %s is owned by " % host.pointer) and "sudo chown -R " in out["msg"], out


def test_a_pointer_naming_a_manifest_outside_its_telemetry_root_is_a_bad_pointer(host, capsys, tmp_path):
    elsewhere = str(tmp_path / "elsewhere.json")
    os.rename(host.manifest, elsewhere)
    with open(host.pointer, "w") as handle:
        handle.write("%s=%s\n%s=%s\n" % (contract.POINTER_KEY, contract_paths()["manifest"], contract.POINTER_HOST_KEY, elsewhere))
    rc, out = run({"pointer": host.pointer}, capsys)
    assert rc == 1 and out["error_type"] == "bad_pointer" and "another host root" in out["msg"], out


def test_a_model_outside_the_models_root_is_refused(host, capsys):
    rc, out = run({"pointer": host.pointer, "model": "/data/tiny-moe"}, capsys)
    assert rc == 1 and out["error_type"] == "model_not_found"


def test_a_stopped_container_still_answers_with_a_warning(host, capsys, tmp_path):
    host.record("deep_gemm")
    docker = tmp_path / "docker"
    docker.write_text("#!%s\nimport json\nprint(json.dumps({'Status': 'exited', 'Running': False, 'ExitCode': 137,"
                      " 'Error': '', 'OOMKilled': False}))\n" % sys.executable)
    docker.chmod(0o755)
    rc, out = run({"pointer": host.pointer, "model": MODEL, "container": "sglang-prep", "docker_cli": str(docker)},
                  capsys)
    assert rc == 0 and out["container_state"] == "exited, exit code 137"
    assert out["state"]["stages"]["deep_gemm"]["status"] == "ok"
    assert "container sglang-prep is not running" in json.dumps(out["warnings"])


def documented_queries():
    """The JMESPath queries docs/modules.md runs over sglang_prime_info's state (community.general.json_query)."""
    import re
    with open(os.path.join(os.path.dirname(sglang_prime_info.__file__), os.pardir, os.pardir, "docs",
                           "modules.md")) as handle:
        text = handle.read()
    found = re.findall(r"info\.state \| community\.general\.json_query\((\\\"|')(.+?)\1\)", text)
    assert len(found) == 2, found
    return [query for _quote, query in found]


def test_the_documented_jmespath_queries_answer_over_the_state(host, capsys):
    import jmespath
    host.record("deep_gemm")
    host.record("moe_tune", status="error", ran=True, error_type="tuner_failed", message="the tuner exited with 1")
    marker = host.layout.fs(contract.marker_path("moe_tune"))  # the tuner was interrupted: its cache is partial
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    with open(marker, "w") as handle:
        json.dump({"owner_pid": 1}, handle)
    failed_query, partial_query = documented_queries()
    rc, out = run({"pointer": host.pointer, "model": MODEL}, capsys)
    assert rc == 0
    ((stage, error_type, reason),) = jmespath.search(failed_query, out["state"])
    assert (stage, error_type) == ("moe_tune", "tuner_failed") and reason.startswith("moe_tune failed (tuner_failed)")
    assert jmespath.search(partial_query, out["state"]) == [
        host.layout.fs(contract.CACHES[contract.STAGE_CACHE["moe_tune"]][0])]

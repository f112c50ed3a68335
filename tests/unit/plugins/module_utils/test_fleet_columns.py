"""The fleet report's COLUMNS table: one entry makes a field of the JSON row and a column of the Markdown table,
read from the host's prime_report as it comes (the runtime's state plus the role's overlay)."""

from ansible_collections.sglang.prep.plugins.module_utils import _fleet_report as fr


def state_report(host):
    """A prime_report of the current shape: the runtime's priming state with the role's overlay on top."""
    return {
        "host": host, "status": "changed", "error_type": None, "message": None, "failed_task": None,
        "changes": ["stage deep_gemm"], "fanout": None,
        "run": {"run_id": "container-run-20261207T010203Z-0000000a", "manifest": "/m.json", "log_file": "/x.log"},
        "order": ["deep_gemm"],
        "stages": {"deep_gemm": {"stage": "deep_gemm", "status": "ok", "ran": True, "duration_s": 1.5, "error_type": None,
                                 "reprime_reasons": [], "reason": "deep_gemm ran", "cache": {"bytes": 10}}},
        "caches": {"total_bytes": 2048, "caches": {"deep_gemm": {"size": 2048, "count": 3}}},
        "aggregate": "ok", "prep_result_path": "/p.json", "signature_group": "g1",
        "gpu": {"device_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"},
        "zero_jit": None, "zero_jit_reason": None, "finished_at": "2026-12-07T01:02:03Z",
        "serve": {"status": "serving", "url": "http://gpu-1:30000"},
    }


def test_a_row_reads_the_state_where_the_runtime_put_it():
    row = fr.build_report([state_report("gpu-1")])[0]["hosts"][0]
    assert row["run_id"] == "container-run-20261207T010203Z-0000000a"
    assert row["log_file"] == "/x.log"
    assert row["cache_bytes"] == 2048 and row["prep_result_status"] == "ok"
    assert row["stages"]["deep_gemm"] == {"status": "ok", "ran": True, "duration_s": 1.5, "error_type": None, "reprime_reasons": []}
    assert "caches" not in row and "run" not in row  # per-cache and run detail stay on the host


def test_every_column_is_one_entry_and_a_new_one_touches_nothing_else(monkeypatch):
    url = fr.Column("serve_url", ("serve.url",), "serve url", lambda value: value)
    monkeypatch.setattr(fr, "COLUMNS", fr.COLUMNS + (url,))
    report, _ = fr.build_report([state_report("gpu-1"), {"host": "gpu-2", "status": "ok"}])
    rows = {row["host"]: row for row in report["hosts"]}
    assert rows["gpu-1"]["serve_url"] == "http://gpu-1:30000" and rows["gpu-2"]["serve_url"] is None
    lines = fr.render_markdown(report).splitlines()
    header = next(line for line in lines if line.startswith("| host"))
    assert header.rstrip(" |").endswith("| serve url")
    assert next(line for line in lines if line.startswith("| gpu-1")).endswith("| http://gpu-1:30000 |")
    assert next(line for line in lines if line.startswith("| gpu-2")).endswith("| - |")


def test_the_serving_column_shows_the_live_servers_zero_jit_verdict():
    served = dict(state_report("gpu-1"), serve={"status": "ok", "zero_jit": True, "port": 30000})
    failed = dict(state_report("gpu-2"), serve={"status": "error", "zero_jit": False, "error_type": "jit_at_serve_time"})
    report, _ = fr.build_report([served, failed, {"host": "gpu-3", "status": "ok"}])
    rows = {row["host"]: row for row in report["hosts"]}
    assert rows["gpu-1"]["serve"]["zero_jit"] is True and rows["gpu-3"]["serve"] is None
    lines = fr.render_markdown(report).splitlines()
    assert "| serving |" in next(line for line in lines if line.startswith("| host"))
    assert "| ok (zero JIT) |" in next(line for line in lines if line.startswith("| gpu-1"))
    assert "| error (JIT at serve time) |" in next(line for line in lines if line.startswith("| gpu-2"))


def test_the_table_header_and_each_row_have_the_same_cells():
    report, _ = fr.build_report([state_report("gpu-1")], hosts=["gpu-1", "gpu-2"])
    stages = report["stage_order"]
    width = len(fr.headers(stages))
    assert all(len(fr.cells(row, stages)) == width for row in report["hosts"])
    assert fr.headers(stages)[:5] == ["host", "status", "signature group", "GPU", "deep_gemm"]


def test_a_host_that_installed_from_the_registry_says_which_artifact_and_what_it_saved():
    digest = "sha256:" + "ab" * 32
    joined = state_report("gpu-new")
    joined["stages"]["deep_gemm"].update(status="installed", source="registry", digest=digest)
    joined["registry"] = {"source": "registry", "outcome": "installed", "installed": ["deep_gemm"], "digest": digest,
                          "source_host": "gpu-1", "builder_compile_s": 103.4, "error_type": None, "published": None}
    builder = dict(state_report("gpu-1"), registry={"outcome": "absent", "installed": [], "digest": None,
                                                    "published": {"digest": digest, "error_type": None}})
    report, _warnings = fr.build_report([builder, joined, state_report("gpu-plain")])
    row = next(r for r in report["hosts"] if r["host"] == "gpu-new")
    assert row["stages"]["deep_gemm"]["source"] == "registry" and row["stages"]["deep_gemm"]["digest"] == digest
    assert row["registry"]["builder_compile_s"] == 103.4
    section = fr.render_markdown(report).split("## Registry", 1)[1]
    assert "| gpu-new | installed | deep_gemm | %s | gpu-1 | 103.4s | - | - |" % digest[:19] in section
    assert "| gpu-1 | absent | - | - | - | - | %s | - |" % digest[:19] in section
    assert "gpu-plain" not in section
    assert "## Registry" not in fr.render_markdown(fr.build_report([state_report("gpu-plain")])[0])

"""sglang_fleet_report: the controller-side fleet report (JSON + Markdown) built from per-host prime reports."""

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils import _fleet_report as fr
from ansible_collections.sglang.prep.plugins.modules import sglang_fleet_report
from unit_support import modules
from unit_support.modules import Case, Has, cases
from unit_support.paths import REPO


def prime_report(host, status="changed", group="g-h100", device="NVIDIA H100 80GB HBM3", cc="9.0", **extra):
    report = {
        "host": host,
        "status": status,
        "failed_task": None,
        "error_type": None,
        "message": None,
        "run_id": "container-run-20261129T160102Z-%s" % host[-1].rjust(8, "0"),
        "signature_group": group,
        "gpu": {"device_name": device, "compute_capability": cc, "driver_version": "570.148.08", "cuda": "12.8"},
        "stages": {
            "deep_gemm": {"status": "ok", "ran": True, "duration_s": 2.345, "error_type": None,
                          "reprime_reasons": [{"field": "device_name", "old": "NVIDIA A100-SXM4-80GB", "new": device}]},
            "flashinfer": {"status": "noop", "ran": False, "duration_s": 0.01, "error_type": None, "reprime_reasons": []},
        },
        "cache_bytes": 3 * 1024 * 1024 + 5,
        "prep_result_path": "/home/%s/sglang-observability/telemetry/container_runs/x/prep_result.json" % host,
        "prep_result_status": "ok",
        "log_file": "/home/%s/sglang-observability/telemetry/logs/x.log" % host,
        "container": "sglang-prep",
        "changes": ["container", "deep_gemm"],
        "caches": {"deep_gemm": {"size": 1}},
    }
    report.update(extra)
    return report


ONE = prime_report("gpu-1")


def broken_report(host):
    return {
        "host": host, "status": "failed", "failed_task": "sglang.prep.prime : Verify host directories",
        "error_type": "permissions_unexpected",
        "message": "/home/u/sglang-observability/profiles is owned by root (uid 0); expected u (uid 47002) | fix: chown",
        "run_id": None, "signature_group": None, "gpu": None, "stages": {}, "cache_bytes": None, "prep_result_path": None,
    }


def run_module(args, capsys, check_mode=False):
    return modules.run_module(sglang_fleet_report, args, capsys, check_mode=check_mode)


def test_every_targeted_host_gets_a_row_and_none_is_dropped():
    report, warnings = fr.build_report(
        [prime_report("gpu-1"), broken_report("gpu-2")],
        hosts=["gpu-1", "gpu-2", "gpu-3", "gpu-10"],
        unreachable=["gpu-10"],
    )
    rows = {row["host"]: row for row in report["hosts"]}
    assert [row["host"] for row in report["hosts"]] == ["gpu-1", "gpu-2", "gpu-3", "gpu-10"]  # natural order
    assert rows["gpu-2"]["status"] == "failed" and rows["gpu-2"]["error_type"] == "permissions_unexpected"
    assert rows["gpu-3"]["status"] == "failed" and rows["gpu-3"]["error_type"] == "not_run"
    assert rows["gpu-10"]["status"] == "failed" and rows["gpu-10"]["error_type"] == "unreachable"
    assert "SSH" in rows["gpu-10"]["message"]
    for row in rows.values():
        assert row["error_type"] is None or row["error_type"] in contract.ERROR_TYPES
    assert report["summary"] == {"hosts": 4, "ok": 0, "changed": 1, "failed": 3, "other": 0,
                                 "zero_jit": {"proven": 0, "primed": 1, "jit": 0},
                                 "signature_groups": {"g-h100": {"hosts": ["gpu-1"], "device_name": ["NVIDIA H100 80GB HBM3"],
                                                                 "compute_capability": ["9.0"]}}}
    assert warnings == []


def test_reported_hosts_outside_the_target_list_are_kept():
    report, _ = fr.build_report([prime_report("extra-host")], hosts=["gpu-1"])
    assert {row["host"] for row in report["hosts"]} == {"extra-host", "gpu-1"}


def test_rows_restate_the_host_report_without_recomputing():
    source = prime_report("gpu-1", status="ok", group="abc123")
    row = fr.build_report([source])[0]["hosts"][0]
    assert row["signature_group"] == "abc123"
    assert row["run_id"] == source["run_id"]
    assert row["cache_bytes"] == source["cache_bytes"]
    assert row["stages"]["deep_gemm"]["duration_s"] == 2.345
    assert row["stages"]["flashinfer"] == {"status": "noop", "ran": False, "duration_s": 0.01, "error_type": None, "reprime_reasons": []}
    assert row["reprime_reasons"] == [{"stage": "deep_gemm", "field": "device_name", "old": "NVIDIA A100-SXM4-80GB",
                                       "new": "NVIDIA H100 80GB HBM3"}]
    assert row["prep_result_path"] == source["prep_result_path"]
    for key in ("prep_result_status", "log_file", "container", "changes"):
        assert row[key] == source[key]
    assert "caches" not in row  # per-cache detail stays on the host


def test_each_host_says_when_it_finished():
    """A fleet whose hosts run at their own pace shows it: each row and the table carry the host's finish time."""
    early = prime_report("gpu-1", finished_at="2026-11-29T16:03:10.120Z")
    late = prime_report("gpu-2", finished_at="2026-11-29T16:03:41.870Z")
    report, _ = fr.build_report([early, late])
    assert [row["finished_at"] for row in report["hosts"]] == [early["finished_at"], late["finished_at"]]
    md = fr.render_markdown(report)
    assert "| finished |" in md and "2026-11-29T16:03:41.870Z" in md


def test_missing_signature_group_is_reported_as_null_not_invented():
    source = prime_report("gpu-1")
    del source["signature_group"]
    report, _ = fr.build_report([source])
    assert report["hosts"][0]["signature_group"] is None
    assert report["summary"]["signature_groups"] == {}


def test_signature_groups_split_hosts_by_gpu():
    report, _ = fr.build_report([
        prime_report("a", group="g1"), prime_report("b", group="g1"),
        prime_report("c", group="g2", device="NVIDIA A100-SXM4-80GB", cc="8.0"),
    ])
    groups = report["summary"]["signature_groups"]
    assert groups["g1"]["hosts"] == ["a", "b"] and groups["g2"]["hosts"] == ["c"]
    assert groups["g2"]["device_name"] == ["NVIDIA A100-SXM4-80GB"] and groups["g2"]["compute_capability"] == ["8.0"]


def test_stage_columns_follow_priming_order_then_unknown_stages():
    source = prime_report("a")
    source["stages"]["zeta"] = {"status": "ok"}
    source["stages"]["inductor"] = {"status": "skipped"}
    report, _ = fr.build_report([source])
    assert report["stage_order"] == ["deep_gemm", "flashinfer", "inductor", "zeta"]


def test_duplicates_and_odd_statuses_are_warned_about():
    report, warnings = fr.build_report([prime_report("a", status="ok"), prime_report("a", status="weird")])
    assert len(report["hosts"]) == 1 and report["hosts"][0]["status"] == "weird"
    assert any("two prime reports for host a" in w for w in warnings)
    assert any("status 'weird'" in w for w in warnings)
    assert report["summary"]["other"] == 1


def test_report_without_host_is_refused():
    with pytest.raises(ValueError, match="no 'host' key"):
        fr.build_report([{"status": "ok"}])


def test_markdown_has_one_row_per_host_with_the_required_columns():
    report, _ = fr.build_report([prime_report("gpu-1"), broken_report("gpu-2")], hosts=["gpu-1", "gpu-2", "gpu-3"])
    md = fr.render_markdown(report)
    table = [line for line in md.splitlines() if line.startswith("| gpu-")]
    assert len(table) == 3
    header = md.splitlines()[md.splitlines().index(next(li for li in md.splitlines() if li.startswith("| host")))]
    for column in ("host", "status", "signature group", "deep_gemm", "flashinfer", "cache", "re-prime reasons", "error_type"):
        assert column in header
    cells = [c.strip() for c in table[0].strip("|").split("|")]
    assert cells[:3] == ["gpu-1", "changed", "g-h100"]
    assert "ok 2.3s" in cells and "noop 0.0s" in cells
    assert "3.0 MiB (3145733 B)" in cells
    assert "deep_gemm: device_name: NVIDIA A100-SXM4-80GB -> NVIDIA H100 80GB HBM3" in cells
    broken = [c.strip() for c in table[1].split(" | ")]
    assert broken[-1].rstrip(" |") == "permissions_unexpected"
    assert "**gpu-3**: not_run" in md
    # a pipe inside a message must not break the table
    assert "\\| fix: chown" in md
    assert "3 hosts: 1 changed, 0 ok, 2 failed; 1 signature groups. Zero JIT proven on 0 of 1 primed hosts." in md


def test_zero_jit_is_a_column_and_a_fleet_total_of_hosts_proven_over_hosts_primed():
    proven = "yes: 49 requests (...), no cache grew, no JIT log line"
    report, _ = fr.build_report([
        prime_report("gpu-1", zero_jit=True, zero_jit_reason=proven),
        prime_report("gpu-2", status="ok", zero_jit=True, zero_jit_reason=proven),
        prime_report("gpu-3", status="failed", error_type="jit_at_serve_time", zero_jit=False,
                     zero_jit_reason="no: triton: 14 files (fused_moe_kernel) ..."),
        prime_report("gpu-4", status="ok"),  # primed without a serve check: no verdict
        broken_report("gpu-5")])
    rows = {row["host"]: row for row in report["hosts"]}
    assert rows["gpu-1"]["zero_jit"] is True and rows["gpu-1"]["zero_jit_reason"] == proven
    assert rows["gpu-3"]["zero_jit"] is False and rows["gpu-4"]["zero_jit"] is None and rows["gpu-5"]["zero_jit"] is None
    assert report["summary"]["zero_jit"] == {"proven": 2, "primed": 3, "jit": 1}
    md = fr.render_markdown(report)
    assert "Zero JIT proven on 2 of 3 primed hosts; JIT at serve time on 1." in md
    header = [c.strip() for c in next(li for li in md.splitlines() if li.startswith("| host")).strip("|").split("|")]
    column = header.index("zero JIT")
    cells = dict((li.split("|")[1].strip(), [c.strip() for c in li.strip("|").split("|")][column])
                 for li in md.splitlines() if li.startswith("| gpu-"))
    assert cells == {"gpu-1": "yes", "gpu-2": "yes", "gpu-3": "no", "gpu-4": "-", "gpu-5": "-"}


def test_module_writes_stamped_and_latest_files(tmp_path, capsys):
    args = {"reports": [prime_report("gpu-1"), broken_report("gpu-2")], "hosts": ["gpu-1", "gpu-2"],
            "report_dir": str(tmp_path / "reports"), "context": {"model": "/models/tiny-moe"}}
    code, out = run_module(args, capsys)
    assert code == 0 and out["changed"] is True
    stamped_json, stamped_md = out["json_path"], out["markdown_path"]
    assert os.path.basename(stamped_json).startswith("fleet-report-") and stamped_json.endswith("Z.json")
    with open(stamped_json) as handle:
        on_disk = json.load(handle)
    assert on_disk == out["report"]
    assert on_disk["context"] == {"model": "/models/tiny-moe"}
    with open(stamped_md) as handle:
        assert handle.read() == out["markdown"]
    with open(out["latest_json_path"]) as handle:
        assert json.load(handle) == on_disk
    with open(out["latest_markdown_path"]) as handle:
        assert handle.read() == out["markdown"]
    assert [row["host"] for row in out["table"]] == ["gpu-1", "gpu-2"]

    # a second report in the same second gets its own file; the first one is kept
    code, again = run_module(args, capsys)
    assert code == 0 and again["json_path"] != stamped_json and os.path.exists(stamped_json)
    assert sorted(os.listdir(tmp_path / "reports")) == sorted(
        [os.path.basename(p) for p in (stamped_json, stamped_md, again["json_path"], again["markdown_path"])]
        + ["fleet-report-latest.json", "fleet-report-latest.md"])


def test_a_later_batch_rewrites_the_report_of_its_run(tmp_path, capsys):
    """Serial batches: each rewrites the one time-stamped report of the run, with every host seen so far."""
    report_dir = str(tmp_path / "reports")
    first = {"reports": [prime_report("gpu-1")], "hosts": ["gpu-1", "gpu-2", "gpu-3"], "report_dir": report_dir}
    code, out = run_module(first, capsys)
    assert code == 0 and out["name"] == os.path.basename(out["json_path"])[:-len(".json")]
    assert {row["host"]: row["error_type"] for row in out["table"]} == {"gpu-1": None, "gpu-2": "not_run", "gpu-3": "not_run"}
    later = dict(first, reports=[prime_report("gpu-1"), broken_report("gpu-2")], name=out["name"])
    code, again = run_module(later, capsys)
    assert code == 0 and again["json_path"] == out["json_path"] and again["name"] == out["name"]
    assert sorted(os.listdir(report_dir)) == sorted([out["name"] + ".json", out["name"] + ".md",
                                                     "fleet-report-latest.json", "fleet-report-latest.md"])
    with open(out["json_path"]) as handle:
        on_disk = json.load(handle)
    assert {row["host"]: row["error_type"] for row in on_disk["hosts"]} == {
        "gpu-1": None, "gpu-2": "permissions_unexpected", "gpu-3": "not_run"}
    assert "did not reach it" in on_disk["hosts"][2]["message"]


@cases(*[
    Case("the name %s is refused" % name, {"reports": [], "report_dir": "{tmp}", "name": name}, rc=1,
         result={"msg": Has("is not the name of a fleet report")})
    for name in ("../../etc/passwd", "fleet-report-latest", "fleet-report-20261129T160211Z/x")
] + [
    Case("a report without host is refused", {"reports": [{"status": "ok"}], "report_dir": "{tmp}"}, rc=1,
         result={"msg": Has("no 'host' key")}),
    Case("a negative keep is refused", {"reports": [], "report_dir": "{tmp}", "keep": -1}, rc=1,
         result={"msg": Has("keep must be 0")}),
    Case("an unwritable report dir names path and owner", {"reports": [ONE], "report_dir": "{tmp}/not-a-dir/reports"},
         rc=1, result={"failed": True, "msg": Has("{tmp}/not-a-dir/reports", "owned by", "this runs as")}),
    Case("check mode builds the report and writes nothing", {"reports": [ONE], "report_dir": "{tmp}/reports"},
         check_mode=True, result={"report": {"summary": {"hosts": 1}}, "markdown": Has("| gpu-1 |")}),
])
def test_module_input(case, tmp_path, capsys):
    (tmp_path / "not-a-dir").write_text("x")
    case.check(sglang_fleet_report, capsys, tmp=tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["not-a-dir"]  # nothing written


def test_reprime_reasons_are_short_in_the_table_and_complete_in_the_json():
    first = {"field": "signature", "old": None, "new": "no signature at /profiles/x/signature.json: the stage has not completed"}
    source = prime_report("gpu-1")
    source["stages"] = {
        "deep_gemm": {"status": "ok", "reprime_reasons": [first]},
        "moe_tune": {"status": "ok", "reprime_reasons": [first]},
        "inductor": {"status": "ok", "reprime_reasons": [{"field": "driver_version", "old": "550.54", "new": "570.148.08"},
                                                          {"field": "in_progress_marker", "old": {"owner_pid": 7}, "new": None}]},
    }
    report, _ = fr.build_report([source])
    assert report["hosts"][0]["reprime_reasons"][0] == dict(first, stage="deep_gemm")
    assert len(report["hosts"][0]["reprime_reasons"]) == 4
    md = fr.render_markdown(report)
    assert ("deep_gemm, moe_tune: no signature recorded; inductor: driver_version: 550.54 -> 570.148.08; "
            "inductor: an earlier run did not finish") in md
    assert "/profiles/x/signature.json" not in md


# ---------------------------------------------------------------- retention (keep) and check mode

def make_reports(report_dir, names):
    os.makedirs(report_dir, exist_ok=True)
    for name in names:
        for ext in (".json", ".md"):
            with open(os.path.join(report_dir, name + ext), "w") as handle:
                handle.write("{}" if ext == ".json" else "# old\n")


OLD = ["fleet-report-20261101T000000Z", "fleet-report-20261102T000000Z", "fleet-report-20261102T000000Z-2",
       "fleet-report-20261102T000000Z-10", "fleet-report-20261103T120000Z"]


def test_keep_deletes_the_oldest_report_pairs_and_nothing_else(tmp_path, capsys):
    report_dir = str(tmp_path / "reports")
    make_reports(report_dir, OLD)
    others = ["fleet-report-latest.json", "fleet-report-latest.md", "notes.md", "fleet-report-old.json",
              "fleet-report-20261101T000000Z.json.bak", ".fleet-report-20261101T000000Z.json.tmp", "fleet-report-20261101T000000Z.txt"]
    for name in others:
        with open(os.path.join(report_dir, name), "w") as handle:
            handle.write("keep me")
    os.mkdir(os.path.join(report_dir, "fleet-report-20200101T000000Z.json"))  # not a regular file
    os.symlink(os.path.join(report_dir, "notes.md"), os.path.join(report_dir, "fleet-report-20200102T000000Z.md"))

    code, out = run_module({"reports": [prime_report("gpu-1")], "report_dir": report_dir, "keep": 3}, capsys)
    assert code == 0 and out["written"] is True
    # kept: the new report and the two newest old ones (-10 is newer than -2 within one second)
    expected_pruned = [os.path.join(report_dir, n + ext) for n in
                       ("fleet-report-20261101T000000Z", "fleet-report-20261102T000000Z", "fleet-report-20261102T000000Z-2")
                       for ext in (".json", ".md")]
    assert out["pruned"] == expected_pruned
    remaining = set(os.listdir(report_dir))
    assert {out["name"] + ".json", out["name"] + ".md", "fleet-report-20261102T000000Z-10.json",
            "fleet-report-20261103T120000Z.md"} <= remaining
    for name in others + ["fleet-report-20200101T000000Z.json", "fleet-report-20200102T000000Z.md"]:
        assert name in remaining, name
    with open(os.path.join(report_dir, "fleet-report-latest.json")) as handle:
        assert json.load(handle) == out["report"]  # latest is rewritten, never pruned
    assert not any(os.path.join(report_dir, n) in out["pruned"] for n in others)


def test_keep_zero_keeps_every_report(tmp_path, capsys):
    report_dir = str(tmp_path / "reports")
    make_reports(report_dir, OLD)
    code, out = run_module({"reports": [prime_report("gpu-1")], "report_dir": report_dir, "keep": 0}, capsys)
    assert code == 0 and out["pruned"] == []
    assert len([n for n in os.listdir(report_dir) if n.startswith("fleet-report-2")]) == 2 * (len(OLD) + 1)


def test_keep_one_leaves_only_the_report_just_written(tmp_path, capsys):
    report_dir = str(tmp_path / "reports")
    make_reports(report_dir, OLD)
    code, out = run_module({"reports": [prime_report("gpu-1")], "report_dir": report_dir, "keep": 1}, capsys)
    assert code == 0 and len(out["pruned"]) == 2 * len(OLD)
    assert sorted(os.listdir(report_dir)) == sorted([out["name"] + ".json", out["name"] + ".md",
                                                     "fleet-report-latest.json", "fleet-report-latest.md"])


def test_a_rewritten_report_is_kept_even_when_newer_names_exist(tmp_path, capsys):
    """The report of this run stays, whatever its stamp (a clock that went back, a later batch rewriting it)."""
    report_dir = str(tmp_path / "reports")
    make_reports(report_dir, OLD)
    args = {"reports": [prime_report("gpu-1")], "report_dir": report_dir, "keep": 2, "name": "fleet-report-20261101T000000Z"}
    code, out = run_module(args, capsys)
    assert code == 0 and out["name"] == "fleet-report-20261101T000000Z"
    assert sorted(n for n in os.listdir(report_dir) if n.startswith("fleet-report-2")) == sorted(
        ["fleet-report-20261101T000000Z.json", "fleet-report-20261101T000000Z.md",
         "fleet-report-20261103T120000Z.json", "fleet-report-20261103T120000Z.md"])


def test_a_report_that_cannot_be_deleted_is_a_warning_not_a_failure(tmp_path, capsys, monkeypatch):
    report_dir = str(tmp_path / "reports")
    make_reports(report_dir, OLD[:2])
    stuck = os.path.join(report_dir, OLD[0] + ".json")
    real_remove = os.remove

    def remove(path):
        if path == stuck:
            raise PermissionError(13, "Permission denied")
        real_remove(path)

    warnings = []
    monkeypatch.setattr(fr.os, "remove", remove)
    monkeypatch.setattr(sglang_fleet_report.AnsibleModule, "warn", lambda self, msg: warnings.append(msg))
    code, out = run_module({"reports": [prime_report("gpu-1")], "report_dir": report_dir, "keep": 1}, capsys)
    assert code == 0 and out["written"] is True
    assert stuck not in out["pruned"] and os.path.join(report_dir, OLD[0] + ".md") in out["pruned"]
    assert any(stuck in w and "Permission denied" in w for w in warnings), warnings
    assert os.path.exists(stuck)


def test_check_mode_neither_writes_nor_prunes(tmp_path, capsys):
    report_dir = str(tmp_path / "reports")
    make_reports(report_dir, OLD)
    before = sorted(os.listdir(report_dir))
    code, out = run_module({"reports": [prime_report("gpu-1")], "report_dir": report_dir, "keep": 1}, capsys, check_mode=True)
    assert code == 0 and out["written"] is False and out["pruned"] == []
    assert "| gpu-1 |" in out["markdown"]
    assert sorted(os.listdir(report_dir)) == before


def test_prune_sorts_by_stamp_then_same_second_suffix():
    names = ["fleet-report-20261102T000000Z-10", "fleet-report-20261102T000000Z", "fleet-report-20261101T235959Z",
             "fleet-report-20261102T000000Z-2"]
    assert sorted(names, key=fr._name_key) == ["fleet-report-20261101T235959Z", "fleet-report-20261102T000000Z",
                                               "fleet-report-20261102T000000Z-2", "fleet-report-20261102T000000Z-10"]


# ---------------------------------------------------------------- role sglang.prep.fleet_report (ansible-playbook, controller only)

ROLE_PLAY = """
- name: Fleet report from a prime_report
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Leave a prime report
      ansible.builtin.set_fact:
        prime_report: {host: localhost, status: ok}
    - name: Write the fleet report
      ansible.builtin.include_role:
        name: sglang.prep.fleet_report
      vars:
        fleet_report_hosts: [localhost]
        fleet_report_probe_missing: false
"""


def run_role(tmp_path, *extra):
    playbook = tmp_path / "report.yml"
    playbook.write_text(ROLE_PLAY)
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\ncollections_path = %s\n" % os.path.join(REPO, "collections"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "SGLANG_PREP_"))}
    env.update(ANSIBLE_CONFIG=str(config), ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", ",", str(playbook),
            "-e", "fleet_report_dir=%s" % (tmp_path / "reports")] + list(extra)
    proc = subprocess.run(argv, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def stamped(tmp_path):
    report_dir = tmp_path / "reports"
    return sorted(n for n in os.listdir(report_dir) if n.startswith("fleet-report-2")) if report_dir.exists() else []


def test_role_in_check_mode_shows_the_table_and_writes_nothing(tmp_path):
    out = run_role(tmp_path, "--check")
    assert "| localhost | ok |" in out and "Not written (check mode" in out, out
    assert not (tmp_path / "reports").exists()


def test_role_in_check_mode_writes_when_asked(tmp_path):
    out = run_role(tmp_path, "--check", "-e", "fleet_report_in_check_mode=true")
    assert "Written: " in out, out
    assert len(stamped(tmp_path)) == 2 and (tmp_path / "reports" / "fleet-report-latest.json").exists()


def test_role_keeps_the_newest_reports(tmp_path):
    make_reports(str(tmp_path / "reports"), OLD)
    out = run_role(tmp_path, "-e", "fleet_report_keep=2")
    assert "removed 8 older report file(s), keeping the newest 2" in out, out
    names = stamped(tmp_path)
    assert len(names) == 4 and "fleet-report-20261103T120000Z.json" in names, names
    run_role(tmp_path)  # the default keeps 10: nothing more is removed
    assert len(stamped(tmp_path)) == 6


def test_fanout_groups_count_what_moved_and_what_was_not_compiled():
    """-e prime_fanout=true: per group the builder, who installed, who primed itself, bytes, times, compiles avoided."""
    def report(host, role, installed=(), moved=None, group="g1", builder="a"):
        fanout = {"group": group, "role": role, "builder": builder, "bundle_digest": "d" * 64 if role == "builder" else None,
                  "bytes_moved": moved, "transfer_s": 1.5 if installed else None, "install_s": 0.5 if installed else None,
                  "installed": list(installed), "error_type": None, "message": None,
                  "transfer": "ssh" if role == "receiver" else None}
        return {"host": host, "status": "changed", "fanout": fanout}
    reports = [report("a", "builder"), report("b", "receiver", ["deep_gemm", "moe_tune"], 1000),
               report("c", "receiver", ["deep_gemm", "moe_tune"], 1000), report("d", "receiver"),
               report("e", "alone", group="g2", builder="e")]
    built, _warnings = fr.build_report(reports)
    groups = built["summary"]["fanout"]
    assert groups["g1"] == {"builder": "a", "receivers": ["b", "c", "d"], "installed_on": ["b", "c"], "primed_itself": ["d"],
                            "bytes_moved": 2000, "transfer_s": 3.0, "install_s": 1.0, "compiles_avoided": 4,
                            "bundle_digest": "d" * 64, "transfer": "ssh"}
    assert groups["g2"]["builder"] == "e" and groups["g2"]["receivers"] == []
    markdown = fr.render_markdown(built)
    assert "## Fan-out" in markdown and "| g1 | a | b, c, d | b, c | d |" in markdown
    assert "| 3.0s (ssh) | 1.0s | 4 |" in markdown, markdown
    # without fan-out the report has no fan-out section
    plain, _warnings = fr.build_report([{"host": "a", "status": "ok"}])
    assert "fanout" not in plain["summary"] and "## Fan-out" not in fr.render_markdown(plain)

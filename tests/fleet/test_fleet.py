"""Fleet scenario: three SSH hosts (distinct users, UIDs, homes and containers) primed in parallel.

fleet1 (H100) and fleet3 (A100) are healthy; fleet2 (H100) starts with a profiles/ directory owned by
root, as after a stray `sudo mkdir`, and an extra inventory host (fleet-down) has no sshd at all.
The order of the tests is the order of an operator's day: prime, read the report, fix the broken
host, re-prime, then prime the host alone after it broke again, and try a one-host-at-a-time rollout
against it. Every run, however Ansible ends it, leaves a fleet report that lists every host truthfully.
"""

import datetime
import json
import os
import pwd
import subprocess

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract

HEALTHY = ("fleet1", "fleet3")
BROKEN = "fleet2"
DOWN = "fleet-down"


def docker(*args):
    return subprocess.run(["docker"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def rows(report):
    return {row["host"]: row for row in report["hosts"]}


def cache_bytes_on_disk(profiles_root):
    """Bytes in the cache directories under a host's profiles/ (walked here, independently of the runtime)."""
    total = 0
    for container_path, _env in contract.CACHES.values():
        top = os.path.join(profiles_root, os.path.relpath(container_path, contract.PROFILES_ROOT))
        for root, _dirs, files in os.walk(top):
            total += sum(os.lstat(os.path.join(root, name)).st_size for name in files)
    return total


def assert_row_matches_host_files(fleet, row):
    """A report row says what the host's own prep_result.json (and its disk) says.

    A stage that ran in this play is in prep_result.json as the row shows it. A stage with nothing to do
    (noop or skipped: the plan found it primed, or not applicable, and recorded in this run) did not run
    at all, so prep_result.json keeps the record of the run that primed it (or skipped it).
    """
    host = fleet.hosts[row["host"]]
    path = row["prep_result_path"]
    assert path and path.startswith(fleet.host_root(row["host"]) + "/telemetry/container_runs/"), row
    prep = read_json(path)
    run = prep["run"]
    assert row["run_id"] == run["run_id"]
    assert row["signature_group"] and row["signature_group"] == run["signature_group"]
    assert row["gpu"]["device_name"] == run["device_name"] == host["gpu"]["SGLANG_STANDIN_GPU_NAME"]
    assert row["gpu"]["compute_capability"] == run["compute_capability"]
    assert set(row["stages"]) == set(prep["stages"]) and row["stages"]
    for name, cell in row["stages"].items():
        stage = prep["stages"][name]
        assert stage["run_id"] == row["run_id"]
        if cell["status"] in ("noop", "skipped") and not cell["ran"]:
            recorded = ("skipped",) if cell["status"] == "skipped" else ("ok", "noop")
            assert stage["status"] in recorded, (row["host"], name, stage["status"])
            assert cell["status"] == "skipped" or cell["reprime_reasons"] == [], (row["host"], name, cell)
            continue
        for key in ("status", "ran", "duration_s", "error_type"):
            assert cell[key] == stage[key], (row["host"], name, key, cell[key], stage[key])
        assert cell["reprime_reasons"] == stage["reprime_reasons"]
    assert row["cache_bytes"] == cache_bytes_on_disk(os.path.join(fleet.host_root(row["host"]), "profiles")) > 0
    return prep


def files_changed_since(root, moment):
    """Files under root modified at or after a wall-clock moment."""
    changed = []
    for base, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            if os.lstat(path).st_mtime >= moment:
                changed.append(path)
    return changed


def assert_markdown_lists(fleet, report, expected_error_types):
    with open(os.path.join(fleet.report_dir, "fleet-report-latest.md")) as handle:
        md = handle.read()
    table = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| host ")}
    for row in report["hosts"]:
        line = table[row["host"]]
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert cells[1] == row["status"]
        assert cells[2] == (row["signature_group"] or "-")
        assert cells[-1] == (row["error_type"] or "-")
    for host, error_type in expected_error_types.items():
        assert table[host].rstrip().endswith("| %s |" % error_type)


def files_not_owned_by(root, uid):
    bad = []
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(base, name)
            if os.lstat(path).st_uid != uid:
                bad.append(path)
    return bad


def container_state(name):
    proc = docker("inspect", "--format", "{{.Id}} {{.State.Running}} {{.State.StartedAt}}", name)
    return proc.stdout.strip() if proc.returncode == 0 else None


@pytest.fixture(scope="module")
def down_inventory(fleet, tmp_path_factory):
    """An extra host nobody answers for: it must show up in the report as unreachable, never dropped."""
    path = tmp_path_factory.mktemp("down") / "down.yml"
    path.write_text(
        "all:\n  children:\n    sglang_nodes:\n      hosts:\n"
        "        %s:\n          ansible_host: 127.0.0.19\n          ansible_user: sgfleet-nobody\n" % DOWN)
    return str(path)


@pytest.fixture(scope="module")
def first_run(fleet, down_inventory):
    fleet.fresh()  # unprimed hosts, whatever an earlier module of the tier left
    profiles = os.path.join(fleet.host_root(BROKEN), "profiles")
    os.mkdir(profiles)  # created by root: the classic mistake the role must catch, not fix
    run = fleet.prime(inventories=[down_inventory])
    return run, fleet.latest_report()


@pytest.fixture(scope="module")
def second_run(fleet, first_run):
    host = fleet.hosts[BROKEN]
    os.chown(os.path.join(fleet.host_root(BROKEN), "profiles"), host["uid"], host["uid"])  # the operator's fix
    run = fleet.prime()
    return run, fleet.latest_report()


def test_broken_host_fails_alone_and_the_others_finish(fleet, first_run):
    run, _ = first_run
    assert run.rc != 0, run.tail()
    for name in HEALTHY:
        assert run.recap[name]["failed"] == 0 and run.recap[name]["unreachable"] == 0, run.tail()
        assert run.recap[name]["changed"] > 0, run.tail()
        assert container_state(fleet.hosts[name]["container"]).split()[1] == "true"
    assert run.recap[BROKEN]["failed"] == 1 and run.recap[BROKEN]["changed"] == 0, run.tail()
    assert run.recap[DOWN]["unreachable"] == 1, run.tail()
    # fast: it stopped at the directory check, before anything was created or started
    assert container_state(fleet.hosts[BROKEN]["container"]) is None
    assert sorted(os.listdir(fleet.host_root(BROKEN))) == ["models", "profiles"]
    # the report was written once, from the hosts' own tasks, before the failed hosts were failed
    assert run.output.count("TASK [sglang.prep.fleet_report : Fleet report | Write the fleet report on the controller]") == 1, run.tail()


def test_broken_host_reports_its_classified_reason(fleet, first_run):
    _, report = first_run
    row = rows(report)[BROKEN]
    profiles = os.path.join(fleet.host_root(BROKEN), "profiles")
    assert row["status"] == "failed"
    assert row["error_type"] == "permissions_unexpected"
    assert profiles in row["message"]
    assert "root (uid 0)" in row["message"] and "sgfleet2 (uid 47002)" in row["message"]
    assert row["run_id"] is None and row["prep_result_path"] is None and row["changes"] == []
    assert "Nothing was changed" in row["message"]
    assert not os.path.exists(os.path.join(fleet.host_root(BROKEN), "telemetry"))


def test_report_lists_every_host_truthfully(fleet, first_run):
    _, report = first_run
    by_host = rows(report)
    assert sorted(by_host) == ["fleet-down", "fleet1", "fleet2", "fleet3"]
    for name in HEALTHY:
        assert by_host[name]["status"] == "changed"
        prep = assert_row_matches_host_files(fleet, by_host[name])
        assert prep["status"] == "ok"
    assert by_host[DOWN]["status"] == "failed" and by_host[DOWN]["error_type"] == "unreachable"
    assert "could not reach fleet-down" in by_host[DOWN]["message"]
    assert report["summary"]["hosts"] == 4 and report["summary"]["changed"] == 2 and report["summary"]["failed"] == 2
    assert report["context"]["model"] == "/models/tiny-moe"
    assert_markdown_lists(fleet, report, {BROKEN: "permissions_unexpected", DOWN: "unreachable"})
    stamped = [n for n in os.listdir(fleet.report_dir) if n.startswith("fleet-report-2") and n.endswith(".json")]
    assert len(stamped) == 1 and read_json(os.path.join(fleet.report_dir, stamped[0])) == report


def test_different_gpus_fall_into_different_signature_groups(first_run):
    _, report = first_run
    by_host = rows(report)
    assert by_host["fleet1"]["gpu"]["device_name"] == "NVIDIA H100 80GB HBM3"
    assert by_host["fleet3"]["gpu"]["device_name"] == "NVIDIA A100-SXM4-80GB"
    assert by_host["fleet1"]["signature_group"] != by_host["fleet3"]["signature_group"]
    assert sorted(report["summary"]["signature_groups"]) == sorted([by_host["fleet1"]["signature_group"], by_host["fleet3"]["signature_group"]])


def test_hosts_prime_at_the_same_time(first_run):
    """Forks, not a queue: the healthy hosts' priming runs overlap in time (from their own prep_result.json)."""
    _, report = first_run
    spans = []
    for name in HEALTHY:
        run = read_json(rows(report)[name]["prep_result_path"])["run"]
        spans.append([datetime.datetime.strptime(run[k], "%Y-%m-%dT%H:%M:%S.%fZ") for k in ("started_at", "finished_at")])
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans


def test_each_container_writes_as_its_host_user(fleet, first_run):
    for name in HEALTHY:
        host = fleet.hosts[name]
        proc = docker("exec", host["container"], "id", "-u", contract.DEVUSER)
        assert proc.stdout.strip() == str(host["uid"]), proc.stderr
        assert pwd.getpwnam(host["user"]).pw_uid == host["uid"]
        for sub in ("telemetry", "profiles"):
            assert files_not_owned_by(os.path.join(fleet.host_root(name), sub), host["uid"]) == []


def test_rerun_after_the_fix_touches_only_the_fixed_host(fleet, first_run, second_run):
    run, report = second_run
    assert run.rc == 0, run.tail()
    # nothing to do is nothing written: the primed hosts' records stay those of the run that primed them
    for name in HEALTHY:
        assert files_changed_since(os.path.join(fleet.host_root(name), "telemetry", "container_runs"), run.started_at) == []
    assert run.recap[BROKEN]["changed"] > 0 and run.recap[BROKEN]["failed"] == 0, run.tail()
    for name in HEALTHY:
        assert run.recap[name]["changed"] == 0 and run.recap[name]["failed"] == 0, run.tail()
    by_host = rows(report)
    first = rows(first_run[1])
    assert sorted(by_host) == ["fleet1", "fleet2", "fleet3"]
    assert by_host[BROKEN]["status"] == "changed" and by_host[BROKEN]["error_type"] is None
    for name in HEALTHY:
        row = by_host[name]
        assert row["status"] == "ok"
        assert row["run_id"] == first[name]["run_id"]  # same container, same run
        assert {cell["status"] for cell in row["stages"].values()} <= {"noop", "skipped"}
        assert not any(cell["ran"] for cell in row["stages"].values())
    for name in ("fleet1", "fleet2", "fleet3"):
        assert_row_matches_host_files(fleet, by_host[name])
    # the fixed H100 host joins the other H100 host's group; the A100 host stays apart
    assert by_host["fleet1"]["signature_group"] == by_host["fleet2"]["signature_group"] != by_host["fleet3"]["signature_group"]
    assert_markdown_lists(fleet, report, {})


def test_the_fleet_serves_one_host_at_a_time_with_serial_1(fleet, second_run):
    # every host primed (second_run): serve.yml honours sglang_prep_serial like prime, one batch per host
    run = fleet.serve("-e", "sglang_prep_serial=1")
    assert run.rc == 0, run.tail()
    assert run.output.count("PLAY [Serve SGLang hosts]") == 3, run.tail()
    assert run.output.count("zero JIT on the live server: yes") == 3, run.tail()
    for name in fleet.hosts:
        assert run.recap[name]["failed"] == 0 and run.recap[name]["changed"] >= 1, run.tail()
    again = fleet.serve("-e", "sglang_prep_serial=1")
    assert again.rc == 0 and all(again.recap[name]["changed"] == 0 for name in fleet.hosts), again.tail()


@pytest.fixture
def broken_again(fleet, second_run):
    """fleet2's profiles/ now belongs to another host user (fleet3's); fixed again afterwards."""
    profiles = os.path.join(fleet.host_root(BROKEN), "profiles")
    other = fleet.hosts["fleet3"]
    os.chown(profiles, other["uid"], other["uid"])
    yield profiles
    host = fleet.hosts[BROKEN]
    os.chown(profiles, host["uid"], host["uid"])


def test_a_one_host_run_that_fails_still_writes_its_report(fleet, broken_again):
    """Every host of the batch failed, so Ansible stops the playbook; the report is written all the same."""
    before = fleet.stamped_reports()
    run = fleet.prime("--limit", BROKEN)  # no localhost in the limit: the report needs none
    assert run.rc != 0 and run.recap[BROKEN]["failed"] == 1, run.tail()
    assert sorted(run.recap) == [BROKEN], run.tail()
    assert len(fleet.stamped_reports()) == len(before) + 1
    report = fleet.latest_report()
    assert [row["host"] for row in report["hosts"]] == [BROKEN]
    row = report["hosts"][0]
    assert row["status"] == "failed" and row["error_type"] == "permissions_unexpected"
    assert "owner sgfleet3 (uid 47003), expected sgfleet2 (uid 47002)" in row["message"]
    assert report["summary"]["failed"] == 1 and report["summary"]["hosts"] == 1


def test_serial_rollout_stops_after_the_failing_batch(fleet, broken_again):
    other = fleet.hosts["fleet3"]
    before = container_state(other["container"])
    reports_before = fleet.stamped_reports()
    run = fleet.prime("-e", "sglang_prep_serial=1", "-e", "sglang_prep_max_fail_percentage=0")
    assert run.rc != 0, run.tail()
    # batches of one host in inventory order: fleet1 (nothing to do), fleet2 (fails), then Ansible stops
    assert run.output.count("PLAY [Prime SGLang hosts]") == 2, run.tail()
    assert run.recap["fleet1"]["failed"] == 0 and run.recap["fleet1"]["changed"] == 0, run.tail()
    assert run.recap[BROKEN]["failed"] == 1, run.tail()
    assert "fleet3" not in run.recap, run.tail()
    assert container_state(other["container"]) == before
    assert "owner sgfleet3 (uid 47003), expected sgfleet2 (uid 47002)" in run.output

    # the report of the stopped rollout: one new report (each batch rewrote it), every host truthfully
    assert len(fleet.stamped_reports()) == len(reports_before) + 1, fleet.stamped_reports()
    report = fleet.latest_report()
    stamped = read_json(os.path.join(fleet.report_dir, fleet.stamped_reports()[-1]))
    assert stamped == report
    by_host = rows(report)
    assert sorted(by_host) == ["fleet1", "fleet2", "fleet3"]
    assert by_host["fleet1"]["status"] == "ok" and by_host["fleet1"]["error_type"] is None
    assert {cell["status"] for cell in by_host["fleet1"]["stages"].values()} <= {"noop", "skipped"}
    assert_row_matches_host_files(fleet, by_host["fleet1"])
    assert by_host[BROKEN]["status"] == "failed" and by_host[BROKEN]["error_type"] == "permissions_unexpected"
    assert "owner sgfleet3 (uid 47003)" in by_host[BROKEN]["message"]
    assert by_host["fleet3"]["status"] == "failed" and by_host["fleet3"]["error_type"] == "not_run"
    assert by_host["fleet3"]["run_id"] is None and by_host["fleet3"]["stages"] == {}
    assert report["summary"]["hosts"] == 3 and report["summary"]["ok"] == 1 and report["summary"]["failed"] == 2
    assert_markdown_lists(fleet, report, {BROKEN: "permissions_unexpected", "fleet3": "not_run"})

#!/usr/bin/env python3
"""Fleet benchmark: wall time to prime 1 fresh host vs N fresh hosts in parallel (run as root).

Uses the SSH test hosts of scripts/fleet_hosts.py (local users on loopback addresses, GPU stand-ins,
the stand-in image). Both runs start from fresh hosts (no container, empty caches), so the ratio
N-host time / 1-host time shows what parallel priming costs: 1.0 is perfectly parallel, N would be
one host after the other.

    scripts/bench_fleet.py [--hosts N] [--stages deep_gemm moe_tune ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import fleet_hosts  # noqa: E402

MODEL_DIR = os.path.join(REPO, "tests", "standins", "models", "tiny-moe")
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


def prime(inventory, report_dir, extra, limit=None):
    # extra may name more inventories ("-i", path): they come before the playbook like the first one
    argv = [os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", inventory, os.path.join(REPO, "playbooks", "prime.yml"),
            "-e", "model=/models/" + os.path.basename(MODEL_DIR)] + extra
    if limit:
        argv += ["--limit", limit]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1", SGLANG_PREP_REPORT_DIR=report_dir)
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    seconds = time.monotonic() - started
    recap = {m.group(1): m.groups()[1:] for m in map(RECAP.match, proc.stdout.splitlines()) if m}
    bad = [h for h, (_changed, unreachable, failed) in recap.items() if unreachable != "0" or failed != "0"]
    if proc.returncode != 0 or bad:
        sys.stderr.write(proc.stdout[-4000:])
        raise SystemExit("bench_fleet: priming failed (exit %d, hosts %s)" % (proc.returncode, ", ".join(bad) or "-"))
    return seconds


def fresh(fleet):
    for host in fleet:
        fleet_hosts.clean_host(host)
        fleet_hosts.stage_model(host, MODEL_DIR)


@contextlib.contextmanager
def fresh_fleet(hosts):
    """`hosts` fresh SSH test hosts (as root), taken down afterwards: fleet_hosts.up's status."""
    if os.geteuid() != 0:
        raise SystemExit("bench_fleet: run as root: the fleet bench creates local users and an sshd")
    try:
        with fleet_hosts.session("the fleet bench"):
            status = fleet_hosts.up(count=hosts, clean=True, model_dir=MODEL_DIR, image=fleet_hosts.pinned_image())
            try:
                yield status
            finally:
                fleet_hosts.down(count=hosts)
    except fleet_hosts.FleetError as exc:
        raise SystemExit("bench_fleet: %s" % exc)


def measure(hosts=3, stages=None):
    """Prime 1 fresh host, then `hosts` fresh hosts in parallel; wall times and their ratio."""
    extra = ["-e", json.dumps({"prime_stages": stages})] if stages else []
    with fresh_fleet(hosts) as status, tempfile.TemporaryDirectory(prefix="sglang-prep-bench-") as report_dir:
        fleet = status["hosts"]
        log("priming 1 fresh host (%s) ..." % fleet[0]["name"])
        one = prime(status["inventory"], report_dir, extra, limit=fleet[0]["name"] + ",localhost")  # the report play too
        fresh(fleet)
        log("priming %d fresh hosts in parallel ..." % len(fleet))
        many = prime(status["inventory"], report_dir, extra)
    return {"hosts": len(fleet), "one_host_s": round(one, 1), "n_hosts_s": round(many, 1), "ratio": round(many / one, 2),
            "stages": stages or "role default", "cpus": os.cpu_count()}


def measure_uneven(hosts=3, slow_s=30.0):
    """`hosts` fresh hosts at once, one of them with a MoE tune slow_s longer: when each host finished (its
    priming state's finished_at, from the fleet report), so the others can be seen not to wait for the slow one."""
    with fresh_fleet(hosts) as status, tempfile.TemporaryDirectory(prefix="sglang-prep-bench-") as report_dir:
        fleet = status["hosts"]
        slow = fleet[0]["name"]
        # the runtime runs the stand-in tuner once per batch size, each run pausing SGLANG_STANDIN_TUNER_S:
        # spread slow_s over the default batch sizes; only the slow host gets it
        per_run = slow_s / len(registry_batch_sizes())
        env = '{{ {"SGLANG_STANDIN_TUNER_S": "%.3f"} if inventory_hostname == "%s" else {} }}' % (per_run, slow)
        log("priming %d fresh hosts in parallel, %s with a tune %.0f s longer ..." % (len(fleet), slow, slow_s))
        wall = prime(status["inventory"], report_dir, ["-e", json.dumps({"prime_stage_env": env})])
        with open(os.path.join(report_dir, "fleet-report-latest.json")) as handle:
            rows = json.load(handle)["hosts"]
    finished = {row["host"]: row.get("finished_at") for row in rows if row["host"] != "localhost"}
    if not all(finished.values()):
        raise SystemExit("bench_fleet: a host has no finished_at in the fleet report: %s" % finished)
    stamps = {host: time.mktime(time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")) for host, value in finished.items()}
    first = min(stamps.values())
    others = [stamps[h] for h in stamps if h != slow]
    return {"hosts": len(fleet), "slow_host": slow, "slow_tune_extra_s": slow_s, "wall_s": round(wall, 1),
            "finished_after_first_s": {h: round(t - first, 1) for h, t in sorted(stamps.items())},
            "slow_host_finished_after_the_others_s": round(stamps[slow] - max(others), 1)}


# The fan-out bench makes compiling cost something (the stand-in sleeps this long per cache family it compiles,
# and this long in all for the MoE tuning), as it does on real hosts.
FANOUT_COST = {"SGLANG_STANDIN_COMPILE_S": "4", "SGLANG_STANDIN_TUNER_S": "4"}


def one_group_inventory(path, fleet):
    """An extra inventory that puts every host on the first stand-in GPU (one signature group), compile cost raised."""
    lines = ["all:", "  children:", "    sglang_nodes:", "      hosts:"]
    for host in fleet:
        env = dict(fleet_hosts.GPUS[0], **fleet_hosts.STANDIN_TIMING)
        env.update(FANOUT_COST)
        lines += ["        %s:" % host["name"], "          prime_extra_env: %s" % json.dumps(env)]
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def compiles(report_dir):
    """(priming stages that ran and primed, stages installed from a bundle) over the hosts of the latest fleet report."""
    sys.path.insert(0, os.path.join(REPO, "collections"))
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import registry
    with open(os.path.join(report_dir, "fleet-report-latest.json")) as handle:
        rows = json.load(handle)["hosts"]
    ran = installed = 0
    for row in rows:
        for stage in registry.priming_stages():
            cell = (row.get("stages") or {}).get(stage) or {}
            ran += 1 if cell.get("status") == "ok" and cell.get("ran") else 0
            installed += 1 if cell.get("status") == "installed" else 0
    return ran, installed


def measure_fanout(hosts=3):
    """`hosts` fresh hosts of one signature group: every host compiles (no fan-out), then, fresh again, fan-out
    (one builder compiles, the others install its bundle through a store directory). Wall times, their ratio,
    and the compiles counted from the fleet reports."""
    store = tempfile.mkdtemp(prefix="sglang-prep-bundle-store-")  # not under report_dir: every host user reaches it
    os.chmod(store, 0o1777)
    try:
        with fresh_fleet(hosts) as status, tempfile.TemporaryDirectory(prefix="sglang-prep-bench-") as report_dir:
            fleet = status["hosts"]
            same = one_group_inventory(os.path.join(report_dir, "one-group.yml"), fleet)
            extra = ["-i", same]
            log("priming %d fresh hosts of one group, every host compiling ..." % len(fleet))
            every = prime(status["inventory"], report_dir, extra)
            every_compiles, _ = compiles(report_dir)
            fresh(fleet)
            log("priming %d fresh hosts of one group with fan-out ..." % len(fleet))
            fan = prime(status["inventory"], report_dir, extra + ["-e", "prime_fanout=true", "-e", "prime_bundle_store=" + store])
            fan_compiles, fan_installed = compiles(report_dir)
    finally:
        shutil.rmtree(store, ignore_errors=True)
    return {"hosts": len(fleet), "every_host_compiles_s": round(every, 1), "fanout_s": round(fan, 1),
            "ratio": round(fan / every, 2), "compiles_every_host": every_compiles, "compiles_fanout": fan_compiles,
            "stages_installed_fanout": fan_installed, "compile_cost": FANOUT_COST, "cpus": os.cpu_count()}


def registry_batch_sizes():
    """The MoE tuner's default batch sizes, as the runtime has them."""
    sys.path.insert(0, os.path.join(REPO, "collections"))
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.moe_tune import DEFAULT_MOE_BATCH_SIZES
    return DEFAULT_MOE_BATCH_SIZES


def log(message):
    print("bench_fleet: " + message, file=sys.stderr, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=3, help="N (default 3)")
    parser.add_argument("--stages", nargs="+", help="stages to prime (default: the role's default, every stage)")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON to FILE")
    parser.add_argument("--fanout", action="store_true",
                        help="instead: N fresh hosts of one signature group, every host compiling against fan-out")
    args = parser.parse_args(argv)
    if args.fanout:
        result = measure_fanout(args.hosts)
        print("fan-out bench: %d hosts of one group: every host compiles %.1f s (%d compiles), fan-out %.1f s (%d compiles, %d "
              "stages installed): ratio %.2f" % (result["hosts"], result["every_host_compiles_s"], result["compiles_every_host"],
                                                 result["fanout_s"], result["compiles_fanout"], result["stages_installed_fanout"],
                                                 result["ratio"]))
        print(json.dumps(result))
        return 0
    result = measure(args.hosts, args.stages)
    print("fleet bench: 1 host %.1f s, %d hosts %.1f s in parallel: ratio %.2f (1.0 = perfectly parallel, %d = one after the other; %d CPUs)"
          % (result["one_host_s"], result["hosts"], result["n_hosts_s"], result["ratio"], result["hosts"], result["cpus"]))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
            handle.write("\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

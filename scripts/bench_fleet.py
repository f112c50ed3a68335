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
import json
import os
import re
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


def measure(hosts=3, stages=None):
    """Prime 1 fresh host, then `hosts` fresh hosts in parallel; wall times and their ratio."""
    if os.geteuid() != 0:
        raise SystemExit("bench_fleet: run as root: the fleet bench creates local users and an sshd")
    extra = ["-e", json.dumps({"prime_stages": stages})] if stages else []
    try:
        with fleet_hosts.session("the fleet bench"):
            return _measure(hosts, extra, stages)
    except fleet_hosts.FleetError as exc:
        raise SystemExit("bench_fleet: %s" % exc)


def _measure(hosts, extra, stages):
    status = fleet_hosts.up(count=hosts, clean=True, model_dir=MODEL_DIR, image=fleet_hosts.pinned_image())
    fleet = status["hosts"]
    try:
        with tempfile.TemporaryDirectory(prefix="sglang-prep-bench-") as report_dir:
            log("priming 1 fresh host (%s) ..." % fleet[0]["name"])
            one = prime(status["inventory"], report_dir, extra, limit=fleet[0]["name"] + ",localhost")  # the report play too
            fresh(fleet)
            log("priming %d fresh hosts in parallel ..." % len(fleet))
            many = prime(status["inventory"], report_dir, extra)
    finally:
        fleet_hosts.down(count=hosts)
    return {"hosts": len(fleet), "one_host_s": round(one, 1), "n_hosts_s": round(many, 1), "ratio": round(many / one, 2),
            "stages": stages or "role default", "cpus": os.cpu_count()}


def measure_uneven(hosts=3, slow_s=30.0):
    """`hosts` fresh hosts at once, one of them with a MoE tune slow_s longer: when each host finished (its
    priming state's finished_at, from the fleet report), so the others can be seen not to wait for the slow one."""
    if os.geteuid() != 0:
        raise SystemExit("bench_fleet: run as root: the fleet bench creates local users and an sshd")
    try:
        with fleet_hosts.session("the fleet bench"):
            status = fleet_hosts.up(count=hosts, clean=True, model_dir=MODEL_DIR, image=fleet_hosts.pinned_image())
            fleet = status["hosts"]
            slow = fleet[0]["name"]
            # the runtime runs the stand-in tuner once per batch size, each run pausing SGLANG_STANDIN_TUNER_S:
            # spread slow_s over the default batch sizes; only the slow host gets it
            per_run = slow_s / len(registry_batch_sizes())
            env = '{{ {"SGLANG_STANDIN_TUNER_S": "%.3f"} if inventory_hostname == "%s" else {} }}' % (per_run, slow)
            try:
                with tempfile.TemporaryDirectory(prefix="sglang-prep-bench-") as report_dir:
                    log("priming %d fresh hosts in parallel, %s with a tune %.0f s longer ..." % (len(fleet), slow, slow_s))
                    wall = prime(status["inventory"], report_dir, ["-e", json.dumps({"prime_stage_env": env})])
                    with open(os.path.join(report_dir, "fleet-report-latest.json")) as handle:
                        rows = json.load(handle)["hosts"]
            finally:
                fleet_hosts.down(count=hosts)
    except fleet_hosts.FleetError as exc:
        raise SystemExit("bench_fleet: %s" % exc)
    finished = {row["host"]: row.get("finished_at") for row in rows if row["host"] != "localhost"}
    if not all(finished.values()):
        raise SystemExit("bench_fleet: a host has no finished_at in the fleet report: %s" % finished)
    stamps = {host: time.mktime(time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")) for host, value in finished.items()}
    first = min(stamps.values())
    others = [stamps[h] for h in stamps if h != slow]
    return {"hosts": len(fleet), "slow_host": slow, "slow_tune_extra_s": slow_s, "wall_s": round(wall, 1),
            "finished_after_first_s": {h: round(t - first, 1) for h, t in sorted(stamps.items())},
            "slow_host_finished_after_the_others_s": round(stamps[slow] - max(others), 1)}


def registry_batch_sizes():
    """The MoE tuner's default batch sizes, as the runtime has them."""
    sys.path.insert(0, os.path.join(REPO, "collections"))
    from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.stages import DEFAULT_MOE_BATCH_SIZES
    return DEFAULT_MOE_BATCH_SIZES


def log(message):
    print("bench_fleet: " + message, file=sys.stderr, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=3, help="N (default 3)")
    parser.add_argument("--stages", nargs="+", help="stages to prime (default: the role's default, every stage)")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON to FILE")
    args = parser.parse_args(argv)
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

#!/usr/bin/env python3
"""make bench: what priming costs on top of the work itself.

Primes a fresh bench host on this machine (the stand-in image, a temporary host root, the tiny MoE
model), then measures, with the real playbook and the real Docker engine:

  noop_reprime   wall time of a no-op re-prime (ansible-playbook playbooks/prime.yml on a primed host)
                 against the bare minimum that can answer the same question: one
                 `docker exec -u devuser <c> python3 -m sglang_prep stage <s> --mode check` per stage,
                 in a row; printed as a ratio (min of the repeats, both measured in the same run) with
                 PASS/MISS against the targets (ratio <= 2x and re-prime <= 2 s). Also the one call the role
                 makes for the same answer, `docker exec ... python3 -m sglang_prep plan` (all stages at once).
  noop_breakdown where a no-op re-prime spends its time: ansible.posix.profile_tasks over one no-op,
                 grouped (start-up and play loading, module calls, tasks that run, tasks that are skipped)
  runtime_check  what the check of the deployed runtime against its manifest costs (every run): the verify
                 itself, and sglang_host_info with and without it
  stage_overhead rebuilds of every stage (--runs); per stage the runtime's own time (duration_s from the
                 stage JSON) minus the stand-in server's own time: to ready (server.ready_s) and, for
                 serve_check, answering the requests of its proof (server.generate.duration_s): lock,
                 preflight, trigger, telemetry probe, teardown, validation and bookkeeping. The min over the
                 rebuilds, with PASS/MISS per warm-up stage against the target (<= 0.5 s). For serve_check
                 (the zero-JIT proof) also the requests it drove and the time its two cache snapshots took.
  serve          the wall time from serve.yml to the first token of the live server on the primed host, and a
                 no-op serve (the server runs with the same settings) against a no-op prime, with PASS/MISS
                 against the target (the no-op serve no slower than the no-op prime, medians of --runs)

Prints a table, writes reports/bench.json and removes the container and the host root again (the
bench host user, when one had to be created, is kept for the next run). stdlib only.

Extension point: SCENARIOS below is the list of measurements; each is a function(bench) -> dict.
"""

import argparse
import json
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract  # noqa: E402
from fleet_hosts import copy_tree_as, pinned_image  # noqa: E402

VENV_BIN = os.path.join(REPO, ".venv", "bin")
CONTAINER = "sglang-prep-bench-%d" % os.getpid()  # two benches at once must not share a container
BENCH_USER = "sglang-bench"
# FP8 block-quantized weights: every stage has work (SGLang runs DeepGEMM for such weights only)
MODEL = "/models/tiny-moe-fp8-block"
MODEL_SOURCE = os.path.join(REPO, "tests", "standins", "models", "tiny-moe-fp8-block")
COLLECTION = os.path.join(REPO, "collections", "ansible_collections", "sglang", "prep")


# The speed targets (#27): a no-op re-prime within 2x the bare docker exec check of every stage and within 2 s; each
# server stage's overhead (stage time minus the server's own time: to ready, and the serve check's requests) within 0.5 s.
TARGET_NOOP_RATIO = 2.0
TARGET_NOOP_S = 2.0
TARGET_STAGE_OVERHEAD_S = 0.5
# (#23) a no-op serve no slower than a no-op prime (medians of the runs, measured alternately in the same run)
TARGET_NOOP_SERVE_RATIO = 1.0
SERVER_STAGES = ("flashinfer", "inductor", "serve_check")  # the warm-up stages the overhead target is about


def verdict(ok):
    return "PASS" if ok else "MISS"


def load_average():
    return round(os.getloadavg()[0], 2)


def log(message):
    print("bench: " + message, file=sys.stderr, flush=True)


def timed(argv, env=None, check=True):
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.monotonic() - started
    if check and proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise SystemExit("bench: %s failed (exit %d):\n%s" % (" ".join(argv[:3]), proc.returncode, tail))
    return elapsed, proc.stdout


def recap_changed(output):
    for line in output.splitlines():
        if line.startswith("localhost") and "changed=" in line:
            return int(line.split("changed=")[1].split()[0])
    raise SystemExit("bench: no PLAY RECAP for localhost in the playbook output")


class Bench:
    """A bench host: host user, host root with the model, the playbook command."""

    def __init__(self, runs):
        self.runs = runs
        self.as_root = os.getuid() == 0
        self.user = BENCH_USER if self.as_root else pwd.getpwuid(os.getuid()).pw_name
        self.image = pinned_image()
        self.root = None
        self.vars_file = None
        self.env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                        ANSIBLE_FORCE_COLOR="0", PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))

    def as_user(self, argv):
        return (["runuser", "-u", self.user, "--"] + argv) if self.as_root else argv

    def setup(self):
        if self.as_root:
            try:
                pwd.getpwnam(self.user)
            except KeyError:
                log("creating the unprivileged bench host user %s" % self.user)
                subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", self.user], check=True)
        self.root = os.path.join(tempfile.gettempdir(), "sglang-prep-bench-%d" % os.getpid())
        copy_tree_as(self.user if self.as_root else None, MODEL_SOURCE,
                     os.path.join(self.root, "models", os.path.basename(MODEL)))
        settings = {
            "model": MODEL,
            "prime_host_user": self.user,
            "prime_host_root": self.root,
            "prime_image": self.image,
            "prime_image_pull": "never",
            "prime_container_name": CONTAINER,
            "prime_network_mode": "bridge",
            "prime_gpus": "none",
            "sglang_prep_fleet_report": False,
        }
        self.vars_file = os.path.join(tempfile.gettempdir(), "sglang-prep-bench-%d.json" % os.getpid())
        with open(self.vars_file, "w") as handle:
            json.dump(settings, handle)

    def prime(self, *extra):
        return self.playbook("prime.yml", *extra)

    def playbook(self, name, *extra):
        argv = [os.path.join(VENV_BIN, "ansible-playbook"), os.path.join(REPO, "playbooks", name),
                "-e", "@" + self.vars_file] + list(extra)
        return timed(argv, env=self.env)

    def prime_installed(self, collections_path, workdir):
        """The installed collection's own playbook, from a directory without an ansible.cfg (Ansible's defaults)."""
        inventory = os.path.join(workdir, "inventory.yml")
        with open(inventory, "w") as handle:
            json.dump({"sglang_nodes": {"hosts": {"localhost": {
                "ansible_connection": "local", "ansible_python_interpreter": os.path.join(VENV_BIN, "python")}}}}, handle)
        env = dict((k, v) for k, v in self.env.items() if not k.startswith("ANSIBLE_"))
        env.update(ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_NOCOLOR="1")
        argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, "sglang.prep.prime", "-e", "@" + self.vars_file]
        started = time.monotonic()
        proc = subprocess.run(argv, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise SystemExit("bench: the installed collection's prime failed (exit %d):\n%s"
                             % (proc.returncode, "\n".join(proc.stdout.splitlines()[-40:])))
        return time.monotonic() - started, proc.stdout

    def fresh(self):
        """Back to a host that was never primed: no container, an empty host root with the model."""
        self.teardown()
        self.setup()

    def exec_stage(self, stage, mode):
        return timed(["docker", "exec", "-u", contract.DEVUSER, CONTAINER, "python3", "-m", "sglang_prep", "stage",
                      stage, "--model", MODEL, "--mode", mode])

    def exec_plan(self):
        return timed(["docker", "exec", "-u", contract.DEVUSER, CONTAINER, "python3", "-m", "sglang_prep", "plan",
                      "--model", MODEL])

    def run_dir(self):
        with open(os.path.join(self.root, "telemetry", contract.POINTER_NAME)) as handle:
            text = handle.read()
        host_manifest = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(contract.POINTER_HOST_KEY + "=")][0]
        with open(host_manifest) as handle:
            return json.load(handle)["paths"]["host"]["run_dir"]

    def teardown(self):
        subprocess.run(["docker", "rm", "-f", CONTAINER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        left = subprocess.run(["docker", "ps", "-aq", "--filter", "name=^/%s$" % CONTAINER],
                              stdout=subprocess.PIPE, text=True).stdout.strip()
        if left:
            raise SystemExit("bench: container %s is still there" % CONTAINER)
        if self.root and os.path.isdir(self.root):
            subprocess.run(self.as_user(["rm", "-rf", self.root]), check=False)
            shutil.rmtree(self.root, ignore_errors=True)
        if self.vars_file and os.path.exists(self.vars_file):
            os.remove(self.vars_file)


def noop_reprime(bench):
    """No-op re-prime through Ansible against bare `docker exec ... --mode check` of every stage."""
    reprimes = []
    for i in range(bench.runs):
        elapsed, output = bench.prime()
        changed = recap_changed(output)
        if changed:
            raise SystemExit("bench: re-prime %d was not a no-op (changed=%d)" % (i + 1, changed))
        reprimes.append(elapsed)
        log("no-op re-prime %d: %.1f s" % (i + 1, elapsed))
    baselines = []
    for i in range(bench.runs):
        started = time.monotonic()
        for stage in contract.STAGE_ORDER:
            bench.exec_stage(stage, "check")
        baselines.append(time.monotonic() - started)
        log("docker exec baseline %d: %.2f s" % (i + 1, baselines[-1]))
    plans = []
    for i in range(bench.runs):
        plans.append(bench.exec_plan()[0])
        log("docker exec plan %d: %.2f s" % (i + 1, plans[-1]))
    # the min of the repeats: what the machine can do when nothing else runs (the medians are kept beside them)
    reprime, baseline, plan = min(reprimes), min(baselines), min(plans)
    ratio = reprime / baseline
    return {"reprime_s": [round(x, 2) for x in reprimes], "baseline_s": [round(x, 2) for x in baselines],
            "plan_s": [round(x, 2) for x in plans],
            "reprime_min_s": round(reprime, 2), "baseline_min_s": round(baseline, 2), "plan_min_s": round(plan, 2),
            "reprime_median_s": round(statistics.median(reprimes), 2),
            "baseline_median_s": round(statistics.median(baselines), 2),
            "ratio": round(ratio, 2),
            "target": {"ratio_max": TARGET_NOOP_RATIO, "reprime_max_s": TARGET_NOOP_S,
                       "verdict": verdict(ratio <= TARGET_NOOP_RATIO and reprime <= TARGET_NOOP_S)}}


def _iso_seconds(stamp):
    """Seconds of the day of an ansible.posix.json duration stamp (2026-12-07T00:33:20.123456Z)."""
    clock = stamp.rstrip("Z").split("T")[1]
    hours, minutes, seconds = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def noop_breakdown(bench):
    """One no-op re-prime with the ansible.posix.json callback: each task's time (start to its last result) and what
    it did, grouped: module calls, action tasks that ran (set_fact, debug, assert, include), skipped tasks, and the rest
    of the wall time (start-up, loading the playbook and the role, between tasks)."""
    env = dict(bench.env, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), os.path.join(REPO, "playbooks", "prime.yml"), "-e", "@" + bench.vars_file]
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("bench: the no-op re-prime for the breakdown failed (exit %d)" % proc.returncode)
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    groups = {"module calls": [], "tasks that ran": [], "skipped tasks": []}
    for play in report["plays"]:
        for entry in play["tasks"]:
            task, result = entry["task"], (entry.get("hosts") or {}).get("localhost") or {}
            seconds = _iso_seconds(task["duration"]["end"]) - _iso_seconds(task["duration"]["start"])
            if result.get("skipped"):
                group = "skipped tasks"
            elif result.get("action", "").startswith("sglang.prep.") or result.get("action", "") in (
                    "community.docker.docker_container", "ansible.builtin.stat"):
                group = "module calls"
            else:
                group = "tasks that ran"
            groups[group].append((task["name"], round(seconds, 3)))
    out = {"wall_s": round(wall, 2)}
    for group, tasks in groups.items():
        out[group] = {"count": len(tasks), "seconds": round(sum(t for _n, t in tasks), 2),
                      "slowest": sorted(tasks, key=lambda item: -item[1])[:5]}
    out["start-up, loading, between tasks"] = {"seconds": round(wall - sum(g["seconds"] for g in out.values()
                                                                            if isinstance(g, dict)), 2)}
    return out


def stage_overhead(bench):
    """Rebuilds of every stage (--runs of them); per stage duration_s minus the stand-in server's own time: its time
    to ready and, for serve_check, the requests its proof drives (server.generate). The min over the rebuilds."""
    runs, playbook = [], []
    for i in range(bench.runs):
        elapsed, _output = bench.prime("-e", "prime_mode=rebuild")
        playbook.append(elapsed)
        runs.append(_stage_rows(bench.run_dir()))
        log("rebuild %d: %.1f s; overheads %s" % (i + 1, elapsed, ", ".join(
            "%s %.2f s" % (stage, row["overhead_s"]) for stage, row in runs[-1].items() if row["overhead_s"] is not None)))
    stages = {}
    for stage in contract.STAGE_ORDER:
        rows = [run[stage] for run in runs]
        best = min(rows, key=lambda row: float("inf") if row["overhead_s"] is None else row["overhead_s"])
        stages[stage] = dict(best, overhead_all_s=[row["overhead_s"] for row in rows])
        if stage in SERVER_STAGES and best["overhead_s"] is not None:
            stages[stage]["verdict"] = verdict(best["overhead_s"] <= TARGET_STAGE_OVERHEAD_S)
    verdicts = [row["verdict"] for row in stages.values() if "verdict" in row]
    return {"playbook_s": [round(x, 2) for x in playbook], "stages": stages,
            "target": {"overhead_max_s": TARGET_STAGE_OVERHEAD_S, "stages": list(SERVER_STAGES),
                       "verdict": verdict(bool(verdicts) and all(v == "PASS" for v in verdicts))}}


def _stage_rows(run_dir):
    stages = {}
    for stage in contract.STAGE_ORDER:
        with open(os.path.join(run_dir, "models", contract.model_key(MODEL), "stages", stage + ".json")) as handle:
            result = json.load(handle)
        if not result.get("ran") or result.get("status") != "ok":
            raise SystemExit("bench: the rebuild of %s did not run: %s" % (stage, result.get("message")))
        server = result.get("server") or {}
        ready = server.get("ready_s")
        evidence = result.get("serve_check")
        requests_s = ((server.get("generate") or {}).get("duration_s") or 0.0) if evidence else 0.0
        probe = result.get("telemetry_probe") or {}
        stages[stage] = {"duration_s": result["duration_s"], "server_ready_s": ready, "requests_s": requests_s,
                         "telemetry_wait_s": probe.get("waited_s"), "telemetry_ok": probe.get("ok") if probe else None,
                         "overhead_s": round(result["duration_s"] - ready - requests_s, 3) if ready is not None else None}
        if result.get("inductor"):  # every start is counted in duration_s, only the last one's ready_s is subtracted
            stages[stage]["starts"] = result["inductor"].get("starts")
        if evidence:
            stages[stage].update(zero_jit=result.get("zero_jit"), requests=len(evidence.get("requests") or []),
                                 snapshot_files=(evidence.get("snapshot") or {}).get("after", {}).get("files"),
                                 snapshot_s=round(sum(((evidence.get("snapshot") or {}).get("seconds") or {}).values()), 3))
    return stages


def fleet_parallel(bench):
    """1 fresh host, then 3 fresh hosts at once over SSH (scripts/bench_fleet.py): wall times and their ratio."""
    if not bench.as_root:
        return {"not_measured": "needs root: scripts/bench_fleet.py creates local users and an sshd"}
    import bench_fleet  # scripts/, next to this file
    return bench_fleet.measure(hosts=3)


def installed_collection(bench):
    """First prime through the collection built and installed from its tarball, run from a directory without
    the repository's ansible.cfg (Ansible's defaults: no pipelining), against the same first prime from the checkout."""
    with tempfile.TemporaryDirectory(prefix="sglang-prep-installed-") as tmp:
        galaxy = os.path.join(VENV_BIN, "ansible-galaxy")
        timed([galaxy, "collection", "build", COLLECTION, "--output-path", tmp, "--force"])
        tarball = [name for name in os.listdir(tmp) if name.endswith(".tar.gz")][0]
        collections = os.path.join(tmp, "collections")
        # --force: the checkout's own copy is on the configured collections path, and would count as installed
        timed([galaxy, "collection", "install", os.path.join(tmp, tarball), "-p", collections, "--no-deps", "--offline", "--force"])
        workdir = os.path.join(tmp, "work")
        os.makedirs(workdir)
        installed, checkout = [], []
        for i in range(bench.runs):
            bench.fresh()
            installed.append(bench.prime_installed(collections, workdir)[0])
            bench.fresh()
            checkout.append(bench.prime()[0])
            log("first prime %d: installed collection %.1f s, checkout %.1f s" % (i + 1, installed[-1], checkout[-1]))
    a, b = statistics.median(installed), statistics.median(checkout)
    return {"installed_s": [round(x, 2) for x in installed], "checkout_s": [round(x, 2) for x in checkout],
            "installed_median_s": round(a, 2), "checkout_median_s": round(b, 2), "ratio": round(a / b, 2)}


def fleet_uneven(bench):
    """3 fresh hosts at once, one with a MoE tune 30 s longer: per-host finish times (the others must not wait)."""
    if not bench.as_root:
        return {"not_measured": "needs root: scripts/bench_fleet.py creates local users and an sshd"}
    import bench_fleet  # scripts/, next to this file
    return bench_fleet.measure_uneven(hosts=3, slow_s=30.0)


def fleet_fanout(bench):
    """3 fresh hosts of one signature group: every host compiles, against fan-out (one compiles, two install its
    bundle): the ratio of the wall times and the compiles counted (scripts/bench_fleet.py measure_fanout)."""
    if not bench.as_root:
        return {"not_measured": "needs root: scripts/bench_fleet.py creates local users and an sshd"}
    import bench_fleet  # scripts/, next to this file
    return bench_fleet.measure_fanout(hosts=3)


def registry_join(bench):
    """A new host joining a primed fleet from the registry, against compiling itself (scripts/bench_registry.py join)."""
    if not bench.as_root:
        return {"not_measured": "needs root: the registry bench creates local users, an sshd and a registry"}
    import bench_registry  # scripts/, next to this file
    return bench_registry.measure_join()


def registry_round_trip(bench):
    """A 1 GiB bundle pushed to the test registry and fetched back (scripts/bench_registry.py round-trip)."""
    if not bench.as_root:
        return {"not_measured": "needs root: the test registry is a system service"}
    import bench_registry
    return bench_registry.measure_round_trip(1.0)


def bundle_throughput(bench):
    """Pack and install of 50,000 files / 2 GiB against tar -c | gzip -1 and tar -x (scripts/bench_registry.py throughput)."""
    import bench_registry
    return bench_registry.measure_throughput(50000, 2.0)


def serve(bench):
    """On the primed bench host: the wall time from the start of serve.yml to the first token the live server
    generated (its first request of the zero-JIT check: serve record first_token_at), and the whole first serve;
    then a no-op serve (the server runs with the same settings) against a no-op prime, medians of the runs."""
    bench.prime()  # primed (a no-op when an earlier scenario primed it)
    started = time.time()
    elapsed, output = bench.playbook("serve.yml")
    with open(os.path.join(bench.run_dir(), "models", contract.model_key(MODEL), "stages", "serve.json")) as handle:
        record = json.load(handle)
    if record.get("status") != "ok" or not record.get("first_token_at"):
        raise SystemExit("bench: the first serve did not serve: %s" % record.get("message"))
    first_token = record["first_token_at"] - started
    log("serve.yml to the first token: %.1f s (the whole serve with its zero-JIT check: %.1f s)" % (first_token, elapsed))
    noop_serves, noop_primes = [], []
    for i in range(bench.runs):
        elapsed_serve, output = bench.playbook("serve.yml")
        if recap_changed(output):
            raise SystemExit("bench: serve %d was not a no-op" % (i + 2))
        noop_serves.append(elapsed_serve)
        noop_primes.append(bench.prime()[0])
        log("no-op serve %d: %.1f s, no-op prime %.1f s" % (i + 1, noop_serves[-1], noop_primes[-1]))
    bench.playbook("stop.yml")
    a, b = statistics.median(noop_serves), statistics.median(noop_primes)
    return {"first_token_s": round(first_token, 2), "first_serve_s": round(elapsed, 2),
            "zero_jit": record.get("zero_jit"), "noop_serve_s": [round(x, 2) for x in noop_serves],
            "noop_prime_s": [round(x, 2) for x in noop_primes], "noop_serve_median_s": round(a, 2),
            "noop_prime_median_s": round(b, 2), "ratio": round(a / b, 2),
            "target": {"ratio_max": TARGET_NOOP_SERVE_RATIO, "verdict": verdict(a <= TARGET_NOOP_SERVE_RATIO * b)}}


# Each scenario: function(bench) -> dict, stored under its name in reports/bench.json.
def runtime_check(bench):
    """What the check of the deployed runtime against its manifest (sglang_host_info, every run) costs: the host's
    tree verified as the module does it, and the same module call with and without the check (ansible localhost)."""
    from ansible_collections.sglang.prep.plugins.module_utils import _runtime_manifest as runtime_manifest
    package = os.path.join(bench.root, "runtime", "sglang_prep")
    verify = []
    for _ in range(max(bench.runs, 5)):
        started = time.monotonic()
        found = runtime_manifest.verify(package)
        verify.append(time.monotonic() - started)
    if found["modified"] or found["missing"] or found["added"] or found["problem"]:
        raise SystemExit("bench: the bench host's runtime does not match its manifest: %s" % found)
    ansible = os.path.join(VENV_BIN, "ansible")
    calls = {}
    for label, extra in (("without", ""), ("with", " runtime_package=sglang_prep")):
        times = []
        for _ in range(bench.runs):
            elapsed, _out = timed([ansible, "localhost", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable,
                                   "-m", "sglang.prep.sglang_host_info", "-a",
                                   "host_user=%s host_root=%s%s" % (bench.user, bench.root, extra)], env=bench.env)
            times.append(elapsed)
        calls[label] = statistics.median(times)
        log("sglang_host_info %s the runtime check: %.2f s" % (label, calls[label]))
    return {"files": len(runtime_manifest.package_files(package)), "verify_median_s": round(statistics.median(verify), 4),
            "host_facts_without_s": round(calls["without"], 2), "host_facts_with_s": round(calls["with"], 2),
            "host_facts_delta_s": round(calls["with"] - calls["without"], 2)}


SCENARIOS = [noop_reprime, noop_breakdown, runtime_check, stage_overhead, serve, installed_collection, fleet_parallel,
             fleet_uneven, fleet_fanout, registry_join, registry_round_trip, bundle_throughput]


def table(results):
    lines = []
    noop = results.get("noop_reprime")
    if noop:
        target = noop["target"]
        lines += ["no-op re-prime (ansible-playbook, min of %d)      %7.2f s" % (len(noop["reprime_s"]), noop["reprime_min_s"]),
                  "bare docker exec --mode check, all stages (min)   %7.2f s" % noop["baseline_min_s"],
                  "ratio no-op re-prime / bare check                 %7.2f x" % noop["ratio"],
                  "bare docker exec plan (all stages, one call)      %7.2f s" % noop["plan_min_s"],
                  "target: ratio <= %.1f x and re-prime <= %.1f s:    %s" % (target["ratio_max"], target["reprime_max_s"],
                                                                           target["verdict"]), ""]
    parts = results.get("noop_breakdown")
    if parts:
        lines.append("where one no-op re-prime (%.2f s) spends its time:" % parts["wall_s"])
        for group, row in parts.items():
            if isinstance(row, dict):
                lines.append("  %-34s %6.2f s%s" % (group, row["seconds"], "  (%d)" % row["count"] if "count" in row else ""))
        lines.append("")
    check = results.get("runtime_check")
    if check:
        lines += ["runtime check against its manifest (%d files)    %7.3f s" % (check["files"], check["verify_median_s"]),
                  "sglang_host_info without / with the check        %5.2f / %.2f s" % (
                      check["host_facts_without_s"], check["host_facts_with_s"]), ""]
    over = results.get("stage_overhead")
    if over:
        lines.append("%-11s %10s %14s %11s %11s %11s  %s" % ("stage", "duration_s", "server ready_s", "requests_s",
                                                           "overhead_s", "telemetry_s", "target"))
        for stage, row in over["stages"].items():
            lines.append("%-11s %10.3f %14s %11s %11s %11s  %s" % (
                stage, row["duration_s"], "-" if row["server_ready_s"] is None else "%.3f" % row["server_ready_s"],
                "%.3f" % row["requests_s"] if row["requests_s"] else "-",
                "-" if row["overhead_s"] is None else "%.3f" % row["overhead_s"],
                "-" if row.get("telemetry_wait_s") is None else "%.3f%s" % (
                    row["telemetry_wait_s"], "" if row.get("telemetry_ok") else " (no sample)"),
                ("<= %.1f s %s" % (over["target"]["overhead_max_s"], row["verdict"])) if "verdict" in row else ""))
            if (row.get("starts") or 1) > 1:
                lines.append("%-11s %d server starts: the overhead includes the starts before the last" % ("", row["starts"]))
            if "requests" in row:
                lines.append("%-11s zero JIT %s: %d requests, two snapshots of %s files in %.3f s" % (
                    "", "yes" if row["zero_jit"] else "no", row["requests"], row["snapshot_files"], row["snapshot_s"]))
        lines += ["(min over %d rebuilds; overhead = duration - server ready - the serve check's requests; telemetry = "
                  "the Prometheus probe's wait, part of the overhead)" % len(over["playbook_s"]),
                  "target: overhead <= %.1f s for %s:  %s" % (over["target"]["overhead_max_s"],
                                                              ", ".join(over["target"]["stages"]), over["target"]["verdict"]), ""]
    served = results.get("serve")
    if served:
        lines += ["serve.yml to the first token (primed host)        %7.2f s" % served["first_token_s"],
                  "no-op serve / no-op prime (median of %d)          %5.2f / %.2f s (ratio %.2f)" % (
                      len(served["noop_serve_s"]), served["noop_serve_median_s"], served["noop_prime_median_s"],
                      served["ratio"]),
                  "target: no-op serve <= %.1f x no-op prime:        %s" % (served["target"]["ratio_max"],
                                                                         served["target"]["verdict"]), ""]
    fan = results.get("fleet_fanout")
    if fan and "ratio" in fan:
        lines += ["fan-out, %d hosts of one group: every host compiles %.1f s (%d compiles), fan-out %.1f s (%d compiles, "
                  "%d stages installed): ratio %.2f" % (fan["hosts"], fan["every_host_compiles_s"], fan["compiles_every_host"],
                                                        fan["fanout_s"], fan["compiles_fanout"], fan["stages_installed_fanout"],
                                                        fan["ratio"]), ""]
    join = results.get("registry_join")
    if join and "ratio" in join:
        lines += ["new host joining from the registry %.1f s, compiling itself %.1f s: ratio %.2f" % (
            join["from_registry_s"], join["compiles_itself_s"], join["ratio"])]
    trip = results.get("registry_round_trip")
    if trip and "push_s" in trip:
        lines += ["registry round trip of a %.2f GiB bundle: push %.1f s, pull %.1f s" % (
            trip["bytes"] / float(1 << 30), trip["push_s"], trip["pull_s"])]
    through = (results.get("bundle_throughput") or {}).get("full")
    if through:
        bt = results["bundle_throughput"]
        lines += ["bundle of %d files / %.1f GiB: pack %.1f s (%.2fx tar|gzip -1: %s), install %.1f s (%.2fx tar -x: %s), "
                  "peak memory x%.2f / x%.2f for 5x the files (%s; %d / %d bytes a file), load %s -> %s" % (
                      through["files"], through["bytes"] / float(1 << 30), through["pack_s"], through["pack_ratio"],
                      bt["target"]["pack"], through["install_s"], through["install_ratio"], bt["target"]["install"],
                      bt["memory_growth"]["pack"], bt["memory_growth"]["install"], bt["target"]["memory_flat"],
                      bt["memory_bytes_per_file"]["pack"], bt["memory_bytes_per_file"]["install"], bt["load_before"],
                      bt["load_after"]), ""]
    for name, value in results.items():
        if name not in ("noop_reprime", "noop_breakdown", "runtime_check", "stage_overhead", "first_prime_s", "meta",
                        "fleet_fanout", "registry_join", "registry_round_trip", "bundle_throughput", "serve"):
            lines.append("%s: %s" % (name, json.dumps(value)))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each timed measurement (default 3)")
    parser.add_argument("--output", default=os.path.join(REPO, "reports", "bench.json"))
    parser.add_argument("--only", nargs="+", choices=[s.__name__ for s in SCENARIOS], metavar="SCENARIO",
                        help="run only these scenarios (default: all of %s)" % ", ".join(s.__name__ for s in SCENARIOS))
    args = parser.parse_args()
    bench = Bench(args.runs)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed bench still removes what it started
    results = {"meta": {"image": bench.image, "model": MODEL, "runs": args.runs, "host_user": bench.user,
                        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_before": load_average()}}
    try:
        bench.setup()
        log("first prime of a fresh bench host (%s) ..." % bench.root)
        elapsed, _output = bench.prime()
        results["first_prime_s"] = round(elapsed, 2)
        for scenario in [s for s in SCENARIOS if not args.only or s.__name__ in args.only]:
            log("%s ..." % scenario.__name__)
            results[scenario.__name__] = scenario(bench)
    finally:
        bench.teardown()
    results["meta"]["load_after"] = load_average()
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(results, handle, indent=2)
    print("machine: %d cores, 1-min load average %.2f before, %.2f after (a busy machine slows every figure)" % (
        os.cpu_count(), results["meta"]["load_before"], results["meta"]["load_after"]))
    print("first prime of a fresh host (ansible-playbook)      %7.2f s" % results["first_prime_s"])
    print(table(results))
    print("written: %s" % args.output)


if __name__ == "__main__":
    main()

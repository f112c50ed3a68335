"""Real-GPU evidence that the inductor stage's loop settles: restart a torch.compile'd process until a start adds no
cache file, with the runtime's own code.

No Docker, no SGLang: torch (with CUDA), Triton and pytest. Skipped where they (or a GPU) are missing. One command
from the repository root on a GPU host (figures and evidence go to $OUT, else to pytest's tmp dir):

    OUT=/some/dir python -m pytest tests/gpu/test_gpu_inductor_settles.py -q -s

What runs is the inductor stage's own machinery (container/inductor.py, argv.py, servecheck.py), with one start
being one process of tests/gpu/moe_workload.py (a small MoE block, torch.compile mode max-autotune-no-cudagraphs as
--enable-torch-compile uses, SGLang's set_torch_compile_config settings) instead of an SGLang server:

1. the static-launcher probe (inductor.probe_static_launcher) inspects this python's torch and decides whether the
   servers get TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER=0;
2. the environment is the inductor stage server's (argv.server_env: every cache under a fresh profiles root,
   TRITON_CACHE_AUTOTUNING=1, the launcher setting the probe chose);
3. inductor.until_settled starts the workload until a start changes no file under the profiles root (snapshots and
   their diff: servecheck.snapshot / servecheck.diff, as the stage counts them), at most
   contract.INDUCTOR_MAX_STARTS starts.

It asserts that the loop settles within the bound and that a further start adds nothing, and writes
$OUT/inductor-settle.json (GPU, versions, probe decision, per start: seconds and files changed per cache) and
$OUT/inductor-settle.txt (the same in words, for docs/fleet.md). With SGLANG_PREP_GPU_COMPARE=1 (the default) it
then runs the same loop with the opposite launcher setting in another root and records it too (not asserted).
"""

import json
import os
import subprocess
import sys
import time

from gpu_support import require_cuda

torch = require_cuda("the real-GPU settling test")

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract  # noqa: E402
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import argv, inductor, servecheck  # noqa: E402
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.layout import Layout  # noqa: E402

MODE = os.environ.get("SGLANG_PREP_GPU_COMPILE_MODE", "max-autotune-no-cudagraphs")
COMPARE = os.environ.get("SGLANG_PREP_GPU_COMPARE", "1") == "1"
WORKLOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moe_workload.py")


def server_env(root, static_launcher_off, force_on=False):
    """The inductor stage server's environment (argv.server_env) with the contract paths under ``root``; HOME beside
    it (the container's /home/devuser does not exist here). ``force_on``: the comparison run with the launcher on."""
    base = dict((k, v) for k, v in os.environ.items() if k != contract.ENV_STATIC_CUDA_LAUNCHER)
    env = Layout(profiles_root=root).env(argv.server_env(base, "inductor", static_launcher_off=static_launcher_off))
    if force_on:
        env[contract.ENV_STATIC_CUDA_LAUNCHER] = "1"
    env["HOME"] = root + "-home"
    os.makedirs(env["HOME"], exist_ok=True)
    env["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "1"
    env["TORCHINDUCTOR_AUTOGRAD_CACHE"] = "1"
    return env


def changes(before, after):
    """{cache: {files_added, files_rewritten}}: what ServerStage.primed counts, from the same diff."""
    out = {}
    for cache, entry in servecheck.diff(before, after).items():
        out[cache] = {"files_added": len(entry["added"]), "files_rewritten": len(entry["modified"])}
    return out


def settle(root, static_launcher_off, log, force_on=False):
    os.makedirs(root, exist_ok=True)
    env = server_env(root, static_launcher_off, force_on)
    seconds = []

    def start_once(number):
        before = servecheck.snapshot(root)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, WORKLOAD, MODE, "--sglang-settings"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, check=False, timeout=3600)
        assert proc.returncode == 0, "start %d failed:\n%s" % (number, proc.stderr[-4000:])
        measured = json.loads([x for x in proc.stdout.splitlines() if x.startswith("MEASURED ")][-1][len("MEASURED "):])
        seconds.append({"process_s": round(time.monotonic() - started, 2), "first_calls_s": round(measured["seconds"], 2),
                        "inductor": measured["inductor"]})
        log["measured"] = dict((k, measured[k]) for k in ("device_name", "compute_capability", "cuda", "torch_version",
                                                          "triton_version"))
        return changes(before, servecheck.snapshot(root))

    outcome = inductor.until_settled(start_once, contract.INDUCTOR_MAX_STARTS, lambda m: print("  " + m, flush=True))
    for entry, timing in zip(outcome["per_start"], seconds):
        entry.update(timing)
    extra = None
    if outcome["settled"]:  # one more start: the settled state holds
        extra = start_once(outcome["starts"] + 1)
    return outcome, extra


def test_the_inductor_loop_settles_on_a_real_gpu(tmp_path):
    out_dir = os.environ.get("OUT") or str(tmp_path / "out")
    os.makedirs(out_dir, exist_ok=True)
    decision = inductor.probe_static_launcher(sys.executable, dict(os.environ))
    print("\nstatic-launcher probe: %s" % decision["reason"], flush=True)
    off = bool(decision["needed"])
    record = {"mode": MODE, "max_starts": contract.INDUCTOR_MAX_STARTS, "probe": decision, "runs": []}
    variants = [("probe's choice", off)] + ([("comparison", not off)] if COMPARE else [])
    for label, launcher_off in variants:
        shown = "0" if launcher_off else ("1" if label == "comparison" else "unset (torch's default)")
        print("%s: TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER=%s" % (label, shown), flush=True)
        log = {}
        outcome, extra = settle(str(tmp_path / ("root-%d" % len(record["runs"]))), launcher_off, log,
                                force_on=label == "comparison" and not launcher_off)
        record["runs"].append({"label": label, "static_launcher": shown, "outcome": outcome,
                               "extra_start_changes": extra, "gpu": log.get("measured")})
    gpu = record["runs"][0]["gpu"] or {}
    lines = ["GPU %s (sm %s), CUDA %s, torch %s, Triton %s, torch.compile mode %s, at most %d starts" % (
        gpu.get("device_name"), gpu.get("compute_capability"), gpu.get("cuda"), gpu.get("torch_version"),
        gpu.get("triton_version"), MODE, contract.INDUCTOR_MAX_STARTS), "probe: " + decision["reason"]]
    for run in record["runs"]:
        o = run["outcome"]
        lines.append("%s (TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER=%s): %s after %d start(s); per start: %s%s" % (
            run["label"], run["static_launcher"], "settled" if o["settled"] else "NOT settled", o["starts"],
            "; ".join("%d: %d files changed %s, %.1f s" % (p["start"], p["files_changed"], p["by_cache"], p["process_s"])
                      for p in o["per_start"]),
            "; one more start changed %d" % inductor.changed_files(run["extra_start_changes"])
            if run["extra_start_changes"] is not None else ""))
    with open(os.path.join(out_dir, "inductor-settle.json"), "w") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
    with open(os.path.join(out_dir, "inductor-settle.txt"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    chosen = record["runs"][0]
    assert chosen["outcome"]["settled"], "the loop did not settle within %d starts: %s" % (
        contract.INDUCTOR_MAX_STARTS, chosen["outcome"]["per_start"])
    assert inductor.changed_files(chosen["extra_start_changes"]) == 0, chosen["extra_start_changes"]
    assert chosen["outcome"]["per_start"][0]["files_changed"] > 0, "the cold start wrote nothing under the profiles root"

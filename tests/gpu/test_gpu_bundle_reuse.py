"""Real-GPU evidence that a cache bundle carries a real torch.compile/Triton cache to another host.

No Docker, no SGLang: only torch (with CUDA), Triton and pytest. Skipped where they (or a GPU) are missing.
From the repository root on a GPU host:

    python -m pytest tests/gpu/test_gpu_bundle_reuse.py -q -s

What it does, with the collection's own bundle code (container/bundle.py):

1. cold: a fresh Python process compiles a small MoE block with torch.compile (mode
   SGLANG_PREP_GPU_COMPILE_MODE, default max-autotune-no-cudagraphs, what --enable-torch-compile uses, with the
   Inductor settings SGLang's set_torch_compile_config makes) for two batch sizes, with TORCHINDUCTOR_CACHE_DIR
   and TRITON_CACHE_DIR under profiles root A (profiles/torchinductor, profiles/triton);
2. warm: the same in a new process on root A (the cache reused in place, as the builder's serve check does);
3. the inductor stage's signature is recorded on A, A's caches are packed into a bundle, and the bundle is
   installed into a fresh profiles root B (another path: what a receiver host gets);
4. relocated: the same in a new process on root B.

It asserts that the relocated run is at least 5x faster than the cold one (SGLANG_PREP_GPU_MIN_SPEEDUP) and adds
no file to B's caches, and prints the cold, warm and relocated seconds and the files each warm run added (the
figures docs/fleet.md quotes).

TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER is 0 in every run (SGLANG_PREP_GPU_STATIC_LAUNCHER sets it). With torch
2.11's default static CUDA launcher, a kernel loaded from the FX graph cache loses its found_by_coordesc mark
(CachingAutotuner.recheck_autotune_cache), so every start re-runs coordinate-descent tuning, keeps the winner that
benchmark noise picks and compiles the configs it visits: the caches grow again on most starts, in place as
well as relocated (docs/fleet.md has the measurements). With the static launcher off, the first warm run adds the
configs coordinate descent visits from the cached winners, and from then on nothing is added.
"""

import json
import os
import subprocess
import sys

import pytest

from gpu_support import require_cuda

torch = require_cuda("the real-GPU bundle test")

# the runtime package itself (stdlib only: the collection's namespace path needs no Ansible)
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract  # noqa: E402
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import bundle, signature  # noqa: E402
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.layout import Layout  # noqa: E402

MODE = os.environ.get("SGLANG_PREP_GPU_COMPILE_MODE", "max-autotune-no-cudagraphs")
STATIC_LAUNCHER = os.environ.get("SGLANG_PREP_GPU_STATIC_LAUNCHER", "0")
MIN_SPEEDUP = float(os.environ.get("SGLANG_PREP_GPU_MIN_SPEEDUP", "5"))
MODEL = "/models/gpu-bundle-moe-block"
STAGE = "inductor"

# the workload: one process, one measurement (SGLang's Inductor settings applied)
WORKLOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moe_workload.py")


def cache_env(root):
    env = dict(os.environ)
    for name in ("torchinductor", "triton"):
        path, var = contract.CACHES[name]
        env[var] = Layout(profiles_root=root).fs(path)
    env["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "1"
    env["TORCHINDUCTOR_AUTOGRAD_CACHE"] = "1"
    env["TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER"] = STATIC_LAUNCHER
    return env


def measure(root, label):
    proc = subprocess.run([sys.executable, WORKLOAD, MODE, "--sglang-settings"], env=cache_env(root), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False, timeout=3600)
    assert proc.returncode == 0, "%s run failed:\n%s" % (label, proc.stderr[-4000:])
    line = [x for x in proc.stdout.splitlines() if x.startswith("MEASURED ")][-1]
    return json.loads(line[len("MEASURED "):])


def cache_files(root):
    """{relative path: size} of every file under the two caches the workload uses."""
    out = {}
    for name in ("torchinductor", "triton"):
        top = Layout(profiles_root=root).fs(contract.CACHES[name][0])
        for base, _dirs, files in os.walk(top):
            for entry in files:
                full = os.path.join(base, entry)
                rel = os.path.relpath(full, root)
                if not bundle._is_signature_file(rel.replace(os.sep, "/")):
                    out[rel] = os.lstat(full).st_size
    return out


def test_a_bundled_compile_cache_is_reused_on_another_root(tmp_path):
    root_a = str(tmp_path / "host-a" / "profiles")
    root_b = str(tmp_path / "host-b" / "profiles")
    os.makedirs(root_a)
    os.makedirs(root_b)

    cold = measure(root_a, "cold")
    after_cold = cache_files(root_a)
    warm = measure(root_a, "warm")
    # the first warm run adds the configs coordinate descent visits from the cached winners (see the docstring)
    warm_added = sorted(set(cache_files(root_a)) - set(after_cold))
    assert cache_files(root_a), "the cold run wrote nothing under %s: torch.compile did not use the cache dirs" % root_a

    fields = dict((f, cold.get(f)) for f in ("device_name", "compute_capability", "cuda", "torch_version", "triton_version"))
    fields.update(compile_mode=MODE, tp=1, model_slug=contract.model_slug(MODEL))
    sig_path = Layout(profiles_root=root_a).fs(contract.signature_path(STAGE, MODEL))
    os.makedirs(os.path.dirname(sig_path), exist_ok=True)
    signature.write(sig_path, STAGE, fields, "gpu-test-builder", "2026-01-01T00:00:00.000Z", cold["seconds"])

    made = bundle.pack(root_a, MODEL, [STAGE], str(tmp_path / "store"), source_host="gpu-test-a")
    summary = bundle.install(made["path"], root_b, MODEL, {STAGE: fields}, run_id="gpu-test-receiver",
                             expected_sha256=made["digest"], headroom_mb=0)
    installed = cache_files(root_b)
    relocated = measure(root_b, "relocated")
    added = sorted(set(cache_files(root_b)) - set(installed))

    print("\nGPU %s (sm %s), torch %s, Triton %s, torch.compile mode %s, TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER=%s" % (
        cold["device_name"], cold["compute_capability"], cold["torch_version"], cold["triton_version"], MODE,
        STATIC_LAUNCHER))
    print("cold %.1f s, warm %.1f s, relocated %.1f s (bundle: %d files, %d bytes, archive %d bytes; install %.1f s)" % (
        cold["seconds"], warm["seconds"], relocated["seconds"], summary["file_count"], summary["total_bytes"],
        summary["archive_bytes"], summary["install_s"]))
    print("cold/relocated %.1fx; files added by the warm run in place: %d, by the relocated run: %d"
          % (cold["seconds"] / relocated["seconds"], len(warm_added), len(added)))

    assert relocated["checksum"] == pytest.approx(cold["checksum"], rel=1e-2)
    assert added == [], "the relocated run compiled again: %d new cache files, e.g. %s" % (len(added), added[:10])
    assert cold["seconds"] >= MIN_SPEEDUP * relocated["seconds"], (
        "the relocated run took %.1f s against %.1f s cold: less than %.0fx faster, so the bundled cache was not reused"
        % (relocated["seconds"], cold["seconds"], MIN_SPEEDUP))

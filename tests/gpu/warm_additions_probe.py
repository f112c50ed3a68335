"""Why a warm torch.compile run adds Triton cache files: a probe, run by hand on a GPU host (not a test).

    python tests/gpu/warm_additions_probe.py mode sglang nostatic nostatic_sglang

Per variant, in a fresh root: a cold run, two warm runs in place and one on a copy of the tree elsewhere, each
in a new process (probe-static-launcher-on.log comes from an earlier form: three warm runs, no copy); after each it prints the seconds, Inductor's counters
(fxgraph_cache_hit, coordesc_tuning_bench ...), the cache files added and changed, and, for each Triton kernel
added, how its metadata differs from the kernels of the same name already there. Variants: mode (torch.compile
mode max-autotune-no-cudagraphs), sglang (the same plus SGLang's set_torch_compile_config settings), and the
nostatic forms of both (TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER=0). Its output on an H200 is in tests/gpu/evidence/.
"""
import json, os, subprocess, sys, time

WORKLOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moe_workload.py")

def files(root):
    out = {}
    for base, _d, fs in os.walk(root):
        for f in fs:
            p = os.path.join(base, f)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out

def meta(root, rel):
    try:
        d = json.load(open(os.path.join(root, rel)))
    except Exception as e:
        return {"err": str(e)}
    keep = {}
    for k in ("name", "num_warps", "num_stages", "num_ctas", "maxnreg", "shared", "target", "hash", "constants", "signature", "ptx_version", "enable_fp_fusion", "launch_pdl", "debug", "instrumentation_mode"):
        if k in d:
            keep[k] = d[k]
    return keep

def run(root, variant, label, mode="max-autotune-no-cudagraphs"):
    extra = {"TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER": "0"} if variant.startswith("nostatic") else {}
    variant = variant.replace("nostatic_", "").replace("nostatic", "mode")
    env = dict(os.environ, **extra)
    env.update(TORCHINDUCTOR_CACHE_DIR=os.path.join(root, "torchinductor"), TRITON_CACHE_DIR=os.path.join(root, "triton"),
               TORCHINDUCTOR_FX_GRAPH_CACHE="1", TORCHINDUCTOR_AUTOGRAD_CACHE="1")
    before = files(root)
    t = time.time()
    argv = [sys.executable, WORKLOAD, mode] + (["--sglang-settings"] if variant == "sglang" else [])
    p = subprocess.run(argv, env=env, capture_output=True, text=True)
    if p.returncode:
        print(label, "FAILED", p.stderr[-3000:]); return
    m = json.loads([l for l in p.stdout.splitlines() if l.startswith("MEASURED ")][-1][9:])
    after = files(root)
    added = sorted(set(after) - set(before))
    changed = sorted(k for k in before if k in after and after[k] != before[k])
    print("== %s/%s: %.1fs (proc %.1fs), added %d, changed %d; inductor counters %s aot %s" % (variant, label, m["seconds"], time.time()-t, len(added), len(changed), m["inductor"], m["aot"]))
    kinds = {}
    for a in added:
        top = a.split(os.sep)[0]
        ext = os.path.splitext(a)[1]
        kinds[(top, ext)] = kinds.get((top, ext), 0) + 1
    print("   added by (cache, ext):", sorted(kinds.items()))
    for c in changed[:15]:
        print("   changed:", c)
    # triton json metadata of added kernels vs existing ones of the same name
    for a in added:
        if a.startswith("triton" + os.sep) and a.endswith(".json") and not os.path.basename(a).startswith("__grp__"):
            name = os.path.basename(a)
            md = meta(root, a)
            olds = [k for k in before if k.startswith("triton" + os.sep) and os.path.basename(k) == name]
            diffs = []
            for o in olds[:6]:
                mo = meta(root, o)
                diffs.append(dict((k, (mo.get(k), md.get(k))) for k in set(mo) | set(md) if mo.get(k) != md.get(k) and k != "hash"))
            print("   new kernel %s warps=%s stages=%s consts=%s; same-name existing %d; diffs vs them: %s" % (
                name, md.get("num_warps"), md.get("num_stages"), md.get("constants"), len(olds), json.dumps(diffs)[:600]))
    # best_config files
    bc = [a for a in added if a.endswith(".best_config")]
    bcc = [a for a in changed if a.endswith(".best_config")]
    print("   best_config added %d changed %d" % (len(bc), len(bcc)))
    for a in (bc + bcc)[:8]:
        print("     ", a, open(os.path.join(root, a)).read()[:300])

def main():
    for variant in sys.argv[1:]:
        root = "/tmp/diag-" + variant
        subprocess.run(["rm", "-rf", root]); os.makedirs(root)
        for label in ("cold", "warm1", "warm2"):
            run(root, variant, label)
            sys.stdout.flush()
        moved = root + "-moved"
        subprocess.run(["rm", "-rf", moved])
        subprocess.run(["cp", "-a", root, moved])
        run(moved, variant, "relocated")
        sys.stdout.flush()

main()

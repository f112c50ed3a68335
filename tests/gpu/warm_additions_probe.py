"""Why a warm torch.compile run adds Triton cache files: a probe, run by hand on a GPU host (not a test).

    python tests/gpu/warm_additions_probe.py mode sglang nostatic nostatic_sglang

Per variant, in a fresh root: a cold run, two warm runs in place and one on a copy of the tree elsewhere, each
in a new process (probe-static-launcher-on.log comes from an earlier form: three warm runs, no copy); after each it prints the seconds, Inductor's counters
(fxgraph_cache_hit, coordesc_tuning_bench ...), the cache files added and changed, and, for each Triton kernel
added, how its metadata differs from the kernels of the same name already there. Variants: mode (torch.compile
mode max-autotune-no-cudagraphs), sglang (the same plus SGLang's set_torch_compile_config settings), and the
nostatic forms of both (TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER=0). Its output on an H200 is in tests/gpu/evidence/.
"""
import json, os, subprocess, sys, textwrap, time

WORKLOAD = textwrap.dedent("""\
    import json, os, sys, time
    import torch, triton
    variant = sys.argv[2]
    if variant in ("sglang", "sglang_nocoord"):
        torch._inductor.config.coordinate_descent_tuning = True
        torch._inductor.config.triton.unique_kernel_names = True
        torch._inductor.config.fx_graph_cache = True
    class MoEBlock(torch.nn.Module):
        def __init__(self, hidden=1024, ffn=2048, experts=8, top_k=2):
            super().__init__()
            self.top_k = top_k
            self.gate = torch.nn.Linear(hidden, experts, bias=False)
            self.w1 = torch.nn.Parameter(torch.randn(experts, hidden, ffn) * 0.02)
            self.w2 = torch.nn.Parameter(torch.randn(experts, ffn, hidden) * 0.02)
        def forward(self, x):
            logits = self.gate(x)
            weights, chosen = torch.topk(torch.softmax(logits, dim=-1), self.top_k, dim=-1)
            mask = torch.zeros_like(logits).scatter(-1, chosen, weights)
            h = torch.nn.functional.silu(torch.einsum("th,ehf->etf", x, self.w1))
            y = torch.einsum("etf,efh->eth", h, self.w2)
            return torch.einsum("eth,te->th", y, mask)
    torch.manual_seed(0)
    block = MoEBlock().cuda().to(torch.bfloat16)
    if variant == "nocoord":
        compiled = torch.compile(block, options={"max_autotune": True, "coordinate_descent_tuning": False, "triton.cudagraphs": False}, dynamic=False)
    elif variant == "sglang_nocoord":
        compiled = torch.compile(block, options={"max_autotune": True, "coordinate_descent_tuning": False, "triton.cudagraphs": False}, dynamic=False)
    else:
        compiled = torch.compile(block, mode=sys.argv[1], dynamic=False)
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        for batch in (8, 64):
            out = compiled(torch.randn(batch, 1024, device="cuda", dtype=torch.bfloat16))
            torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    from torch._dynamo.utils import counters
    print("MEASURED " + json.dumps({"seconds": seconds, "inductor": dict(counters["inductor"]), "aot": dict(counters.get("aot_autograd", {}))}))
    """)

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

def run(script, root, variant, label, mode="max-autotune-no-cudagraphs"):
    extra = {"TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER": "0"} if variant.startswith("nostatic") else {}
    variant = variant.replace("nostatic_", "").replace("nostatic", "mode")
    env = dict(os.environ, **extra)
    env.update(TORCHINDUCTOR_CACHE_DIR=os.path.join(root, "torchinductor"), TRITON_CACHE_DIR=os.path.join(root, "triton"),
               TORCHINDUCTOR_FX_GRAPH_CACHE="1", TORCHINDUCTOR_AUTOGRAD_CACHE="1")
    before = files(root)
    t = time.time()
    p = subprocess.run([sys.executable, script, mode, variant], env=env, capture_output=True, text=True)
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
    out = os.environ.get("OUT", "/tmp")
    script = os.path.join(out, "workload.py")
    open(script, "w").write(WORKLOAD)
    for variant in sys.argv[1:]:
        root = "/tmp/diag-" + variant
        subprocess.run(["rm", "-rf", root]); os.makedirs(root)
        for label in ("cold", "warm1", "warm2"):
            run(script, root, variant, label)
            sys.stdout.flush()
        moved = root + "-moved"
        subprocess.run(["cp", "-a", root, moved])
        run(script, moved, variant, "relocated")
        sys.stdout.flush()

main()

"""One process, one measurement: torch.compile a small MoE block for two batch sizes and run each once.

    python tests/gpu/moe_workload.py <torch.compile mode> [--sglang-settings]

The caches are the ones the environment names (TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR ...). With
--sglang-settings it first sets what SGLang's set_torch_compile_config sets. Prints one line, MEASURED <json>:
the seconds of the two first calls, the GPU and versions, a checksum of the output and Inductor's counters.
Needs torch with CUDA and Triton; run by test_gpu_bundle_reuse.py and warm_additions_probe.py.
"""

import json
import sys
import time

import torch
import triton
from torch._dynamo.utils import counters


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
        mask = torch.zeros_like(logits).scatter(-1, chosen, weights)           # [tokens, experts]
        h = torch.nn.functional.silu(torch.einsum("th,ehf->etf", x, self.w1))  # [experts, tokens, ffn]
        y = torch.einsum("etf,efh->eth", h, self.w2)                           # [experts, tokens, hidden]
        return torch.einsum("eth,te->th", y, mask)


def main(argv):
    mode = argv[0]
    if "--sglang-settings" in argv[1:]:
        # what sglang/srt/compilation/torch_compile_decoration.py::set_torch_compile_config sets before compiling
        torch._inductor.config.coordinate_descent_tuning = True
        torch._inductor.config.triton.unique_kernel_names = True
        torch._inductor.config.fx_graph_cache = True
    torch.manual_seed(0)
    block = MoEBlock().cuda().to(torch.bfloat16)
    compiled = torch.compile(block, mode=mode, dynamic=False)
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        for batch in (8, 64):
            out = compiled(torch.randn(batch, 1024, device="cuda", dtype=torch.bfloat16))
            torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    props = torch.cuda.get_device_properties(0)
    print("MEASURED " + json.dumps({
        "seconds": seconds, "device_name": props.name, "compute_capability": "%d.%d" % (props.major, props.minor),
        "cuda": torch.version.cuda, "torch_version": torch.__version__, "triton_version": triton.__version__,
        "checksum": float(out.float().abs().sum()), "inductor": dict(counters["inductor"]),
        "aot": dict(counters.get("aot_autograd", {}))}))


if __name__ == "__main__":
    main(sys.argv[1:])

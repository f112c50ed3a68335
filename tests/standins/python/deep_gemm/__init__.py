# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""Stand-in `deep_gemm` (sgl-deep-gemm 0.2.3.post2), import behaviour only.

The real package's `_C.so` has libnvrtc.so.13 as a NEEDED library, so without it `import deep_gemm` fails with
the dynamic loader's error (sglang-facts.md 10). SGLANG_STANDIN_FAULT=nvrtc_missing reproduces that failure.
"""

import os

if "nvrtc_missing" in {n.strip() for n in (os.environ.get("SGLANG_STANDIN_FAULT") or "").split(",")}:
    raise ImportError("libnvrtc.so.13: cannot open shared object file: No such file or directory")

__version__ = "0.2.3.post2"

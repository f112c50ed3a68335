"""What the real-GPU tests share (not a test module; pytest.ini puts tests/gpu on sys.path)."""

import pytest


def require_cuda(what):
    """torch, with Triton and a CUDA GPU beside it; else the calling test module is skipped, naming what needs them."""
    torch = pytest.importorskip("torch", reason="%s needs torch" % what)
    pytest.importorskip("triton", reason="%s needs Triton" % what)
    if not torch.cuda.is_available():
        pytest.skip("%s needs a CUDA GPU" % what, allow_module_level=True)
    return torch

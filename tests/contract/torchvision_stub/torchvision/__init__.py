"""A stub of torchvision for the contract-test venv only (not a stand-in for the real server).

Why: sglang 0.5.23 imports torchvision at module level on the path that ServerArgs.resolve_once()
takes (sglang/srt/configs/__init__.py -> nano_nemotron_vl.py -> multimodal/internvl_utils.py, and
configs/deepseek_ocr.py). No CPU torchvision wheel matches the local torch 2.13.0, and the PyPI
wheel fails to import with "operator torchvision::nms does not exist". Parsing and resolving
server arguments never transforms an image, so a stub that provides the imported names is enough.

It is copied into the venv without package metadata on purpose: importlib.metadata then does not
see it, so transformers reports torchvision as unavailable and never tries to use it.
"""

__version__ = "0.0.0+stub"

from . import io, transforms  # noqa: E402,F401

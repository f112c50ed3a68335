"""torchvision.transforms.v2 stub."""

from torchvision._unavailable import module_getattr
from torchvision.transforms.v2 import functional  # noqa: F401

__getattr__ = module_getattr(__name__)

"""torchvision.transforms.v2.functional stub."""

from torchvision._unavailable import module_getattr
from torchvision.transforms.functional import InterpolationMode  # noqa: F401

__getattr__ = module_getattr(__name__)

"""torchvision.transforms stub (Compose, Resize, ... are placeholders)."""

from torchvision._unavailable import module_getattr
from torchvision.transforms import functional  # noqa: F401
from torchvision.transforms.functional import InterpolationMode  # noqa: F401

__getattr__ = module_getattr(__name__)

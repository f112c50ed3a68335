"""torchvision.io stub: ImageReadMode (imported by transformers.image_utils), placeholders otherwise."""

from enum import Enum

from torchvision._unavailable import module_getattr


class ImageReadMode(Enum):
    UNCHANGED = 0
    GRAY = 1
    GRAY_ALPHA = 2
    RGB = 3
    RGB_ALPHA = 4
    RGBA = 4


__getattr__ = module_getattr(__name__)

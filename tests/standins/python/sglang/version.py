# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
from sglang._version import __version__, __version_tuple__  # noqa: F401

# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
# The real file's format (vcs-versioning), sglang-facts.md 10.
from __future__ import annotations

__all__ = [
    "__version__",
    "__version_tuple__",
    "version",
    "version_tuple",
    "__commit_id__",
    "commit_id",
]

__version__ = version = '0.5.23'
__version_tuple__ = version_tuple = (0, 5, 23)

__commit_id__ = commit_id = None

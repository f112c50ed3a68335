# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""Stand-in `sglang` package (stdlib only).

Like the real package, importing it points the third-party JIT caches at
SGLANG_CACHE_DIR with os.environ.setdefault (values you export win).
"""

from sglang.srt.environ import redirect_third_party_caches as _redirect_third_party_caches
from sglang.version import __version__

_redirect_third_party_caches()

__standin__ = True
__all__ = ["__version__", "__standin__"]

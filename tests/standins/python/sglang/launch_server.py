# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""`python3 -m sglang.launch_server ...`: the stand-in server (see sglang/srt/_standin/server.py)."""

import sys
import warnings

from sglang.srt._standin.server import main

if __name__ == "__main__":
    warnings.warn(
        "'python -m sglang.launch_server' is still supported, but "
        "'sglang serve' is the recommended entrypoint.\n"
        "  Example: sglang serve --model-path <model> [options]",
        UserWarning,
        stacklevel=1,
    )
    sys.exit(main())

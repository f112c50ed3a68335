# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""The pretend scheduler process (argv carries `sglang::scheduler_TP0`, like the real one's title).

It does no work: it exists so that the server is a process tree, as the real one is, and
tearing down only the main process is not enough. It lives until its stdin reaches EOF (the
server process is gone) or a signal ends it; with the ignore_sigterm fault it ignores SIGTERM.
"""

import signal
import sys

from sglang.srt._standin import faults


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; the server ends us
    if "ignore_sigterm" in faults.active():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.stdin.buffer.read()


if __name__ == "__main__":
    main()

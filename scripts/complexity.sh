#!/usr/bin/env bash
# Cyclomatic complexity gate (make lint): no function in the modules, the action plugins or module_utils (the
# runtime included) may score above 20 (radon rank D or worse). Prints the offenders and exits 1 when there are any.
# Usage: scripts/complexity.sh [path ...]   (default: the three plugin folders of the collection)
set -euo pipefail
cd "$(dirname "$0")/.."
plugins=collections/ansible_collections/sglang/prep/plugins
max=20
[ $# -gt 0 ] || set -- "$plugins/modules" "$plugins/action" "$plugins/module_utils"
offenders=$(.venv/bin/radon cc --min D --show-complexity "$@")
if [ -n "$offenders" ]; then
    echo "error: cyclomatic complexity above $max (split these functions):" >&2
    echo "$offenders" >&2
    exit 1
fi
echo "complexity: every function in $* is at most $max"

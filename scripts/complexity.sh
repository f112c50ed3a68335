#!/usr/bin/env bash
# Cyclomatic complexity gate (make lint): no function in the collection's plugins (modules, action, filter and
# lookup plugins, module_utils with the container runtime sglang_prep/** it ships) or in the scripts the role
# deploys to a host (roles/*/files/*.py, the runtime's unpacker) may score above 20 (radon rank D or worse).
# Prints the offenders and exits 1 when there are any.
# Usage: scripts/complexity.sh [path ...]   (default: the folders above)
set -euo pipefail
cd "$(dirname "$0")/.."
collection=collections/ansible_collections/sglang/prep
plugins=$collection/plugins
max=20
if [ $# -eq 0 ]; then
    set -- "$plugins/modules" "$plugins/action" "$plugins/filter" "$plugins/lookup" "$plugins/module_utils"
    for script in "$collection"/roles/*/files/*.py; do
        [ -e "$script" ] && set -- "$@" "$script"
    done
fi
offenders=$(.venv/bin/radon cc --min D --show-complexity "$@")
if [ -n "$offenders" ]; then
    echo "error: cyclomatic complexity above $max (split these functions):" >&2
    echo "$offenders" >&2
    exit 1
fi
echo "complexity: every function in $* is at most $max"

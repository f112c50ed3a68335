#!/usr/bin/env bash
# Prints the path of a Python >= 3.12 (ansible 14 / ansible-core 2.21 need it on the controller).
# Looks at $SGLANG_PREP_PYTHON, python3.13 / python3.12 / python3 on PATH, and pyenv installs.
set -euo pipefail
ok() { "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }
candidates=()
[ -n "${SGLANG_PREP_PYTHON:-}" ] && candidates+=("$SGLANG_PREP_PYTHON")
for name in python3.12 python3.13 python3; do
  p=$(command -v "$name" 2>/dev/null) && candidates+=("$p")
done
for root in "${PYENV_ROOT:-$HOME/.pyenv}" /root/.pyenv; do
  for p in "$root"/versions/3.12*/bin/python3 "$root"/versions/3.13*/bin/python3; do
    [ -x "$p" ] && candidates+=("$p")
  done
done
for p in "${candidates[@]}"; do
  if ok "$p"; then echo "$p"; exit 0; fi
done
echo "error: no Python >= 3.12 with the venv module found." >&2
echo "Looked at: \$SGLANG_PREP_PYTHON, python3.13, python3.12 and python3 on PATH, and pyenv versions 3.12*/3.13*." >&2
echo "Install one (e.g. 'apt-get install python3.12-venv' or 'pyenv install 3.12') or set SGLANG_PREP_PYTHON=/path/to/python3.12." >&2
exit 1

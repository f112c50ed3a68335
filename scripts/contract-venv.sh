#!/usr/bin/env bash
# Creates .cache/sglang-contract-venv: Python 3.11 with the REAL sglang 0.5.23 argument parser, for
# tests/contract (sglang-facts.md section 9). CPU only: torch==2.13.0 (on this kind of machine pip
# finds a local CPU wheel through its config in /etc/xdg/pip), sglang==0.5.23 --no-deps, the
# pinned imports of tests/contract/requirements-venv.txt, and a torchvision stub
# (tests/contract/torchvision_stub; its __init__.py says why).
#
# Cached and idempotent: the venv records a key (hash of this script, the requirement list and the
# stub); when the key matches, nothing is done (well under a second). Otherwise the venv is
# rebuilt from scratch; the key is written last, so an interrupted build is redone next time.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.cache/sglang-contract-venv
LOG=.cache/sglang-contract-venv.log
REQS=tests/contract/requirements-venv.txt
STUB=tests/contract/torchvision_stub
TORCH_SPEC="torch==2.13.0"
SGLANG_SPEC="sglang==0.5.23"
CHECK='from sglang.srt.server_args import prepare_server_args'

key=$( { cat "$0" "$REQS"; find "$STUB" -type f -name '*.py' | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-16)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.contract-key" 2>/dev/null)" = "$key" ]; then
  exit 0
fi

is_py311() { "$1" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; }
find_python() {
  local candidates=() p
  [ -n "${SGLANG_PREP_CONTRACT_PYTHON:-}" ] && candidates+=("$SGLANG_PREP_CONTRACT_PYTHON")
  for p in python3.11 python3; do
    p=$(command -v "$p" 2>/dev/null) && candidates+=("$p")
  done
  for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11*/bin/python3 /usr/bin/python3.11; do
    [ -x "$p" ] && candidates+=("$p")
  done
  for p in "${candidates[@]}"; do
    if is_py311 "$p"; then echo "$p"; return 0; fi
  done
  return 1
}

python=$(find_python) || {
  if [ "$(id -u)" = 0 ] && [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing python3.11-venv (Debian package) ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11-venv >/dev/null
  fi
  python=$(find_python)
} || {
  echo "error: the contract tests need Python 3.11 with venv/ensurepip (sglang 0.5.23 wheels are cp311)." >&2
  echo "Looked at \$SGLANG_PREP_CONTRACT_PYTHON, python3.11 and python3 on PATH, pyenv 3.11.*, /usr/bin/python3.11." >&2
  echo "Install one (apt-get install python3.11-venv, or pyenv install 3.11) or set SGLANG_PREP_CONTRACT_PYTHON." >&2
  exit 1
}

echo "Building $VENV with $python (log: $LOG) ..."
start=$(date +%s)
mkdir -p .cache
rm -rf "$VENV"
: >"$LOG"
run() { "$@" >>"$LOG" 2>&1 || { echo "error: '$*' failed; last lines of $LOG:" >&2; tail -n 25 "$LOG" >&2; exit 1; }; }
run "$python" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
run "${pip[@]}" install "$TORCH_SPEC"
run "${pip[@]}" install --no-deps "$SGLANG_SPEC"
run "${pip[@]}" install -r "$REQS"
purelib=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# Copied without package metadata on purpose (see the stub's __init__.py).
cp -R "$STUB/torchvision" "$purelib/"
run "$VENV/bin/python" -c "$CHECK"
echo "$key" >"$VENV/.contract-key"
echo "Contract venv ready in $(( $(date +%s) - start )) s: $("$VENV/bin/python" -c 'import sglang, torch; print("sglang", sglang.__version__, "torch", torch.__version__)' 2>/dev/null)"

#!/usr/bin/env bash
# ansible-test sanity for the collection, offline-capable.
# ansible-test bootstraps pip in its venvs with a get-pip script it downloads from a host that
# may be unreachable; we give it a small stand-in in its cache that installs pip via ensurepip
# and then the requested pip version from the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
pip_version=$("$BIN/python" - <<'PY'
import inspect, re
from ansible_test._internal import python_requirements as pr
m = re.search(r"pip='([0-9.]+)'", inspect.getsource(pr.get_venv_packages))
print(m.group(1) if m else "")
PY
)
[ -n "$pip_version" ] || { echo "error: could not find the pip version ansible-test bootstraps" >&2; exit 1; }
cache=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
mkdir -p "$(dirname "$cache")"
cat > "$cache" <<PY
# Stand-in for get-pip.py (offline CI): ensurepip, then the requested packages from the index.
import subprocess, sys
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + args)
PY
cd collections/ansible_collections/sglang/prep
py=$("$BIN/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
exec "$BIN/ansible-test" sanity --venv --python "$py" --requirements "$@"

"""Contract tier: SGLang 0.5.23's --api-key check, as the stand-in server enforces it and the runtime meets it.

The REAL decide_request_auth (srt/utils/auth.py, pure, runs on CPU) against the stand-in's auth_status for every
endpoint the runtime and the stand-in use, with and without keys and with good, bad and malformed Authorization
headers; the real route levels from the installed http_server.py; the real refusal bodies. A missing venv is a
failure, not a skip.
"""

import json
import subprocess

import pytest

from contract_probe import REPO, clean_env, require_venv

PROBE = REPO / "tests" / "contract" / "auth_probe.py"
STANDIN_HTTP = REPO / "tests" / "standins" / "python" / "sglang" / "srt" / "_standin" / "http.py"
MARK = "AUTH-PROBE-RESULT "


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    proc = subprocess.run([str(require_venv()), str(PROBE), str(STANDIN_HTTP)], capture_output=True, text=True,
                          env=clean_env(), timeout=300, cwd=str(tmp_path_factory.mktemp("auth")))
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    return json.loads(lines[-1][len(MARK):])


def test_the_stand_in_decides_every_request_as_real_sglang(probe):
    assert probe["mismatches"] == []


def test_the_runtime_endpoints_are_guarded_by_the_api_key_and_probes_are_not(probe):
    levels = probe["levels"]
    # what the stage runtime calls: readiness (open), /server_info and /generate (need the key), /metrics (open)
    assert levels["/generate"] == "NORMAL" and levels["/server_info"] == "NORMAL"
    assert levels["/flush_cache"] == "ADMIN_OPTIONAL"
    assert probe["open_prefixes"] == ["/health", "/ready", "/metrics"]


def test_the_stand_in_refuses_with_the_real_bodies(probe):
    for code, (real, standin, in_middleware) in probe["bodies"].items():
        assert in_middleware, code
        assert standin == real, code

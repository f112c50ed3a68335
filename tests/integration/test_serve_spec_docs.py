"""The serve-spec hand-off of docs/usage.md, for real: the `docker run` line serve-spec prints on a primed host is the
docs' line (but for the host's own paths, user, image and model), it starts a server as written against the stand-in
image, and the live zero-JIT check (serve-verify: serve's own check_live and servecheck.judge) passes on it.

The line asks for `--gpus all`. A Docker engine without the NVIDIA Container Toolkit refuses that ("could not select
device driver"); scripts/ensure-docker.sh starts dockerd with the stand-in NVIDIA hook (tests/standins/
nvidia-container-hook) on its PATH on such machines. An engine started otherwise, without the toolkit, skips the
line's run, saying so.
"""

import json
import os
import re
import subprocess
import time

import pytest

import role_harness as rh
from docker_util import REPO, docker

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates a host user and runs Docker as root, like molecule")

USAGE = os.path.join(REPO, "collections", "ansible_collections", "sglang", "prep", "docs", "usage.md")
HOST_USER = "sglang-spec-it"
HOST_UID = 48371
SERVICE = "sglang-serve"  # the container name of the docs' line
PORT = 30000
# the docs' example host (docs/usage.md: alice, uid 1001, primed for /models/Qwen3-30B-A3B, image sglang-prep:v0.5.23)
DOC_ROOT = "/home/alice/sglang-observability"
DOC_USER = "1001:1001"
DOC_IMAGE = "sglang-prep:v0.5.23"
DOC_MODEL = "/models/Qwen3-30B-A3B"
NO_GPU_DRIVER = "could not select device driver"
RESULT = re.compile(r"^RESULT (\{.*\})$", re.M)


@pytest.fixture(scope="module")
def primed():
    # host networking, as the docs' line has it: the check in the primed container reaches the server on 127.0.0.1
    with rh.primed_host(HOST_USER, HOST_UID, "sglang-prep-spec-it", stages=list(rh.contract.STAGE_ORDER),
                        extra_vars={"prime_network_mode": "host", "prime_server_port": PORT}) as host:
        yield host


def docs_line():
    text = open(USAGE, encoding="utf-8").read()
    match = re.search(r"<!-- serve-spec: docker-run -->\n```text\n(.*?)\n```", text, re.S)
    assert match, "docs/usage.md has no serve-spec docker-run example"
    return match.group(1)


def runtime(host, *args):
    """python3 -m sglang_prep ... in the primed container as devuser: (exit code, stdout, stderr)."""
    proc = docker("exec", "-u", "devuser", host.container, "python3", "-m", "sglang_prep", *args, check=False,
                  timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def serve_spec_line(host):
    rc, out, err = runtime(host, "serve-spec", "--model", rh.MODEL, "--format", "docker-run")
    assert rc == 0, (out, err)
    return out.strip()


def wait_healthy(timeout_s=120):
    """Wait until the server of the docs' line answers /health on the host's port 127.0.0.1:30000 (or its container
    stops, or the deadline passes): (True, "") or (False, why)."""
    import urllib.request
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = docker("inspect", "--format", "{{.State.Running}}", SERVICE, check=False).stdout.strip()
        if state != "true":
            return False, "the container stopped: %s" % docker("logs", "--tail", "30", SERVICE, check=False).stderr
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % PORT, timeout=2) as resp:
                if resp.status == 200:
                    return True, ""
        except OSError:
            pass
        time.sleep(0.1)
    return False, "no 200 from /health within %d s" % timeout_s


def run_line(line):
    """Run a docker run line as written (a shell reads it); skip where the engine cannot hand out --gpus."""
    proc = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0 and NO_GPU_DRIVER in proc.stderr:
        pytest.skip("this Docker engine cannot run --gpus (%s): it has no NVIDIA Container Toolkit and was not started "
                    "by scripts/ensure-docker.sh, which puts the stand-in NVIDIA hook on its PATH" % proc.stderr.strip())
    assert proc.returncode == 0, "the docs' docker run line failed (%d): %s" % (proc.returncode, proc.stderr)
    return proc.stdout.strip()


def verify(host, log_name, *args):
    """serve-verify against the server of the docs' line, its docker logs followed into the host's telemetry dir."""
    log_host = host.path("telemetry", log_name)
    with open(log_host, "w", encoding="utf-8") as handle:
        os.chown(log_host, host.user.pw_uid, host.user.pw_gid)  # the host user's file, like every file there
        follower = subprocess.Popen(["docker", "logs", "-f", SERVICE], stdout=handle, stderr=subprocess.STDOUT)
    try:
        rc, out, err = runtime(host, "serve-verify", "--model", rh.MODEL, "--log", "/telemetry/" + log_name, *args)
    finally:
        follower.terminate()
        follower.wait(timeout=30)
        os.unlink(log_host)
    match = RESULT.search(out)
    assert match, (rc, out, err)
    return rc, json.loads(match.group(1)), err


def test_serve_spec_prints_the_docs_docker_run_line_for_this_host(primed):
    line = serve_spec_line(primed)
    _run_id, manifest = primed.run()
    ours = "%d:%d" % (primed.user.pw_uid, primed.user.pw_gid)
    expected = docs_line().replace(DOC_ROOT, primed.root).replace(DOC_USER, ours).replace(
        DOC_IMAGE, manifest["image"]).replace(DOC_MODEL, rh.MODEL)
    assert line == expected, "serve-spec on a primed host:\n%s\nthe docs' line for this host:\n%s" % (line, expected)


def test_the_docs_docker_run_line_serves_as_written_with_zero_jit(primed):
    line = serve_spec_line(primed)
    docker("rm", "-f", SERVICE, check=False)
    try:
        run_line(line)
        ready, why = wait_healthy()
        assert ready, why
        rc, result, err = verify(primed, "docs-serve.log")
        assert rc == 0 and result["status"] == "ok", (result.get("message"), err)
        assert result["zero_jit"] is True, result["message"]
        requests = result["serve_check"]["requests"]
        assert requests and all(r["ok"] for r in requests), requests
        assert result["first_text"], result
        # the server is the docs' one: the primed argv, as devuser's uid, metrics on
        rows = [line.split(None, 2) for line in docker("top", SERVICE, "-eo", "pid,uid,args").stdout.splitlines()[1:]]
        servers = [int(uid) for _pid, uid, args in rows if "sglang.launch_server" in args and "--enable-metrics" in args]
        assert servers and all(uid == primed.user.pw_uid for uid in servers), rows
    finally:
        docker("rm", "-f", SERVICE, check=False)


def test_the_check_catches_a_server_that_does_not_read_the_primed_caches(primed):
    # the same line with an empty directory at /profiles: the server finds no primed kernel, and its fail-on-miss
    # switch (SGLANG_CRASH_ON_JIT_COMPILE, part of the line) stops it at the first one instead of compiling
    line = serve_spec_line(primed)
    mount = " -v %s:/profiles " % primed.path("profiles")
    assert mount in line, line
    empty = os.path.join(primed.base, "empty-profiles")
    os.makedirs(empty, exist_ok=True)
    os.chown(empty, primed.user.pw_uid, primed.user.pw_gid)
    docker("rm", "-f", SERVICE, check=False)
    try:
        run_line(line.replace(mount, " -v %s:/profiles " % empty))
        rc, result, _err = verify(primed, "docs-serve-unprimed.log", "--ready-timeout", "10")
        assert rc == 1 and result["status"] == "error" and result["zero_jit"] is not True, result
        assert any("SGLANG_CRASH_ON_JIT_COMPILE forbids compiling" in line for line in result["log_tail"]), result
    finally:
        docker("rm", "-f", SERVICE, check=False)

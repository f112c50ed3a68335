"""What the integration harnesses share: the docker CLI, the test image, waiting on a condition."""

import json
import os
import re
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNTIME_PKG = os.path.join(REPO, "collections", "ansible_collections", "sglang", "prep", "plugins", "module_utils",
                           "sglang_prep")
IMAGE = os.environ.get("SGLANG_PREP_TEST_IMAGE", "sglang-prep/standin:test")


def docker(*args, check=True, timeout=120):
    """Run the docker CLI with an argument list; AssertionError with its message when it fails."""
    proc = subprocess.run(["docker"] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("docker %s failed (%d): %s" % (" ".join(map(str, args[:4])), proc.returncode,
                                                            proc.stderr.strip() or proc.stdout.strip()))
    return proc


def ensure_image():
    """The test image, built offline by scripts/build-images.sh when it is not there yet."""
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        subprocess.run([os.path.join(REPO, "scripts", "build-images.sh")], check=True, cwd=REPO, timeout=1800)
    return IMAGE


def pinned_image():
    """The test image under its content-hash tag (scripts/build-images.sh), a name no rebuild of another checkout
    on this machine moves, else IMAGE: for tests that run the role several times and expect the same image."""
    image = ensure_image()
    proc = docker("image", "inspect", "--format", "{{json .RepoTags}}", image, check=False)
    repo = image.rsplit(":", 1)[0]
    tags = sorted(t for t in json.loads(proc.stdout or "[]") if t.startswith(repo + ":") and t != image) \
        if proc.returncode == 0 else []
    hashed = [t for t in tags if re.match(r"^[0-9a-f]{16}$", t.rsplit(":", 1)[1])]
    return hashed[0] if hashed else image


def wait_for(condition, timeout_s, what, poll_s=0.02):
    """Poll ``condition`` every ``poll_s`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout_s, what))
        time.sleep(poll_s)

"""Start the real image the way the role does, on bind-mounted host directories owned by a test UID.

Used by test_init.py. Everything goes through the docker CLI with argument lists. The host
directories are created as root and chowned to the test UID here, in test setup: that is the
operator's job on a real host; the container itself never changes ownership.
"""

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid

from docker_util import IMAGE, REPO, RUNTIME_PKG, docker, ensure_image, wait_for  # noqa: F401

TEST_UID = 4242  # not root, not 1000
TEST_GID = 4242


class HostRoot:
    """$HOME/sglang-observability stand-in: telemetry, profiles, models, huggingface."""

    def __init__(self, uid=TEST_UID, gid=TEST_GID, owners=None):
        self.base = tempfile.mkdtemp(prefix="sglang-prep-init-it-", dir="/var/tmp")
        os.chmod(self.base, 0o755)  # test setup only
        self.uid, self.gid = uid, gid
        owners = owners or {}
        for name in ("telemetry", "profiles", "models", "huggingface"):
            path = self.path(name)
            os.mkdir(path)
            os.chown(path, *owners.get(name, (uid, gid)))  # test setup only: the operator's job on a real host

    def path(self, *parts):
        return os.path.join(self.base, *parts)

    @property
    def pointer(self):
        return self.path("telemetry", "container_run_meta.env")

    def read_pointer(self):
        with open(self.pointer, encoding="utf-8") as handle:
            return dict(line.split("=", 1) for line in handle.read().splitlines() if line)

    def files(self, name):
        """Every path under telemetry/ or profiles/ (directories included), with its lstat."""
        out = []
        for root, dirs, files in os.walk(self.path(name)):
            for entry in dirs + files:
                full = os.path.join(root, entry)
                out.append((full, os.lstat(full)))
        return out

    def remove(self):
        shutil.rmtree(self.base, ignore_errors=True)


class Container:
    """One container of the test image, started like the role starts it."""

    def __init__(self, root, env=None, name=None, image=None):
        self.root = root
        self.name = name or "sglang-prep-init-it-" + uuid.uuid4().hex[:8]
        self.image = image or IMAGE
        self.env = {
            "SGLANG_PREP_UID": str(root.uid),
            "SGLANG_PREP_GID": str(root.gid),
            "SGLANG_PREP_HOST_TELEMETRY_ROOT": root.path("telemetry"),
            "SGLANG_PREP_HOST_PROFILES_ROOT": root.path("profiles"),
            "SGLANG_PREP_HOST_MODELS_ROOT": root.path("models"),
            "SGLANG_PREP_HOST_HF_ROOT": root.path("huggingface"),
            "SGLANG_PREP_IMAGE": self.image,
            "SGLANG_PREP_GIT_REVISION": "0123abc",
        }
        self.env.update(env or {})
        self.started_at = None

    def run(self):
        args = ["run", "-d", "--name", self.name,
                "-v", "%s:/telemetry" % self.root.path("telemetry"),
                "-v", "%s:/profiles" % self.root.path("profiles"),
                "-v", "%s:/models" % self.root.path("models"),
                "-v", "%s:/home/devuser/.cache/huggingface" % self.root.path("huggingface"),
                "-v", "%s:/opt/sglang-prep/sglang_prep:ro" % RUNTIME_PKG]
        for key, value in sorted(self.env.items()):
            args += ["-e", "%s=%s" % (key, value)]
        self.started_at = time.monotonic()
        docker(*(args + [self.image]))
        return self

    def exec(self, *cmd, user="devuser", check=True, timeout=60):
        return docker("exec", "-u", user, self.name, *cmd, check=check, timeout=timeout)

    def python(self, code, user="devuser"):
        return self.exec("python3", "-c", code, user=user).stdout

    def logs(self):
        proc = docker("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def state(self):
        return json.loads(docker("inspect", "--format", "{{json .State}}", self.name).stdout)

    def wait_exit(self, timeout_s=30):
        wait_for(lambda: not self.state()["Running"], timeout_s, "container %s to exit" % self.name)
        return self.state()["ExitCode"]

    def wait_pointer(self, timeout_s=30):
        """Poll the host pointer; at the instant it appears, the manifest it names must be complete."""
        def seen():
            if os.path.exists(self.root.pointer):
                return self.root.read_pointer()
            if not self.state()["Running"]:
                raise AssertionError("container exited before publishing a pointer:\n" + self.logs())
            return None
        ptr = wait_for(seen, timeout_s, "the pointer of %s" % self.name)
        with open(ptr["CONTAINER_RUN_META_JSON_HOST"], encoding="utf-8") as handle:
            first_read = json.load(handle)  # raises if the manifest were partial or missing
        return ptr, first_read, time.monotonic() - self.started_at

    def prometheus_query(self, query):
        code = ("import json, urllib.parse, urllib.request; "
                "print(urllib.request.urlopen('http://127.0.0.1:9090/api/v1/query?query=' + urllib.parse.quote(%r), "
                "timeout=5).read().decode())" % query)
        return json.loads(self.python(code))

    def series(self, query, timeout_s=40):
        """The result vector of ``query`` once it is not empty (node_exporter is scraped every 5 s)."""
        def answer():
            result = self.prometheus_query(query)
            assert result["status"] == "success", (query, result)
            return result["data"]["result"] or None
        return wait_for(answer, timeout_s, "Prometheus to answer %s with series" % query, poll_s=1)

    def remove(self):
        docker("rm", "-f", self.name, check=False)


@contextlib.contextmanager
def model_container(model_name, env):
    """A running container on a fresh host root that holds one stand-in model (tests/standins/models); removed after."""
    image = ensure_image()
    root = HostRoot()
    shutil.copytree(os.path.join(REPO, "tests", "standins", "models", model_name), root.path("models", model_name))
    box = Container(root, image=image, env=env).run()
    try:
        yield box
    finally:
        box.remove()
        root.remove()

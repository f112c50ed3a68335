"""Run the real stage engine inside the test image, as a non-root UID, on bind-mounted host directories.

The container init is not involved: the container runs `sleep` (under docker's --init), and the
test writes a valid pointer and manifest for the run itself, with the runtime package's own
manifest.container_paths/host_paths and manifest.REQUIRED_FIELDS. Stages run exactly as the host
module runs them: `docker exec -u <uid>:<gid> <container> python3 -m sglang_prep stage ...`.
Host directories are created and chowned here, in test setup (the operator's job on a real host).
"""

import json
import os
import shutil
import tempfile
import uuid

from docker_util import IMAGE, REPO, RUNTIME_PKG, docker, ensure_image, wait_for  # noqa: F401

COLLECTIONS = os.path.join(REPO, "collections")
# FP8 block-quantized MoE: every stage has work, DeepGEMM included (SGLang runs DeepGEMM only for such weights).
# tiny-moe (bf16) and tiny-hybrid (mamba/attention) are beside it under /models.
MODEL_NAME = "tiny-moe-fp8-block"
STANDIN_MODELS = os.path.join(REPO, "tests", "standins", "models")
STANDIN_MODEL = os.path.join(STANDIN_MODELS, MODEL_NAME)
UID = 3456  # not root, not 1000
GID = 3456
MODEL = "/models/" + MODEL_NAME
RUN_ID = "container-run-20260102T030405Z-5a9e1234"
FAST = {"SGLANG_STANDIN_START_DELAY_S": "0.05", "SGLANG_STANDIN_WARMUP_S": "0.05", "SGLANG_STANDIN_TUNER_S": "0.05"}
BATCH_SIZES = ("1", "2", "4")

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, manifest

# Runs inside the container: is the stage lock free, is the port free, is any stage process left?
STATE_PROBE = r"""
import fcntl, json, os, socket, sys
lock = sys.argv[1]
port = int(sys.argv[2])
out = {"lock_free": True, "port_free": True, "servers": []}
if os.path.exists(lock):
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        out["lock_free"] = False
    os.close(fd)
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    sock.bind(("127.0.0.1", port))
except OSError:
    out["port_free"] = False
sock.close()
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != os.getpid():
        try:
            cmd = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode()
            stat = open("/proc/%s/stat" % pid).read()
        except OSError:
            continue
        if ("sglang.launch_server" in cmd or "tuning_fused_moe" in cmd) and stat.split(")")[-1].split()[0] != "Z":
            out["servers"].append(cmd)
print(json.dumps(out))
"""





class StageResult(object):
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        self.last_line = lines[-1] if lines else ""
        self.json = None
        if self.last_line.startswith(contract.RESULT_PREFIX):
            self.json = json.loads(self.last_line[len(contract.RESULT_PREFIX):])

    def __getitem__(self, key):
        return self.json[key]

    def __repr__(self):
        return "<StageResult rc=%s %s>\nstderr:\n%s" % (self.rc, json.dumps(self.json, indent=1)[:3000], self.stderr[-3000:])


class StageContainer(object):
    """One container of the test image with a hand-made run (pointer + manifest)."""

    def __init__(self, prometheus_url=None):
        self.base = tempfile.mkdtemp(prefix="sglang-prep-stage-it-", dir="/var/tmp")
        os.chmod(self.base, 0o755)  # test setup only
        self.name = "sglang-prep-stage-it-" + uuid.uuid4().hex[:8]
        for sub in ("telemetry", "profiles", "models"):
            os.mkdir(self.host(sub))
        for name in (MODEL_NAME, "tiny-moe", "tiny-hybrid"):
            shutil.copytree(os.path.join(STANDIN_MODELS, name), self.host("models", name))
        self._write_run(prometheus_url)
        for root, dirs, files in os.walk(self.base):  # test setup: the host user owns the host root
            for entry in [root] + [os.path.join(root, n) for n in dirs + files]:
                os.lchown(entry, UID, GID)
        args = ["run", "-d", "--init", "--name", self.name, "--network", "none", "--entrypoint", "sleep",
                "-v", "%s:/telemetry" % self.host("telemetry"), "-v", "%s:/profiles" % self.host("profiles"),
                "-v", "%s:/models" % self.host("models"),
                "-v", "%s:/opt/sglang-prep/sglang_prep:ro" % RUNTIME_PKG]
        for key, value in sorted(FAST.items()):
            args += ["-e", "%s=%s" % (key, value)]
        docker(*(args + [IMAGE, "infinity"]))

    def host(self, *parts):
        return os.path.join(self.base, *parts)

    def _write_run(self, prometheus_url):
        cpaths = manifest.container_paths(RUN_ID)
        hpaths = manifest.host_paths(cpaths, {"telemetry": self.host("telemetry"), "profiles": self.host("profiles"),
                                              "models": self.host("models"), "huggingface": None})
        data = {"schema_version": contract.SCHEMA_VERSION, "container_run_id": RUN_ID,
                "started_at": "2026-01-02T03:04:05Z", "image": IMAGE, "git_revision": None, "services": {},
                "telemetry_surfaces": {"prometheus": prometheus_url}, "storage": {"log_file": cpaths["log_file"]},
                "paths": {"container": cpaths, "host": hpaths}, "caches": {}, "profile_cache": {"start": {}}}
        assert all(field in data for field in manifest.REQUIRED_FIELDS)
        os.makedirs(self.host("telemetry", "logs"))
        os.makedirs(self.host("telemetry", "container_runs", RUN_ID))
        with open(self.host("telemetry", "container_runs", RUN_ID + ".json"), "w") as handle:
            json.dump(data, handle)
        with open(self.host("telemetry", "logs", RUN_ID + ".log"), "w") as handle:
            handle.write("%s [init] run %s started (test harness)\n" % ("2026-01-02T03:04:05Z", RUN_ID))
        with open(self.host("telemetry", contract.POINTER_NAME), "w") as handle:
            handle.write("%s=%s\n%s=%s\n" % (contract.POINTER_KEY, cpaths["manifest"], contract.POINTER_HOST_KEY,
                                             hpaths["manifest"]))

    # ------------------------------------------------------------ running things inside
    def exec(self, *cmd, env=None, detach=False, user="%d:%d" % (UID, GID), check=False, timeout=180):
        args = ["exec"] + (["-d"] if detach else []) + ["-u", user]
        for key, value in sorted((env or {}).items()):
            args += ["-e", "%s=%s" % (key, value)]
        return docker(*(args + [self.name] + list(cmd)), check=check, timeout=timeout)

    def stage(self, stage, *args, env=None, mode=None, timeout=180, model=MODEL):
        cmd = ["python3", "-m", "sglang_prep", "stage", stage, "--model", model, "--disk-headroom-mb", "1",
               "--telemetry-timeout", "3"]
        if stage == "moe_tune":  # the dtype SGLang's config name has for FP8-block weights
            cmd += ["--moe-batch-sizes"] + list(BATCH_SIZES)
        if mode:
            cmd += ["--mode", mode]
        return StageResult(self.exec(*(cmd + list(args)), env=env, timeout=timeout))

    def stage_detached(self, stage, *args, env=None):
        cmd = ["python3", "-m", "sglang_prep", "stage", stage, "--model", MODEL, "--disk-headroom-mb", "1"] + list(args)
        self.exec(*cmd, env=env, detach=True, check=True)

    def state(self, stage, port=contract.SERVER_PORT):
        out = self.exec("python3", "-c", STATE_PROBE, contract.lock_path(stage), str(port), check=True)
        return json.loads(out.stdout)

    def assert_clean(self, stage):
        """The lock is released, the port is free and no stage process is left."""
        state = self.state(stage)
        assert state == {"lock_free": True, "port_free": True, "servers": []}, state

    # ------------------------------------------------------------ host-side views
    def telemetry(self, contract_path):
        """The host path of a /telemetry contract path."""
        return self.host("telemetry", os.path.relpath(contract_path, contract.TELEMETRY_ROOT))

    def stage_json(self, stage, model=MODEL):
        with open(self.telemetry(contract.stage_json_path(RUN_ID, stage, model))) as handle:
            return json.load(handle)

    def stage_json_text(self, stage, model=MODEL):
        with open(self.telemetry(contract.stage_json_path(RUN_ID, stage, model))) as handle:
            return handle.read()

    def last_ok(self, stage, model=MODEL):
        with open(self.telemetry(contract.stage_last_ok_path(RUN_ID, stage, model))) as handle:
            return json.load(handle)

    def prep_result(self, model=MODEL):
        """One model's aggregate; model=None: the run's prep_result.json (the latest model, plus the index)."""
        path = contract.model_prep_result_path(RUN_ID, model) if model else contract.prep_result_path(RUN_ID)
        with open(self.telemetry(path)) as handle:
            return json.load(handle)

    def profiles(self, contract_path):
        return self.host("profiles", os.path.relpath(contract_path, contract.PROFILES_ROOT))

    def session_log(self):
        with open(self.host("telemetry", "logs", RUN_ID + ".log")) as handle:
            return handle.read()

    def server_starts(self):
        return self.session_log().count("server pid ")

    def foreign_owned(self):
        """Paths under telemetry/ and profiles/ not owned by the test UID:GID (root-owned ones are defects)."""
        bad = []
        for sub in ("telemetry", "profiles"):
            for root, dirs, files in os.walk(self.host(sub)):
                for entry in dirs + files:
                    path = os.path.join(root, entry)
                    st = os.lstat(path)
                    if (st.st_uid, st.st_gid) != (UID, GID):
                        bad.append((path, st.st_uid, st.st_gid))
        return bad

    def tree(self):
        out = {}
        for root, dirs, files in os.walk(self.base):
            for entry in dirs + files:
                path = os.path.join(root, entry)
                st = os.lstat(path)
                out[path] = (st.st_size, st.st_mtime_ns, st.st_uid)
        return out

    def remove(self):
        docker("rm", "-f", self.name, check=False)
        shutil.rmtree(self.base, ignore_errors=True)

"""The fake container run the runtime's unit tests share: manifest and pointer under tmp, a stand-in model, and the
GPU stand-ins of tests/standins on PATH as real subprocesses (the `run` fixture of the container tests' conftest.py)."""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness import free_port  # the stand-in harness's one copy (tests/standins, on sys.path by pytest.ini)

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, manifest
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import engine, locks, plan, prime, procs, state
from unit_support.paths import RUNTIME, STANDINS  # noqa: F401  (RUNTIME: tests import it from here)

RUN_ID = "container-run-20260101T000000Z-0badc0de"
FP8_BLOCK = "E=8,N=256,device_name=NVIDIA_H100_80GB_HBM3,dtype=fp8_w8a8,block_shape=[128, 128]"
INT8 = "E=8,N=256,device_name=NVIDIA_H100_80GB_HBM3,dtype=int8_w8a8,per_channel_quant=True"
BF16 = "E=8,N=256,device_name=NVIDIA_H100_80GB_HBM3"
# the files SGLang looks up for the default test model (FP8-block weights): up and down projection
TUNED = FP8_BLOCK + ".json"
TUNED_DOWN = FP8_BLOCK + "_down.json"
# FP8 block-quantized MoE: every stage has work, DeepGEMM included (SGLang runs DeepGEMM only for such weights).
MODEL_NAME = "tiny-moe-fp8-block"


class Run(object):
    """A fake container run: manifest + pointer under tmp, a model, and stand-in tools on PATH."""

    def __init__(self, base):
        self.base = base
        self.tel = os.path.join(base, "telemetry")
        self.prof = os.path.join(base, "profiles")
        self.model = os.path.join(base, "models", MODEL_NAME)
        shutil.copytree(os.path.join(STANDINS, "models", MODEL_NAME), self.model)
        for path in (self.tel + "/logs", self.tel + "/container_runs", self.prof):
            os.makedirs(path)
        cpaths = {"telemetry_root": self.tel, "profiles_root": self.prof, "models_root": os.path.dirname(self.model),
                  "log_file": "%s/logs/%s.log" % (self.tel, RUN_ID),
                  "manifest": "%s/container_runs/%s.json" % (self.tel, RUN_ID),
                  "run_dir": "%s/container_runs/%s" % (self.tel, RUN_ID)}
        data = {"schema_version": "1", "container_run_id": RUN_ID, "started_at": "2026-01-01T00:00:00Z",
                "image": "test", "git_revision": None, "services": {}, "telemetry_surfaces": {"prometheus": None},
                "storage": {"log_file": cpaths["log_file"]}, "caches": {}, "profile_cache": {"start": {}},
                "paths": {"container": cpaths, "host": {"telemetry_root": "/home/u/obs/telemetry",
                                                         "profiles_root": "/home/u/obs/profiles"}}}
        missing = [f for f in manifest.REQUIRED_FIELDS if f not in data]
        assert not missing
        with open(cpaths["manifest"], "w") as handle:
            json.dump(data, handle)
        self.pointer = os.path.join(self.tel, contract.POINTER_NAME)
        with open(self.pointer, "w") as handle:
            handle.write("%s=%s\n%s=\n" % (contract.POINTER_KEY, cpaths["manifest"], contract.POINTER_HOST_KEY))
        open(cpaths["log_file"], "a").close()
        self.log = cpaths["log_file"]
        self.run_dir = cpaths["run_dir"]
        self.port = free_port()
        # "python3" (as the stage argv says) is this interpreter, found first on PATH: no version-manager shims
        fastbin = os.path.join(base, "bin")
        os.makedirs(fastbin)
        os.symlink(sys.executable, os.path.join(fastbin, "python3"))
        self.env = dict(os.environ)
        self.env.update({
            "PATH": os.path.join(STANDINS, "bin") + ":" + fastbin + ":" + os.environ["PATH"],
            "PYTHONPATH": os.path.join(STANDINS, "python"),
            "SGLANG_STANDIN_START_DELAY_S": "0.05", "SGLANG_STANDIN_WARMUP_S": "0.05",
            "SGLANG_PREP_MOE_TUNER": os.path.join(STANDINS, "benchmark", "kernels", "fused_moe_triton",
                                                  "tuning_fused_moe_triton.py"),
            "SGLANG_STANDIN_TUNER_S": "0.05",
        })

    def add_model(self, name):
        """Another stand-in test model beside tiny-moe (tests/standins/models/<name>); its path."""
        path = os.path.join(os.path.dirname(self.model), name)
        shutil.copytree(os.path.join(STANDINS, "models", name), path)
        return path

    def options(self, options, env=None):
        """The runtime options and environment a test run uses, with the given ones on top."""
        options.setdefault("pointer", self.pointer)
        options.setdefault("port", self.port)
        options.setdefault("disk_headroom_mb", 1)
        options.setdefault("telemetry_timeout", 0.5)
        options.setdefault("moe_batch_sizes", [1, 2])
        full_env = dict(self.env)
        full_env.update(env or {})
        return options, full_env

    def stage(self, name, env=None, **options):
        options, full_env = self.options(options, env)
        self.stderr = io.StringIO()
        return engine.run_stage(name, options.pop("model", self.model), options, stream=self.stderr, env=full_env)

    def stage_json(self, name, model=None):
        with open(os.path.join(self.model_dir(model), "stages", name + ".json")) as handle:
            return json.load(handle)

    def model_dir(self, model=None):
        """The filesystem directory of one model's records in this run."""
        return os.path.join(self.run_dir, "models", contract.model_key(model or self.model))

    def prep_result(self, model=None):
        """One model's aggregate (the run's prep_result.json leads with the latest model and indexes them all)."""
        with open(os.path.join(self.model_dir(model), "prep_result.json")) as handle:
            return json.load(handle)

    def p(self, contract_path):
        return self.prof + contract_path[len(contract.PROFILES_ROOT):]

    def tree(self):
        """Every path under the run (links not followed) with its size and mtime: what a no-op leaves as it was."""
        return {str(path): (st.st_size, st.st_mtime_ns) for path in Path(self.base).rglob("*") for st in [path.lstat()]}

    def server_lines(self, stage):
        with open(self.log) as handle:
            return [line for line in handle if line.startswith("[%s server]" % stage)]


def assert_clean(run, stage):
    """No lock held, no server left, the port free."""
    assert not locks.is_locked(run.p(contract.lock_path(stage)))
    assert procs.port_is_free(run.port)
    assert not [p for p, argv in procs.port_holders(run.port)]


def cli(*args, env=None):
    full = dict(os.environ)
    full["PYTHONPATH"] = RUNTIME + ":" + os.path.join(STANDINS, "python")
    full["PATH"] = os.path.join(STANDINS, "bin") + ":" + os.environ["PATH"]
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "sglang_prep"] + list(args), capture_output=True, text=True,
                          env=full, timeout=120)


# ---------------------------------------------------------------- the priming state (container/state.py)

ALL = list(contract.STAGE_ORDER)
HOST_TELEMETRY = "/home/u/obs/telemetry"
STATE_KEYS = {"schema_version", "command", "status", "error_type", "message", "failed_stage", "run", "order", "stages",
              "to_run", "caches", "aggregate", "prep_result", "prep_result_path", "prep_result_problem", "gpu", "signature_group", "progress",
              "finished_at", "duration_s", "warnings", "zero_jit", "zero_jit_reason"}
ROW_KEYS = {"stage", "status", "ran", "mode", "planned_mode", "action", "action_reason", "duration_s", "error_type",
            "message", "reprime_reasons", "reason", "signature", "previous_signature", "signature_group", "stage_json",
            "stage_json_host", "cache", "log_tail", "warnings", "zero_jit"}
# the plan adds what the fleet's fan-out groups hosts by (docs/runtime.md, plan)
PLAN_KEYS = {"bundle_group", "bundle_to_run"}


def assert_state_shape(model):
    assert set(model) == STATE_KEYS | (PLAN_KEYS if model.get("command") == "plan" else set())
    json.dumps(model)  # plain JSON all the way down
    assert list(model["stages"]) == model["order"]
    for stage, row in model["stages"].items():
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        assert row["stage"] == stage and row["status"] in state.ROW_STATUSES
        assert set(row["cache"]) >= {"name", "host_path", "bytes", "files"}
        assert row["cache"]["name"] == contract.STAGE_CACHE[stage]
        assert isinstance(row["reason"], str) and row["reason"].startswith(stage)


def make_plan(run, stages=ALL, env=None, rebuild=(), **options):
    """The runtime's plan for the fake run (reads only)."""
    options, full_env = run.options(options, env)
    return plan.plan(stages, run.model, options, rebuild=rebuild, stream=open(os.devnull, "w"), env=full_env)


def do_prime(run, stages=ALL, env=None, rebuild=(), **options):
    """One prime job over the fake run; its stderr goes to run.stderr_path."""
    options, full_env = run.options(options, env)
    run.stderr_path = os.path.join(run.base, "prime.stderr")
    with open(run.stderr_path, "w") as stream:
        return prime.prime(stages, run.model, options, rebuild=rebuild, stream=stream, env=full_env)

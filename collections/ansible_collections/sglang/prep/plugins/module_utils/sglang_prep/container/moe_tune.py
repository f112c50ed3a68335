# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The moe_tune stage: fused-MoE Triton configs from SGLang's tuner, one run per batch size (moe.py names them)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import time

from . import argv as argv_mod
from .. import jsonio
from . import moe, server, serving_inputs
from .moe import is_moe_model, model_config
from .moe_configs import MOE_CONFIG_DIR, MOE_CONFIGS_TREE, MOE_WORK_DIR, seed_moe_configs, triton_dir_name
from ..errors import PrepError
from .runner import StageRunner
from .validate import LogScan

MOE_TUNER_ENV = "SGLANG_PREP_MOE_TUNER"
MOE_TUNER_CANDIDATES = (
    "/workspaces/sglang/benchmark/kernels/fused_moe_triton/tuning_fused_moe_triton.py",
    "/sgl-workspace/sglang/benchmark/kernels/fused_moe_triton/tuning_fused_moe_triton.py",
)
DEFAULT_MOE_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
MOE_DTYPES = moe.TUNER_DTYPES


def tuner_location(env):
    """The tuner's path: $SGLANG_PREP_MOE_TUNER, else the first candidate that exists, else the first candidate."""
    configured = env.get(MOE_TUNER_ENV)
    if configured:
        return configured
    return next((path for path in MOE_TUNER_CANDIDATES if os.path.isfile(path)), MOE_TUNER_CANDIDATES[0])


class MoeTuneStage(StageRunner):
    """Fused-MoE Triton configs under the names SGLang looks up (moe.py), per batch size.

    Each batch size runs the tuner (the up projection) and, where tune_down_moe.py can name the file
    (unquantized or fp8_w8a8 weights), tune_down_moe.py with the tuner's output (the down projection,
    ``<name>_down.json``). Both are merged into configs/triton_<version>/ and recorded.
    """

    name = "moe_tune"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.tuner = None
        self.down_tuner = None
        self.work = None
        self.process = None
        self.written = []
        self._plan = None

    def plan(self):
        """moe.tuner_plan for this checkpoint and the serving args; PrepError bad_input when it cannot be made."""
        if self._plan is None:
            ctx = self.ctx
            config = model_config(ctx.model)
            try:
                self._plan = moe.tuner_plan(ctx.model, config, ctx.extra_server_args, ctx.moe_dtype, tp=ctx.tp,
                                            device_name=ctx.probe.get("device_name"),
                                            triton_kernels=self.triton_kernels(config))
            except ValueError as exc:
                self._plan = PrepError("bad_input", "moe_tune: %s" % exc)
        if isinstance(self._plan, PrepError):
            raise self._plan
        return self._plan

    def triton_kernels(self, config):
        """Whether the servers' python imports triton_kernels (SGLang's GPT-OSS MXFP4 runner); asked for MXFP4 only."""
        qconf = (config or {}).get("quantization_config") or {}
        if not isinstance(qconf, dict) or str(qconf.get("quant_method")).lower() != "mxfp4":
            return False
        ctx = self.ctx
        return moe.module_missing(ctx.python, "triton_kernels", ctx.layout.env(argv_mod.server_env(ctx.base_env))) is None

    def signature_inputs(self):
        inputs = super().signature_inputs()
        inputs["moe_batch_sizes"] = list(self.ctx.moe_batch_sizes)
        inputs["moe_dtype"] = self.ctx.moe_dtype
        try:
            plan = self.plan()
        except PrepError:
            plan = None
        inputs["moe_tuner"] = None if plan is None else dict((key, plan[key]) for key in moe.PLAN_SIGNATURE_KEYS)
        inputs.update(serving_inputs.moe_shape_args(self.ctx.extra_server_args))
        inputs["quantization_files_sha256"] = serving_inputs.quantization_files_digest(self.ctx.model)
        return inputs

    def skip_reason(self):
        if is_moe_model(model_config(self.ctx.model)) is False:
            return "%s/config.json declares no routed experts: not a MoE model, nothing to tune" % self.ctx.model
        try:
            plan = self.plan()
        except PrepError:
            return None  # bad input: preflight raises it (check mode warns)
        if plan["skip_reason"]:
            return "SGLang reads no tuned fused-MoE config here: " + plan["skip_reason"]
        return None

    def preflight_dirs(self):
        return super().preflight_dirs() + [MOE_CONFIGS_TREE, MOE_WORK_DIR]

    def find_tuner(self):
        configured = self.ctx.base_env.get(MOE_TUNER_ENV)
        if configured:
            if not os.path.isfile(configured):
                raise PrepError("tuner_unavailable", "%s=%s does not exist in the container; point it at SGLang's "
                                "benchmark/kernels/fused_moe_triton/tuning_fused_moe_triton.py" % (MOE_TUNER_ENV, configured))
            return configured
        for candidate in MOE_TUNER_CANDIDATES:
            if os.path.isfile(candidate):
                return candidate
        raise PrepError("tuner_unavailable", "the fused-MoE tuner was not found at %s; set %s to the path of SGLang's "
                        "benchmark/kernels/fused_moe_triton/tuning_fused_moe_triton.py inside the container"
                        % (" or ".join(MOE_TUNER_CANDIDATES), MOE_TUNER_ENV))

    def preflight(self):
        """The checkpoint's MoE dtype is known, and the tuner's real needs are met: its scripts, ray, triton."""
        ctx = self.ctx
        plan = self.plan()
        self.tuner = self.find_tuner()
        if plan["tune_down"]:
            self.down_tuner = moe.down_tuner_path(self.tuner)
            if not os.path.isfile(self.down_tuner):
                raise PrepError("tuner_unavailable", "%s is missing beside the tuner; it tunes the down-projection "
                                "config (<name>_down.json) SGLang looks up too: use the benchmark/kernels/"
                                "fused_moe_triton/ directory of the same SGLang checkout" % self.down_tuner)
        missing = moe.module_missing(ctx.python, "ray", ctx.layout.env(argv_mod.server_env(ctx.base_env)))
        if missing:
            raise PrepError("tuner_unavailable", "%s: the fused-MoE tuner imports ray at top level and runs each "
                            "benchmark as a Ray task; ray is sglang's optional 'ray' extra (not part of 'all'): "
                            "install it in the image, e.g. pip install 'ray[default]>=2.55.1'" % missing)
        if ctx.probe.get("triton_version") is None:
            raise PrepError("tuner_failed", "the Triton version could not be probed (%s), so the config directory "
                            "configs/triton_<version>/ SGLang reads cannot be named; make triton importable by %s"
                            % (ctx.probe.why_missing.get("triton_version"), ctx.python))

    def build_command(self, batch_size=None):
        ctx = self.ctx
        return moe.tuner_argv(ctx.python, self.tuner or "<tuner>", ctx.model, ctx.tp, self.plan(),
                              batch_size if batch_size is not None else "B")

    def version_dir(self):
        return MOE_CONFIGS_TREE + "/" + triton_dir_name(self.ctx.probe.get("triton_version"))

    def run(self):
        ctx = self.ctx
        plan = self.plan()
        ctx.result["moe_seed"] = seed_moe_configs(ctx)
        _name, note = moe.triton_version_dir(ctx.probe.get("triton_version"))
        if note:
            ctx.warn(note)
        self.work = "%s/%s-%d" % (MOE_WORK_DIR, ctx.run_id, os.getpid())
        env = ctx.layout.env(argv_mod.server_env(ctx.base_env))
        runs = []
        ctx.result["tuner"] = {"path": self.tuner, "down_path": self.down_tuner, "plan": plan, "argv": self.build_command(),
                               "runs": runs, "config_dir_note": note}
        tuned = {}
        for index, size in enumerate(ctx.moe_batch_sizes, 1):
            ctx.progress(index, len(ctx.moe_batch_sizes), "batch size %d" % size)
            cwd = ctx.layout.fs("%s/b%d" % (self.work, size))
            os.makedirs(cwd)
            entry = {"batch_size": size, "argv": self.build_command(size), "exit_code": None, "duration_s": None,
                     "file": None, "down": None}
            runs.append(entry)
            up_path, up_name = self._tune(entry, entry["argv"], cwd, size, "tuning_fused_moe", env, down=False)
            tuned.setdefault(up_name, {}).update(jsonio.read_json(up_path))
            if not plan["tune_down"]:
                continue
            down_cwd = os.path.join(cwd, "down")
            os.makedirs(down_cwd)
            down = {"argv": moe.down_tuner_argv(ctx.python, self.down_tuner, ctx.model, ctx.tp, plan, up_path, down_cwd,
                                                size), "exit_code": None, "duration_s": None, "file": None}
            entry["down"] = down
            down_path, down_name = self._tune(down, down["argv"], down_cwd, size, "tune_down_moe", env, down=True)
            if down_name != up_name[:-len(".json")] + moe.DOWN_SUFFIX:
                raise PrepError("tuner_failed", "tune_down_moe.py wrote %s for batch size %d, which is not the down "
                                "file of the tuner's %s" % (down_name, size, up_name))
            down_data = jsonio.read_json(down_path)
            problem = moe.down_config_problem(jsonio.read_json(up_path), down_data, size)
            if problem:
                raise PrepError("tuner_failed", "tune_down_moe.py wrote %s, but %s; nothing was installed" % (
                    down_name, problem))
            tuned.setdefault(down_name, {}).update(down_data)
        self.written = self.merge(tuned)
        if note:
            shadowed = self.shadowing_files()
            ctx.result["tuner"]["shadowed_by"] = shadowed
            for name, path in sorted(shadowed.items()):
                ctx.warn("SGLang's fallback reads configs/triton_* directories newest first, so it will read %s "
                         "instead of the tuned %s; remove that file to use the tuned one" % (path, name))
        validation = ctx.result.setdefault("validation", {})
        validation["tuned_files"] = [
            {"file": os.path.basename(p), "projection": "down" if p.endswith(moe.DOWN_SUFFIX) else "up",
             "batch_sizes": sizes} for p, sizes in self.written]
        validation["down_projection"] = {
            "tuned": plan["tune_down"],
            "files": [os.path.basename(p) for p, _s in self.written if p.endswith(moe.DOWN_SUFFIX)],
            "reason": plan["down_reason"]}
        if not plan["tune_down"]:
            ctx.say("down projection not tuned: " + plan["down_reason"])

    def _tune(self, entry, argv, cwd, size, hint, env, down):
        """Run one tuner process for one batch size in ``cwd``; (path, name) of the one config it wrote."""
        ctx = self.ctx
        label = "tune_down_moe" if down else "moe_tune"
        what = "tune_down_moe.py" if down else "the MoE tuner"
        scan = LogScan()
        session = open(ctx.session_log_fs, "ab", buffering=0)
        proc = server.ManagedProcess(argv, env, [(session, ("[%s b=%d] " % (label, size)).encode("ascii"))],
                                     scan, ctx.say, cwd=cwd)
        self.process = proc
        started = time.monotonic()
        try:
            try:
                pid = proc.start()
            except PrepError as exc:
                raise PrepError("tuner_failed", exc.message)
            ctx.note_process(pid, hint)
            ctx.say("%s batch size %d (pid %d)" % ("tuning the down projection for" if down else "tuning", size, pid))
            code = proc.wait_exit(ctx.ready_timeout)
            if code is None:
                proc.stop()
                ctx.result["log_tail"] = list(scan.tail)
                raise PrepError("tuner_failed", "%s did not finish batch size %d within %.0f s "
                                "(--ready-timeout bounds each tuner run)" % (what, size, ctx.ready_timeout))
            proc.drain()
        finally:
            proc.stop()
            session.close()
        entry["exit_code"] = code
        entry["duration_s"] = round(time.monotonic() - started, 3)
        if code != 0:
            ctx.result["log_tail"] = list(scan.tail)
            mapped = self.error_map(scan)
            if mapped:
                raise PrepError(mapped[0], mapped[1])
        disk = self.output_disk_error(proc)
        if disk is not None:
            ctx.result["log_tail"] = list(scan.tail)
            raise disk
        if code != 0:
            raise PrepError("tuner_failed", "%s exited with code %s for batch size %d; its output is in log_tail and "
                            "the session log" % (what, code, size), exit_code=code)
        files = sorted(glob.glob(os.path.join(cwd, "*.json")))
        if len(files) != 1:
            ctx.result["log_tail"] = list(scan.tail)
            raise PrepError("tuner_failed", "%s exited 0 for batch size %d but wrote %s in %s" % (
                what, size, "no config file" if not files else "%d config files" % len(files),
                ctx.layout.contract_path(cwd)))
        path = files[0]
        name = os.path.basename(path)
        try:
            data = jsonio.read_json(path)
        except ValueError as exc:
            raise PrepError("tuner_failed", "%s wrote an unreadable %s: %s" % (what, name, exc))
        if not isinstance(data, dict) or str(size) not in data:
            raise PrepError("tuner_failed", "%s's %s has no entry for batch size %d" % (what, name, size))
        plan = self.plan()
        wanted = moe.expected_name(plan, down=down, device_name=ctx.probe.get("device_name"))
        if name != wanted:
            raise PrepError("tuner_failed", "%s wrote %s, but for this checkpoint (%s) and these serving args SGLang "
                            "looks up %s: the file would never be read, so it is not installed" % (
                                what, name, plan["quant_source"], wanted))
        entry["file"] = name
        return path, name

    def shadowing_files(self):
        """{tuned file: the same name in a newer configs/triton_* directory}: what SGLang's fallback reads first."""
        ours = triton_dir_name(self.ctx.probe.get("triton_version"))
        root = self.ctx.layout.fs(MOE_CONFIGS_TREE)
        out = {}
        newer = []
        for entry in os.listdir(root):
            try:
                if entry.startswith("triton_") and moe.version_key(entry) > moe.version_key(ours):
                    newer.append(entry)
            except ValueError:
                continue
        for entry in sorted(newer, key=moe.version_key, reverse=True):
            for path, _sizes in self.written:
                name = os.path.basename(path)
                if name not in out and os.path.isfile(os.path.join(root, entry, name)):
                    out[name] = MOE_CONFIGS_TREE + "/" + entry + "/" + name
        return out

    def merge(self, tuned):
        """Write each tuned file into configs/triton_<ver>/ (merged over what is there); [(path, sizes)]."""
        target_dir = self.version_dir()
        os.makedirs(self.ctx.layout.fs(target_dir), exist_ok=True)
        written = []
        for name, data in sorted(tuned.items()):
            path = target_dir + "/" + name
            merged = {}
            try:
                existing = jsonio.read_json(self.ctx.layout.fs(path))
                if isinstance(existing, dict):
                    merged.update(existing)
            except (OSError, ValueError):
                pass
            merged.update(data)
            ordered = dict(sorted(merged.items(), key=lambda kv: (not kv[0].isdigit(), int(kv[0]) if kv[0].isdigit() else 0, kv[0])))
            jsonio.write_text_atomic(self.ctx.layout.fs(path), json.dumps(ordered, indent=4) + "\n")
            written.append((path, sorted(int(k) for k in data if k.isdigit())))
            self.ctx.say("wrote %s (%d batch sizes tuned)" % (path, len(data)))
        return written

    def describe_artifacts(self):
        out = super().describe_artifacts()
        out["moe_config_dir"] = MOE_CONFIG_DIR
        if self.ctx.probe.get("triton_version"):
            out["configs_dir"] = self.version_dir()
        for path, _sizes in self.written:
            out["config:" + os.path.basename(path)] = path
        return out

    def cleanup(self):
        if self.process is not None:
            self.process.stop()
        if self.work:
            shutil.rmtree(self.ctx.layout.fs(self.work), ignore_errors=True)

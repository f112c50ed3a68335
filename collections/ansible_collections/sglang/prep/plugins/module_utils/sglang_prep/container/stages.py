# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One StageRunner per priming stage (notebook section 11).

Each runner knows its signature inputs, the directories it writes, how to build its command,
how to run it, which artifacts it leaves and how its log maps to an error type. What the code
says about a stage (order, cache, server switches, signature fields, dependencies) is its row in
registry.py; tests/unit/plugins/module_utils/sglang_prep/test_runtime_registry.py checks that RUNNERS and the
rows agree. Locks, markers, signatures and the stage JSON are the engine's business (engine.py).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import time

from . import argv as argv_mod
from .. import caches, contract, jsonio, registry, server_flags
from . import deepgemm, inductor, moe, preflight, probe, server, servecheck, serving_inputs, signature, telemetry_probe
from .moe import is_moe_model, model_config
from ..errors import PrepError
from .validate import DISK_PATH_RE, LogScan

MOE_TUNER_ENV = "SGLANG_PREP_MOE_TUNER"
MOE_TUNER_CANDIDATES = (
    "/workspaces/sglang/benchmark/kernels/fused_moe_triton/tuning_fused_moe_triton.py",
    "/sgl-workspace/sglang/benchmark/kernels/fused_moe_triton/tuning_fused_moe_triton.py",
)
DEFAULT_MOE_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
MOE_DTYPES = moe.TUNER_DTYPES
SHIPPED_MOE_CONFIGS = "srt/layers/moe/moe_runner/triton_utils/configs"
MOE_CONFIG_DIR = contract.CACHES["moe_configs"][0]
MOE_CONFIGS_TREE = MOE_CONFIG_DIR + "/configs"
MOE_WORK_DIR = MOE_CONFIG_DIR + "/.work"


def tuner_location(env):
    """The tuner's path: $SGLANG_PREP_MOE_TUNER, else the first candidate that exists, else the first candidate."""
    configured = env.get(MOE_TUNER_ENV)
    if configured:
        return configured
    return next((path for path in MOE_TUNER_CANDIDATES if os.path.isfile(path)), MOE_TUNER_CANDIDATES[0])


def triton_dir_name(triton_version):
    """SGLang's directory for a Triton version, without a local version suffix (moe.triton_version_dir)."""
    return moe.triton_version_dir(triton_version)[0]


def seed_moe_configs(ctx):
    """Make $SGLANG_MOE_CONFIG_DIR/configs exist and hold SGLang's shipped configs.

    SGLANG_MOE_CONFIG_DIR replaces the shipped configs (it is not an overlay) and SGLang fails
    when <dir>/configs is missing, so every stage that sets it seeds the tree first. Only files
    that are not present are copied: tuned files are never overwritten.
    """
    target = ctx.layout.fs(MOE_CONFIGS_TREE)
    os.makedirs(target, exist_ok=True)
    info = {"tree": MOE_CONFIGS_TREE, "source": None, "copied": 0, "present": 0}
    pkg = ctx.probe.get("sglang_dir")
    source = os.path.join(pkg, SHIPPED_MOE_CONFIGS) if pkg else None
    if not source or not os.path.isdir(source):
        ctx.warn("SGLang's shipped MoE configs were not found (%s); %s holds only tuned configs, and because "
                 "SGLANG_MOE_CONFIG_DIR replaces the shipped ones, other MoE shapes run on default kernel configs"
                 % (source or "sglang is not importable", MOE_CONFIGS_TREE))
        return info
    info["source"] = source
    for root, _dirs, files in os.walk(source):
        rel = os.path.relpath(root, source)
        dest_dir = os.path.normpath(os.path.join(target, rel))
        for name in files:
            if not name.endswith(".json"):
                continue
            dest = os.path.join(dest_dir, name)
            if os.path.exists(dest):
                info["present"] += 1
                continue
            os.makedirs(dest_dir, exist_ok=True)
            tmp = dest + ".tmp"
            shutil.copyfile(os.path.join(root, name), tmp)
            os.replace(tmp, dest)
            info["copied"] += 1
    if info["copied"]:
        ctx.say("seeded %d shipped MoE config files from %s into %s" % (info["copied"], source, MOE_CONFIGS_TREE))
    return info


def moe_config_origin(ctx, contract_path):
    """Where a file of the configs tree comes from: shipped (byte-equal to SGLang's shipped copy) or tuned."""
    pkg = ctx.probe.get("sglang_dir")
    rel = os.path.relpath(contract_path, MOE_CONFIGS_TREE)
    shipped = os.path.join(pkg, SHIPPED_MOE_CONFIGS, rel) if pkg and not rel.startswith("..") else None
    try:
        with open(shipped, "rb") as one, open(ctx.layout.fs(contract_path), "rb") as other:
            return "shipped" if one.read() == other.read() else "tuned"
    except (OSError, TypeError):
        return "tuned"


class StageRunner(object):
    """Interface of a stage. Subclasses fill ctx.result (server/tuner, validation) and raise PrepError."""

    name = None

    def __init__(self, ctx):
        self.ctx = ctx

    @property
    def spec(self):
        """The stage's row in registry.py."""
        return registry.get(self.name)

    @property
    def cache(self):
        return self.spec.cache

    # ---- what the engine asks before running
    def signature_inputs(self):
        """The stage's inputs: registry.COMMON_INPUTS here, subclasses add theirs.

        A stage that depends on another (the warm-ups compile the MoE kernels with the configs
        moe_tune wrote) records a digest of that stage's signature fields, so a run of it with other
        inputs re-runs this one. Only the fields count, not when or in which run they were written,
        so a rebuild of moe_tune with the same inputs leaves the warm-ups alone. In a plan where the
        dependency runs first, the fields it will record count (ctx.planned_signatures).
        """
        ctx = self.ctx
        digest = signature.model_config_digest(ctx.model)
        if digest is None:
            ctx.warn("model_config_sha256 could not be computed (%s/config.json is unreadable); recorded as null"
                     % ctx.model)
        inputs = {"tp": ctx.tp, "model_slug": contract.model_slug(ctx.model), "model_config_sha256": digest}
        planned = ctx.planned_signatures or {}
        for dependency in self.spec.depends_on:
            if dependency in planned:  # a plan in which the dependency runs first
                fields = planned[dependency]
            else:
                fields, _problem = signature.read(ctx.layout.fs(contract.signature_path(dependency, ctx.model)))
            inputs[registry.dependency_field(dependency)] = signature.digest(fields)
        return inputs

    def skip_reason(self):
        return None

    def preflight_dirs(self):
        """Contract paths of directories the stage writes (besides the engine's own)."""
        return [path for path, _env in contract.CACHES.values()]

    def preflight(self):
        """Checks that need the lock (tools present, inputs usable); raise PrepError."""

    # ---- the work
    def build_command(self):
        raise NotImplementedError

    def run(self):
        raise NotImplementedError

    def describe_artifacts(self):
        return {"cache_dir": contract.stage_cache_dir(self.name),
                "signature": contract.signature_path(self.name, self.ctx.model)}

    def cleanup(self):
        """Leave nothing running and no scratch behind (called on success and failure)."""

    def success_message(self, seconds):
        return "%s primed in %.1f s" % (self.name, seconds)

    def annotate(self, result):
        """Last word on the result (every mode and outcome) before it is written: fields of the stage's own."""

    def error_map(self, scan):
        """(error_type, message) the stage's log explains, or None. A full disk names the file the log names (else
        the fullest file system of the caches) and its free space."""
        mapped = scan.log_failure() if scan is not None else None
        if mapped and mapped[0] == "insufficient_disk":
            mapped = (mapped[0], "%s. Free now: %s" % (mapped[1], self.disk_free_text(scan.failure[1])))
        return mapped

    def disk_free_text(self, line):
        """The free space behind the file a disk-full log line names, else of the fullest file system of the caches."""
        ctx = self.ctx

        def host_of(fs_path):
            return ctx.host_path(ctx.layout.contract_path(fs_path))

        named = DISK_PATH_RE.search(line or "")
        if named:
            return preflight.free_text(named.group(1), host_of) or named.group(1)
        measured = []
        for cache in contract.CACHES.values():
            where, free = preflight.free_space(ctx.layout.fs(cache[0]))
            if where is not None:
                measured.append((free, where))
        if not measured:
            return "unknown"
        return "%s (the fullest file system of the caches)" % preflight.free_text(min(measured)[1], host_of)

    def output_disk_error(self, proc):
        """PrepError(insufficient_disk) when the process's output could not be appended to a log (ENOSPC), else None."""
        failed = getattr(getattr(proc, "pump", None), "write_error", None)
        if not failed:
            return None
        path, exc = failed
        return preflight.os_failure(exc, "%s: appending the output of %s to %s" % (self.name, proc.argv[0], path),
                                    path=path, host_of=lambda p: self.ctx.host_path(self.ctx.layout.contract_path(p)))


class ServerStage(StageRunner):
    """A stage that primes caches by starting an SGLang server, sending one request, stopping it."""

    warmup = False

    def __init__(self, ctx):
        super().__init__(ctx)
        self.server = None
        self.scan = None
        self.handles = []
        self.generated_at = None

    def signature_inputs(self):
        inputs = super().signature_inputs()
        inputs["settings"] = dict(contract.CANONICAL_SETTINGS)
        inputs["server_flags"] = list(argv_mod.STAGE_SWITCHES[self.name])
        # a secret option's value is recorded as its digest: a new secret still re-primes, and none is written down
        inputs["extra_server_args"] = server_flags.redact_args(self.ctx.extra_server_args, digest=True)
        inputs["runtime_env"] = dict((k, v) for k, v in sorted(argv_mod.server_env({}, self.name).items())
                                     if k in contract.SERVER_ENV or k in contract.SERVE_CHECK_ENV)
        ctx = self.ctx
        inputs.update(serving_inputs.kernel_args(ctx.extra_server_args, probe.compute_capability_major(
            ctx.probe.get("compute_capability"))))
        inputs["quantization_files_sha256"] = serving_inputs.quantization_files_digest(ctx.model)
        inputs["max_mamba_cache_size"] = argv_mod.mamba_policy(ctx.model, ctx.extra_server_args)["value"]
        own = set(argv_mod.server_env({}, self.name)) | set(contract.RESERVED_ENV)
        inputs["server_env"] = serving_inputs.server_env(ctx.base_env, ctx.probe.get("sglang_dir"), own)
        return inputs

    def preflight_dirs(self):
        return super().preflight_dirs() + [MOE_CONFIGS_TREE]

    def static_launcher_off(self):
        """True when the server gets TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER=0 (the stages that compile with Inductor)."""
        return False

    def server_env(self):
        return argv_mod.server_env(self.ctx.base_env, self.name, static_launcher_off=self.static_launcher_off())

    def build_command(self):
        ctx = self.ctx
        return argv_mod.server_argv(self.name, ctx.model, tp=ctx.tp, port=ctx.port, host=ctx.host,
                                    python=ctx.python, extra_args=ctx.extra_server_args, timeout=ctx.ready_timeout)

    def log_sinks(self):
        """[(append handle, line prefix)]: the session log, plus stage logs of subclasses."""
        handle = open(self.ctx.session_log_fs, "ab", buffering=0)
        self.handles.append(handle)
        return [(handle, ("[%s server] " % self.name).encode("ascii"))]

    def run(self):
        ctx = self.ctx
        ctx.result["moe_seed"] = seed_moe_configs(ctx)
        cache_before = caches.dir_stats(ctx.layout.fs(contract.stage_cache_dir(self.name)))
        primed_before = self.primed_snapshot()
        self.before_server()
        argv = self.build_command()
        ctx.result["mamba_cache"] = argv_mod.mamba_policy(ctx.model, ctx.extra_server_args)
        if ctx.result["mamba_cache"]["deviation"]:
            ctx.say(ctx.result["mamba_cache"]["deviation"])
        env = ctx.layout.env(self.server_env())
        self.scan = LogScan()
        srv = server.StageServer(argv, env, self.log_sinks(), self.scan, ctx.say, ctx.host, ctx.port,
                                 secrets=server_flags.secret_values(argv),
                                 api_key=server_flags.arg_value(ctx.extra_server_args, "api_key"))
        self.server = srv
        shown = server_flags.redact_args(argv)  # what the stage JSON and the session log show of the command line
        info = {"argv": shown, "pid": None, "port": ctx.port, "ready_s": None, "ready_path": None,
                "generate": None, "teardown": None, "exit_code": None}
        ctx.result["server"] = info
        error = None
        drift = []
        try:
            srv.check_port()
            pid = srv.start()
            info["pid"] = pid
            ctx.note_process(pid, "sglang")
            ctx.say("server pid %d starting on %s:%d: %s" % (pid, ctx.host, ctx.port, " ".join(shown)))
            srv.wait_ready(ctx.ready_timeout)
            info["ready_s"] = srv.ready_s
            info["ready_path"] = srv.ready_path
            ctx.say("server ready after %.2f s (%s answered 200)" % (srv.ready_s, srv.ready_path))
            drift = self.check_flags(srv)
            self.drive(srv, info)
            self.after_generate(srv)
        except PrepError as exc:
            error = exc
        finally:
            teardown = srv.stop()
            self.close_logs()
            if teardown is not None:
                info["teardown"] = teardown
                info["exit_code"] = teardown["exit_code"]
                if teardown["signal"] == "SIGKILL":
                    ctx.warn("the server ignored SIGTERM for %.0f s and was killed with SIGKILL; check for hung "
                             "workers in the session log" % server.TERM_GRACE_S)
                ctx.say("server stopped (%s) in %.2f s, exit code %s" % (
                    teardown["signal"] or "already exited", teardown["duration_s"], teardown["exit_code"]))
        ctx.result["log_lines"] = self.scan.lines
        validation = ctx.result.setdefault("validation", {})
        validation["kv_cache_dtypes"] = sorted(set(self.scan.kv_dtypes))
        validation["ready_line_seen"] = self.scan.ready_line
        validation["flag_drift"] = drift
        validation["cache_before"] = cache_before
        validation["cache_after"] = caches.dir_stats(ctx.layout.fs(contract.stage_cache_dir(self.name)))
        if primed_before is not None:
            ctx.result["primed"] = self.primed(primed_before, self.primed_snapshot())
        if self.warmup:
            validation.update(self.scan.moe_validation(MOE_CONFIG_DIR, ctx.layout.contract_path,
                                                       origin=lambda path: moe_config_origin(ctx, path)))
        if srv.pid is not None and not srv.port_free_after():
            error = error or PrepError(
                "port_busy", "port %d is still in use after the server was stopped, by %s; stop it before the next "
                "stage" % (ctx.port, server.procs.describe_port_holders(ctx.port)), port=ctx.port)
        mapped = self.error_map(self.scan)
        if mapped:  # the server's own log names the root cause of whatever went wrong
            error = PrepError(mapped[0], mapped[1], lifecycle=error.message if error else None)
        error = error or self.output_disk_error(srv)  # the disk filled while the server's output was logged
        if error is None:
            kv = self.scan.kv_drift()
            if kv:
                error = PrepError(kv[0], kv[1])
            elif drift:
                error = PrepError("config_drift", "the running server reported settings other than the flags passed: %s"
                                  % "; ".join("%s asked %r, server has %r" % (d["flag"], d["asked"], d["effective"])
                                              for d in drift))
        error = self.after_server(error)
        if error is not None:
            ctx.result["log_tail"] = list(self.scan.tail)
            raise error
        validation["kv_cache_dtype_ok"] = True

    def primed_snapshot(self):
        """Every file under /profiles (servecheck.snapshot) before and after a priming stage's server; None for the
        serve check, which takes its own."""
        if self.name not in registry.priming_stages():
            return None
        return servecheck.snapshot(self.ctx.layout.profiles_root)

    def primed(self, before, after):
        """{cache: {files_added, bytes_added, files_rewritten, sample}} of what this server added, every cache."""
        changes = servecheck.diff(before, after)
        out = {}
        for cache in sorted(name for name in contract.CACHES):
            entry = changes.get(cache) or {}
            added, rewritten = entry.get("added", []), entry.get("modified", [])
            out[cache] = {"files_added": len(added), "bytes_added": sum(after[rel][0] for rel in added + rewritten),
                          "files_rewritten": len(rewritten), "sample": (added + rewritten)[:servecheck.SAMPLE]}
        return out

    def check_flags(self, srv):
        """Compare /server_info (when the server has it) with the flags asked; [] when all match."""
        info = srv.get_json("/server_info")
        validation = self.ctx.result.setdefault("validation", {})
        if not isinstance(info, dict):
            validation["server_info_checked"] = False
            return []
        validation["server_info_checked"] = True
        asked = dict(contract.CANONICAL_SETTINGS)
        asked.pop("disable_cuda_graph", None)
        switches = argv_mod.STAGE_SWITCHES[self.name]
        for flag in ("--enable-metrics", "--enable-torch-compile", "--enable-trace"):
            asked[flag[2:].replace("-", "_")] = flag in switches
        drift = []
        for key, want in sorted(asked.items()):
            if key not in info:
                continue
            have = info[key]
            same = (abs(float(have) - float(want)) < 1e-9) if isinstance(want, float) and isinstance(
                have, (int, float)) else have == want
            if not same:
                drift.append({"flag": key, "asked": want, "effective": have})
        return drift

    def before_server(self):
        """Hook before the server starts (the caches are seeded)."""

    def drive(self, srv, info):
        """Send the stage's request(s) to the ready server; records info["generate"]."""
        started = time.monotonic()
        reply = srv.generate()
        self.generated_at = time.time()
        info["generate"] = {"ok": True, "duration_s": round(time.monotonic() - started, 3),
                            "meta_info": (reply or {}).get("meta_info") if isinstance(reply, dict) else None}
        self.ctx.say("POST /generate answered in %.2f s" % info["generate"]["duration_s"])

    def after_server(self, error):
        """Hook after the teardown and the validation: returns the stage's error (``error``, or one of its own)."""
        return error

    def after_generate(self, srv):
        """Hook while the server is up and has served /generate."""

    def close_logs(self):
        for handle in self.handles:
            try:
                handle.close()
            except OSError:
                pass
        self.handles = []

    def cleanup(self):
        if self.server is not None:
            self.server.stop()
        self.close_logs()


class DeepGemmStage(ServerStage):
    """DeepGEMM compile: metrics and trace off (flags omitted); append-only compile.log."""

    name = "deep_gemm"

    def usage(self):
        ctx = self.ctx
        return deepgemm.usage(ctx.model, model_config(ctx.model), ctx.extra_server_args)

    def skip_reason(self):
        major = probe.compute_capability_major(self.ctx.probe.get("compute_capability"))
        if major is not None and major < 9:
            return ("DeepGEMM kernels are used only on compute capability 9.0 or newer; this GPU is %s, so there "
                    "is nothing to compile" % self.ctx.probe.get("compute_capability"))
        used, why = self.usage()
        if not used:
            return why + ": SGLang never runs a DeepGEMM kernel for it, so there is nothing to compile"
        return None

    def preflight(self):
        env = argv_mod.server_env(self.ctx.base_env, self.name)
        problem = deepgemm.nvcc_problem(env)
        if problem:
            raise PrepError("nvcc_not_found", "%s; it uses DeepGEMM because %s. Install the CUDA toolkit (nvcc) in the "
                            "image or point CUDA_HOME at one, then re-run" % (problem, self.usage()[1]))

    def after_server(self, error):
        """The server's log and the cache must show DeepGEMM at work: a model that uses it and compiled nothing fails."""
        ctx = self.ctx
        compiled = self.scan.jit_counts.get("deep_gemm_compile", 0)
        added = ((ctx.result.get("primed") or {}).get(self.cache) or {}).get("files_added", 0)
        lines = [line["match"] for line in self.scan.jit_lines if line["kind"] == "deep_gemm_compile"]
        used, why = self.usage()
        ctx.result.setdefault("validation", {})["deep_gemm"] = {
            "uses_deep_gemm": used, "why": why, "compile_lines": compiled, "compile_lines_sample": lines[:10],
            "files_added": added}
        if error is not None or compiled or added:
            return error
        env = ctx.layout.env(argv_mod.server_env(ctx.base_env, self.name))
        reasons = deepgemm.inactive_reasons(ctx.python, env, probe.compute_capability_major(
            ctx.probe.get("compute_capability")))
        ctx.result["validation"]["deep_gemm"]["inactive_reasons"] = reasons
        return PrepError("deepgemm_inactive", "the server ran without DeepGEMM: no 'Try DeepGEMM JIT Compiling' line and "
                         "no new kernel in %s, although %s. %s" % (
                             contract.stage_cache_dir(self.name), why,
                             ("Reason: " + "; ".join(reasons) + ".") if reasons else
                             "No reason is visible from here (deep_gemm imports, SGLANG_ENABLE_JIT_DEEPGEMM is not off); "
                             "read the server log in the session log."),
                         reasons=reasons)

    def success_message(self, seconds):
        info = (self.ctx.result.get("validation") or {}).get("deep_gemm") or {}
        return "deep_gemm primed in %.1f s: %d 'Try DeepGEMM JIT Compiling' lines, %d new files in %s" % (
            seconds, info.get("compile_lines", 0), info.get("files_added", 0), contract.stage_cache_dir(self.name))

    def compile_log(self):
        return contract.stage_model_dir(self.name, self.ctx.model) + "/compile.log"

    def log_sinks(self):
        sinks = super().log_sinks()
        handle = open(self.ctx.layout.fs(self.compile_log()), "ab", buffering=0)
        self.handles.append(handle)
        header = "==== %s run %s deep_gemm server: %s\n" % (
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), self.ctx.run_id, " ".join(self.build_command()))
        handle.write(header.encode("utf-8"))
        return sinks + [(handle, b"")]

    def describe_artifacts(self):
        out = super().describe_artifacts()
        out["compile_log"] = self.compile_log()
        return out


class WarmupStage(ServerStage):
    """A warm-up on the strict port with metrics on; records MoE config use and a telemetry probe."""

    warmup = True

    def after_generate(self, srv):
        ctx = self.ctx
        result = {"server_metrics": telemetry_probe.server_metrics(srv.base)}
        result.update(telemetry_probe.prometheus(telemetry_probe.prometheus_url(ctx.manifest), ctx.run_id, ctx.port,
                                                 ctx.telemetry_timeout, since=self.generated_at))
        ctx.result["telemetry_probe"] = result
        ctx.say("telemetry probe: server /metrics %s; Prometheus %s" % (
            "ok" if result["server_metrics"]["ok"] else "no tokens",
            "ok (%d series)" % result["sample_count"] if result["ok"] else result["error"]))

    def describe_artifacts(self):
        out = super().describe_artifacts()
        out["moe_config_dir"] = MOE_CONFIG_DIR
        return out


class FlashinferStage(WarmupStage):
    """FlashInfer warm-up. What it primes depends on the attention backend the serving args resolve to
    (sglang-facts.md 10): fa3 on Hopper and trtllm_mha (or fa4) on SM100 by default, so FlashInfer's JIT cache
    often gets only its sampling kernels, most of them already built by the deep_gemm server. The stage records
    the backends the server resolved and what it added beyond the earlier stages, and says so when that is nothing.
    """

    name = "flashinfer"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.backends = {}

    def after_generate(self, srv):
        info = srv.get_json("/server_info")
        info = info if isinstance(info, dict) else {}
        self.backends = {"attention_backend": info.get("attention_backend"), "sampling_backend": info.get("sampling_backend")}
        super().after_generate(srv)

    def after_server(self, error):
        ctx = self.ctx
        added = (ctx.result.get("primed") or {}).get(self.cache) or {}
        attention, sampling = self.backends.get("attention_backend"), self.backends.get("sampling_backend")
        fi_attention = bool(attention and "flashinfer" in attention)
        if attention is None:
            where = "the attention backend is unknown (the server has no /server_info)"
        elif fi_attention:
            where = "attention runs on FlashInfer (%s)" % attention
        else:
            where = ("attention runs on %s, not FlashInfer (fa3 is the Hopper default, trtllm_mha or fa4 on SM100); "
                     "FlashInfer serves sampling (sampling backend %s)" % (attention, sampling or "unknown"))
        if added.get("files_added") or added.get("files_rewritten"):
            summary = "%d files (%d bytes) added to %s beyond the earlier stages; %s" % (
                added.get("files_added", 0), added.get("bytes_added", 0), contract.stage_cache_dir(self.name), where)
        else:
            summary = "nothing added to %s beyond what the earlier stages left; %s" % (
                contract.stage_cache_dir(self.name), where)
        ctx.result.setdefault("validation", {})["flashinfer"] = {
            "attention_backend": attention, "sampling_backend": sampling, "flashinfer_attention": fi_attention,
            "files_added": added.get("files_added", 0), "bytes_added": added.get("bytes_added", 0), "summary": summary}
        if error is None:
            ctx.say(summary)
        return error

    def success_message(self, seconds):
        info = (self.ctx.result.get("validation") or {}).get("flashinfer") or {}
        return "flashinfer warmed in %.1f s: %s" % (seconds, info.get("summary") or "no summary")


class StaticLauncherProbe(object):
    """Mixin of the stages whose servers may compile with Inductor: the probe of inductor.py decides the launcher."""

    def launcher_decision(self):
        ctx = self.ctx
        if "static_cuda_launcher" not in ctx.result:
            env = ctx.layout.env(argv_mod.server_env(ctx.base_env))
            decision = inductor.probe_static_launcher(ctx.python, env)
            ctx.result["static_cuda_launcher"] = decision
            ctx.say("static CUDA launcher: %s" % decision["reason"])
        return ctx.result["static_cuda_launcher"]

    def static_launcher_off(self):
        return bool(self.launcher_decision().get("needed"))


class InductorStage(StaticLauncherProbe, WarmupStage):
    """TorchInductor warm-up that restarts its compiled server until a start adds no cache file.

    On a real GPU one warm start is not enough (inductor.py): the stage starts the server again while the last start
    added or rewrote a file under /profiles, at most contract.INDUCTOR_MAX_STARTS times, and records every start
    (``inductor``: settled, starts, per_start). A server that never settles fails with inductor_not_settled.
    """

    name = "inductor"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.start_number = 0

    def after_generate(self, srv):
        """The telemetry probe once, on the first start: the restarts only settle the caches."""
        if self.start_number <= 1:
            super().after_generate(srv)

    def run(self):
        ctx = self.ctx
        self.launcher_decision()
        before = servecheck.snapshot(ctx.layout.profiles_root)

        def start_once(number):
            self.start_number = number
            if number > 1:
                ctx.say("restarting the compiled server (start %d): the last start still changed the caches" % number)
            ServerStage.run(self)
            return ctx.result.get("primed") or {}

        cache_dir = ctx.layout.fs(contract.stage_cache_dir(self.name))
        first = caches.dir_stats(cache_dir)
        outcome = inductor.until_settled(start_once, contract.INDUCTOR_MAX_STARTS, ctx.say)
        ctx.result["inductor"] = outcome
        validation = ctx.result.setdefault("validation", {})
        validation["cache_before"] = first  # before the first start: the stage's cache over all its starts
        validation["cache_after"] = caches.dir_stats(cache_dir)
        ctx.result["primed"] = self.primed(before, servecheck.snapshot(ctx.layout.profiles_root))
        if not outcome["settled"]:
            raise PrepError("inductor_not_settled", "the compiled server still changed the caches on each of its %d "
                            "starts (files per start: %s), so serving would compile too: read the session log for what "
                            "it compiles; a torch whose static CUDA launcher re-tunes cached kernels needs "
                            "TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER=0 (probe: %s)" % (
                                outcome["starts"], ", ".join(str(p["files_changed"]) for p in outcome["per_start"]),
                                ctx.result["static_cuda_launcher"]["reason"]),
                            starts=outcome["starts"])

    def success_message(self, seconds):
        outcome = self.ctx.result.get("inductor") or {}
        return "inductor warmed in %.1f s: settled after %d start%s (the last added no cache file)" % (
            seconds, outcome.get("starts", 1), "" if outcome.get("starts", 1) == 1 else "s")

    def describe_artifacts(self):
        out = super().describe_artifacts()
        out["triton_cache"] = contract.CACHES["triton"][0]
        return out


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


class ServeCheckStage(StaticLauncherProbe, WarmupStage):
    """The zero-JIT proof: the serving configuration, driven over the shapes serving meets, changes no cache.

    Every cache under /profiles is snapshotted before the server starts and after its teardown
    (servecheck.snapshot); in between the server gets one request per prompt length up to the chunked-prefill
    size and one per captured decode batch size (a batch of that many sequences). Any file the server added
    or rewrote, or a JIT log line, is evidence of a compile at serve time: the stage fails with
    jit_at_serve_time, naming the kernels, the request (or start-up) that triggered them and the priming
    stage that should have left them. It compiles into the caches like production would and leaves what it
    compiled there.
    """

    name = "serve_check"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.before = None
        self.spawned_ns = None
        self.windows = []
        self.request_log = []
        self.shapes = None
        self.snapshot_s = {}

    def signature_inputs(self):
        inputs = super().signature_inputs()
        inputs["serve_max_prompt_tokens"] = self.ctx.serve_max_prompt_tokens
        return inputs

    def _snapshot(self, which):
        started = time.monotonic()
        files = servecheck.snapshot(self.ctx.layout.profiles_root)
        self.snapshot_s[which] = round(time.monotonic() - started, 3)
        return files

    def before_server(self):
        self.launcher_decision()
        self.before = self._snapshot("before")
        info = servecheck.summary(self.before)
        self.ctx.say("snapshot of %s before the serving server starts: %d files, %d bytes (%.2f s)" % (
            contract.PROFILES_ROOT, info["files"], info["bytes"], self.snapshot_s["before"]))
        self.spawned_ns = time.time_ns()

    def drive(self, srv, info):
        ctx = self.ctx
        server_info = srv.get_json("/server_info") or {}
        decode, source = servecheck.decode_plan(server_info, self.scan.decode_capture_bs)
        prompts, chunk = servecheck.prompt_plan(server_info.get("chunked_prefill_size"), ctx.serve_max_prompt_tokens)
        self.shapes = {"decode_batch_sizes": decode, "decode_source": source, "prompt_lengths": prompts,
                       "chunked_prefill_size": chunk, "max_prompt_tokens": ctx.serve_max_prompt_tokens or chunk}
        plan = servecheck.requests(decode, prompts, chunk)
        ctx.say("driving %d requests: prompt lengths %s, decode batch sizes %s (%s)" % (
            len(plan), prompts, decode, source))
        started_all = time.monotonic()
        for index, request in enumerate(plan, 1):
            ctx.progress(index, len(plan), request["label"])
            self.windows.append((time.time_ns(), request["label"]))
            started = time.monotonic()
            entry = {"label": request["label"], "kind": request["kind"], "prompt_tokens": request["prompt_tokens"],
                     "batch_size": request["batch_size"], "ok": False, "duration_s": None}
            self.request_log.append(entry)
            srv.generate(body=request["body"], what=request["label"])
            entry["ok"] = True
            entry["duration_s"] = round(time.monotonic() - started, 3)
        self.windows.append((time.time_ns(), servecheck.TEARDOWN))
        self.generated_at = time.time()
        info["generate"] = {"ok": True, "requests": len(plan), "duration_s": round(time.monotonic() - started_all, 3)}
        ctx.say("%d requests answered in %.2f s" % (len(plan), info["generate"]["duration_s"]))

    def down_reuse_expected(self):
        """True when moe_tune recorded that the down projection cannot be tuned for this checkpoint's dtype."""
        fields, _problem = signature.read(self.ctx.layout.fs(contract.signature_path("moe_tune", self.ctx.model)))
        return ((fields or {}).get("moe_tuner") or {}).get("tune_down") is False

    def default_config_expected(self):
        """Why SGLang serves this model's Triton MoE with its default config (moe_tune is skipped because the tuner
        cannot write the name SGLang looks up: moe.tuner_plan), or None."""
        ctx = self.ctx
        config = model_config(ctx.model)
        if not is_moe_model(config):
            return None
        try:
            plan = moe.tuner_plan(ctx.model, config, ctx.extra_server_args, tp=ctx.tp,
                                  device_name=ctx.probe.get("device_name"))
        except ValueError:
            return None
        return plan["skip_reason"] if plan["skip_reason"] and plan["runner"] == "triton" else None

    def primed_args(self):
        """{server stage: the extra server args its recorded signature was primed with (None if not recorded)}."""
        out = {}
        for stage in registry.server_stages():
            if stage == self.name:
                continue
            fields, _problem = signature.read(self.ctx.layout.fs(contract.signature_path(stage, self.ctx.model)))
            out[stage] = (fields or {}).get("extra_server_args")
        return out

    def after_server(self, error):
        ctx = self.ctx
        if self.before is None:
            return error
        if not self.windows or self.windows[-1][1] != servecheck.TEARDOWN:
            self.windows.append((time.time_ns(), servecheck.TEARDOWN))
        after = self._snapshot("after")
        jit_lines = self.scan.jit_lines
        if self.down_reuse_expected():  # tune_down_moe.py cannot name this dtype's file: SGLang reuses the up config
            jit_lines = [line for line in jit_lines if line["kind"] != "moe_down_fallback"]
        default_expected = self.default_config_expected()
        if default_expected:  # no tuner can write the name SGLang reads: its default config is what serving gets
            jit_lines = [line for line in jit_lines if line["kind"] not in ("moe_default", "moe_down_fallback")]
        serving_args = server_flags.redact_args(ctx.extra_server_args, digest=True)  # as the signatures record them
        evidence = servecheck.verdict(self.before, after, jit_lines, self.windows, serving_args,
                                      self.primed_args(), (self.shapes or {}).get("chunked_prefill_size") or
                                      contract.CANONICAL_SETTINGS["chunked_prefill_size"], self.request_log,
                                      contract.PROFILES_ROOT)
        evidence["moe_default_config_expected"] = default_expected
        evidence["shapes"] = self.shapes
        evidence["requests"] = self.request_log
        evidence["serving_args"] = server_flags.redact_args(ctx.extra_server_args)
        evidence["snapshot"] = {"before": servecheck.summary(self.before), "after": servecheck.summary(after),
                                "seconds": self.snapshot_s}
        evidence["measured"] = servecheck.measured(evidence, self.before, after, self.server_env())
        completed = error is None and self.shapes is not None and all(r["ok"] for r in self.request_log)
        if evidence["zero_jit"] and not completed:
            evidence["zero_jit"] = None  # nothing compiled, but the check did not get through: no verdict
        evidence["summary"] = (servecheck.summary_text(evidence, len(self.request_log)) if evidence["zero_jit"]
                               else evidence["message"] or "no verdict: the check did not complete")
        ctx.result["serve_check"] = evidence
        ctx.result["zero_jit"] = evidence["zero_jit"]
        if evidence["zero_jit"]:
            ctx.say(evidence["summary"])
        elif evidence["zero_jit"] is False:
            ctx.say("JIT at serve time: " + evidence["message"])
            crashed = [f for f in evidence["findings"] if f["kind"] == "sglang_jit_crash"]
            if crashed and error is not None:  # the refusal to compile is why the server exited: that is the finding
                return PrepError("jit_at_serve_time", evidence["message"], lifecycle=error.message,
                                 kernels=crashed[0].get("kernels"),
                                 findings=[dict((k, f[k]) for k in ("evidence", "triggered_by", "should_have_primed"))
                                           for f in evidence["findings"]])
            if error is None:
                return PrepError("jit_at_serve_time", evidence["message"],
                                 findings=[dict((k, f[k]) for k in ("evidence", "triggered_by", "should_have_primed"))
                                           for f in evidence["findings"]])
        return error

    def success_message(self, seconds):
        return "serve_check proved zero JIT in %.1f s (%d requests)" % (seconds, len(self.request_log))

    def annotate(self, result):
        status = result.get("status")
        if status == "ok":
            result["zero_jit"] = True
        elif status == "noop":  # the signature is written only by a passing check: nothing changed since
            record, _problem = signature.read_record(self.ctx.layout.fs(contract.signature_path(self.name, self.ctx.model)))
            result["zero_jit"] = True
            result["proven_by"] = {"run_id": (record or {}).get("run_id"), "at": (record or {}).get("written_at")}
        elif status == "error" and result.get("error_type") == "jit_at_serve_time":
            result["zero_jit"] = False
        elif result.get("zero_jit") is not False:  # would_run, skipped, or a failure before any verdict
            result["zero_jit"] = None


RUNNERS = {
    "deep_gemm": DeepGemmStage,
    "moe_tune": MoeTuneStage,
    "flashinfer": FlashinferStage,
    "inductor": InductorStage,
    "serve_check": ServeCheckStage,
}

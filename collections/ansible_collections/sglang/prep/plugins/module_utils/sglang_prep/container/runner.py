# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The interface of a stage (StageRunner) and the lifecycle of a stage that launches an SGLang server (ServerStage).

Each runner knows its signature inputs, the directories it writes, how to build its command, how to run it,
which artifacts it leaves and how its log maps to an error type. What the code says about a stage (order, cache,
records, server switches, signature fields, dependencies) is its row in registry.py. Locks, markers, signatures
and the stage JSON are the engine's business (engine.py); which runner a stage has is stages.RUNNERS.
"""

from __future__ import annotations

import time

from . import argv as argv_mod
from .. import caches, contract, registry, server_flags
from . import preflight, probe, server, servecheck, serving_inputs, signature
from .moe_configs import MOE_CONFIG_DIR, MOE_CONFIGS_TREE, moe_config_origin, seed_moe_configs
from ..errors import PrepError
from .validate import DISK_PATH_RE, LogScan


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

    def cache_stats(self):
        """caches.dir_stats of the stage's cache, or None for a stage without an on-disk cache."""
        cache_dir = contract.stage_cache_dir(self.name)
        return caches.dir_stats(self.ctx.layout.fs(cache_dir)) if cache_dir else None

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
        cache_before = self.cache_stats()
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
        validation["cache_after"] = self.cache_stats()
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

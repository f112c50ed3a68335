# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runners of the priming stages that start an SGLang server: deep_gemm, flashinfer and inductor."""

from __future__ import annotations

import time

from . import argv as argv_mod
from .. import caches, contract
from . import container_mode, deepgemm, inductor, probe, prometheus_config, servecheck, telemetry_probe
from .moe import model_config
from .moe_configs import MOE_CONFIG_DIR
from ..errors import PrepError
from .runner import ServerStage


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
        mode = container_mode.current(ctx.manifest)
        if mode == prometheus_config.CACHING:
            result.update(telemetry_probe.not_scraped(telemetry_probe.prometheus_url(ctx.manifest), ctx.run_id, mode))
        else:
            result.update(telemetry_probe.prometheus(telemetry_probe.prometheus_url(ctx.manifest), ctx.run_id, ctx.port,
                                                     ctx.telemetry_timeout, since=self.generated_at))
        ctx.result["telemetry_probe"] = result
        ctx.say("telemetry probe: server /metrics %s; Prometheus %s" % (
            "ok" if result["server_metrics"]["ok"] else "no tokens",
            "skipped: " + result["reason"] if result.get("skipped")
            else "ok (%d series)" % result["sample_count"] if result["ok"] else result["error"]))

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

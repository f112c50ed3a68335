# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The serve_check stage's runner: the serving configuration, driven over the shapes serving meets, changes no cache.

servecheck.py holds the snapshots, the request plan and the verdict; this runner starts the server, drives it and
hands what it saw to servecheck.judge."""

from __future__ import annotations

import time

from .. import contract, registry
from . import moe, servecheck, signature
from .moe import is_moe_model, model_config
from .warmups import StaticLauncherProbe, WarmupStage


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

        def progress(index, count, label):
            if index == 2:  # the telemetry probe counts samples from here: the scrape lands while the others run
                self.generated_at = time.time()
            ctx.progress(index, count, label)

        servecheck.drive(plan, lambda body, what: srv.generate(body=body, what=what), self.windows, self.request_log,
                         progress=progress)
        self.generated_at = self.generated_at or time.time()
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
        """The second snapshot, then servecheck.judge: the verdict and the stage's error (one home for both)."""
        ctx = self.ctx
        if self.before is None:
            return error
        if not self.windows or self.windows[-1][1] != servecheck.TEARDOWN:
            self.windows.append((time.time_ns(), servecheck.TEARDOWN))
        after = self._snapshot("after")
        seen = {"windows": self.windows, "extra_server_args": ctx.extra_server_args, "primed_args": self.primed_args(),
                "shapes": self.shapes, "requests": self.request_log, "snapshot_s": self.snapshot_s,
                "server_env": self.server_env(), "down_reuse_expected": self.down_reuse_expected(),
                "default_config_expected": self.default_config_expected()}
        evidence, error = servecheck.judge(self.before, after, self.scan.jit_lines, seen, error)
        ctx.result["serve_check"] = evidence
        ctx.result["zero_jit"] = evidence["zero_jit"]
        if evidence["zero_jit"]:
            ctx.say(evidence["summary"])
        elif evidence["zero_jit"] is False:
            ctx.say("JIT at serve time: " + evidence["message"])
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

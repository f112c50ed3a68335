"""The zero-JIT proof without blind spots, and the inductor stage that restarts until it settles.

Pure parts (the servers' environment, the log lines, the verdict and its wording, the static-launcher decision,
the settling loop) directly; the stages with the stand-in server on this machine (test_runtime_engine.Run): a
missing SGLang JIT kernel makes the serve check's server refuse and exit, a lost autotune result is benchmarked
again, a lost CuTe DSL kernel is compiled again, and the inductor stage records its starts.
"""

import glob
import os
import time

import pytest



from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, registry
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import (
    argv, inductor, servecheck)
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.validate import LogScan

AUTOTUNE_LINE = "Triton autotuning for function _chunk_scan_fwd_kernel,"
CRASH_LINE = ("RuntimeError: JIT module 'sgl_kernel_jit_fused_add_rmsnorm_7168' has no usable cached build under "
              "/profiles/sglang_jit/sm90/sgl_kernel_jit_fused_add_rmsnorm_7168/build-0123456789abcdef, and "
              "SGLANG_CRASH_ON_JIT_COMPILE forbids compiling at runtime. Seed the cache with prebuilt artifacts "
              "matching this environment, or unset the flag.")


# ---------------------------------------------------------------- the servers' environment
def test_every_server_persists_autotune_results_and_only_the_serve_check_refuses_to_compile():
    for stage in registry.server_stages():
        env = argv.server_env({}, stage)
        assert env["TRITON_CACHE_AUTOTUNING"] == "1", stage
        check = stage == "serve_check"
        assert (env.get("SGLANG_CRASH_ON_JIT_COMPILE") == "1") is check, stage
        assert (env.get("TRITON_PRINT_AUTOTUNING") == "1") is check, stage
        assert env["CUTE_DSL_CACHE_DIR"] == "/profiles/cute_dsl"
        assert "TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER" not in env
    assert argv.server_env({}, "inductor", static_launcher_off=True)["TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER"] == "0"


def test_the_cute_dsl_cache_is_one_of_the_caches_and_the_switches_are_reserved():
    assert contract.CACHES["cute_dsl"] == ("/profiles/cute_dsl", "CUTE_DSL_CACHE_DIR")
    for name in ("CUTE_DSL_CACHE_DIR", "TRITON_CACHE_AUTOTUNING", "TRITON_PRINT_AUTOTUNING",
                 "SGLANG_CRASH_ON_JIT_COMPILE", "TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER"):
        assert name in contract.RESERVED_ENV
    assert servecheck.cache_of("cute_dsl/cutedsl_ab.mlir") == "cute_dsl"


# ---------------------------------------------------------------- the log lines
def test_the_log_scan_names_the_autotuned_kernel_and_the_refused_jit_module():
    scan = LogScan()
    for line in (AUTOTUNE_LINE, "with key as (16, 16, 'torch.bfloat16'),", "finished after 0.31s,", CRASH_LINE):
        scan.feed(line)
    assert [(l["kind"], l["name"]) for l in scan.jit_lines] == [
        ("triton_autotune", "_chunk_scan_fwd_kernel"), ("sglang_jit_crash", "sgl_kernel_jit_fused_add_rmsnorm_7168")]


def _verdict(before, after, lines=()):
    return servecheck.verdict(before, after, list(lines), [], [], {}, 4096, [])


def test_an_autotune_benchmark_at_serve_time_is_jit_naming_the_kernel_and_the_stages():
    scan = LogScan()
    scan.feed(AUTOTUNE_LINE)
    out = _verdict({}, {}, scan.jit_lines)
    assert out["zero_jit"] is False
    [finding] = out["findings"]
    assert finding["kind"] == "triton_autotune" and finding["kernels"] == ["_chunk_scan_fwd_kernel"]
    assert "_chunk_scan_fwd_kernel" in out["message"] and "Triton autotune benchmark" in out["message"]
    # every priming stage that starts a server runs Triton kernels, so any of them should have primed it
    assert finding["should_have_primed"] == ", ".join(
        s for s in registry.server_stages() if s in registry.priming_stages())
    assert finding["should_have_primed"].startswith("deep_gemm, flashinfer, inductor")


def test_a_refused_jit_compile_is_jit_naming_the_module():
    scan = LogScan()
    scan.feed(CRASH_LINE)
    out = _verdict({}, {}, scan.jit_lines)
    [finding] = out["findings"]
    assert finding["kernels"] == ["sgl_kernel_jit_fused_add_rmsnorm_7168"]
    assert "SGLANG_CRASH_ON_JIT_COMPILE=1" in out["message"] and "sgl_kernel_jit_fused_add_rmsnorm_7168" in out["message"]


def test_a_new_cute_dsl_kernel_is_jit_and_its_staging_directory_is_not():
    now = time.time_ns()
    after = {"cute_dsl/cutedsl_0a1b.mlir": (4096, now), "cute_dsl/tmp.pid_7_ab/cutedsl_0a1c.mlir": (10, now),
             "sglang_jit/sm90/m/build-1/.staging-ab/x.o": (3, now)}
    out = _verdict({}, after)
    [finding] = out["findings"]
    assert finding["cache"] == "cute_dsl" and finding["files"] == 1
    assert out["caches"]["sglang_jit"]["ignored"] == 1


def test_the_verdict_words_exactly_what_was_measured():
    before = {"triton/A/k.cubin": (10, 1)}
    out = _verdict(before, dict(before))
    out["shapes"] = {"prompt_lengths": [1, 4096], "decode_batch_sizes": [1, 256]}
    out["measured"] = servecheck.measured(out, before, before, argv.server_env({}, "serve_check"))
    facts = out["measured"]
    assert facts["caches_unchanged"] is True and facts["triton_autotune_benchmarks"] == 0
    assert facts["crash_on_jit_miss"] == {"switch": "SGLANG_CRASH_ON_JIT_COMPILE=1", "crashed": False,
                                          "covers": "SGLang's own JIT kernels (sglang.kernels.jit, /profiles/sglang_jit)"}
    assert set(facts["caches_watched"]) == set(contract.CACHES) and facts["not_measured"]
    text = servecheck.summary_text(out, 4)
    assert text == ("4 requests (2 prompt lengths up to 4096 tokens, 2 decode batch sizes up to 256): %d caches under "
                    "/profiles unchanged (1 files), no JIT log line, no Triton autotune benchmark, no crash on a JIT "
                    "miss (SGLANG_CRASH_ON_JIT_COMPILE=1: SGLang's own JIT kernels)" % len(contract.CACHES))
    # without the switches nothing is claimed about them
    bare = servecheck.measured(out, before, before, {})
    out["measured"] = bare
    assert bare["triton_autotune_benchmarks"] is None and "crash" not in servecheck.summary_text(out, 4)


# ---------------------------------------------------------------- inductor: the static launcher and settling
TORCH_211 = '''
        if len(cached_configs) == 1 and len(configs) > 1:
            best_config = cached_configs[0]
            for compile_result in self.compile_results:
                if triton_config_to_hashable(compile_result.config) == best_config_hash:
                    self.compile_results = [compile_result]
                    return
'''
TORCH_213 = '''
            found_by_coordesc = getattr(best_config, "found_by_coordesc", False)
            for compile_result in self.compile_results:
                if triton_config_to_hashable(compile_result.config) == best_config_hash:
                    compile_result.config.found_by_coordesc = found_by_coordesc
'''


@pytest.mark.parametrize("info, needed", [
    ({"torch_version": "2.11.0+cu130", "static_default": True, "recheck_source": TORCH_211}, True),
    ({"torch_version": "2.14.1", "static_default": True, "recheck_source": TORCH_213}, False),
    ({"torch_version": "2.14.1", "static_default": False, "recheck_source": TORCH_211}, False),
    ({"torch_version": "2.20.0", "static_default": True, "recheck_source": None}, True),
    ({"error": "ModuleNotFoundError: No module named 'torch'"}, None),
])
def test_the_static_launcher_is_turned_off_only_where_torch_drops_the_coordesc_mark(info, needed):
    decision = inductor.decide(info)
    assert decision["needed"] is needed and decision["reason"]


def test_settling_stops_at_the_first_start_that_changes_nothing_and_is_bounded():
    changes = iter([64, 12, 0, 5])
    outcome = inductor.until_settled(lambda n: {"triton": {"files_added": next(changes), "files_rewritten": 0}}, 4)
    assert outcome["settled"] is True and outcome["starts"] == 3
    assert [p["files_changed"] for p in outcome["per_start"]] == [64, 12, 0]
    never = inductor.until_settled(lambda n: {"triton": {"files_added": 0, "files_rewritten": 1}}, 2)
    assert never == {"settled": False, "starts": 2, "max_starts": 2, "per_start": [
        {"start": 1, "files_changed": 1, "by_cache": {"triton": 1}}, {"start": 2, "files_changed": 1, "by_cache": {"triton": 1}}]}


# ---------------------------------------------------------------- the stages, with the stand-in server
def test_the_inductor_stage_restarts_until_a_start_adds_nothing_and_records_each_start(run):
    result = run.stage("inductor")
    assert result["status"] == "ok", result["message"]
    outcome = result["inductor"]
    # the stand-in, like torch 2.11 on an H100/H200: cold start, a first warm start that adds files, then nothing
    assert outcome["settled"] is True and outcome["starts"] == 3 and outcome["max_starts"] == contract.INDUCTOR_MAX_STARTS
    assert [p["files_changed"] > 0 for p in outcome["per_start"]] == [True, True, False]
    assert set(outcome["per_start"][1]["by_cache"]) == {"triton"}
    assert run.stage_json("inductor")["inductor"] == outcome
    assert len(run.server_lines("inductor")) and result["static_cuda_launcher"]["needed"] is None
    assert "settled after 3 starts" in result["message"]
    again = run.stage("inductor", mode="rebuild")
    assert again["status"] == "ok" and again["inductor"]["starts"] == 1


def test_an_inductor_server_that_never_settles_is_inductor_not_settled(run, monkeypatch):
    monkeypatch.setattr(contract, "INDUCTOR_MAX_STARTS", 2)
    result = run.stage("inductor")
    assert result["status"] == "error" and result["error_type"] == "inductor_not_settled", result
    assert "each of its 2 starts" in result["message"] and result["inductor"]["settled"] is False


@pytest.fixture
def primed(run):
    for stage in registry.priming_stages():
        assert run.stage(stage)["status"] == "ok"
    return run


def test_a_missing_sglang_jit_kernel_makes_the_check_fail_naming_it_not_compile_it(primed):
    leaves = glob.glob(primed.p(contract.CACHES["sglang_jit"][0]) + "/*/sgl_kernel_jit_*/build-*/deps-*/*.so")
    assert leaves
    os.unlink(leaves[0])
    result = primed.stage("serve_check")
    assert result["status"] == "error" and result["error_type"] == "jit_at_serve_time", result
    assert "refused to compile it (SGLANG_CRASH_ON_JIT_COMPILE=1)" in result["message"]
    assert "sgl_kernel_jit_fused_add_rmsnorm_" in result["message"]
    assert result["zero_jit"] is False and not os.path.exists(leaves[0])  # refused, so nothing was compiled
    assert result["serve_check"]["measured"]["crash_on_jit_miss"]["crashed"] is True


def test_a_lost_autotune_result_is_benchmarked_again_and_fails_the_check(run):
    model = run.add_model("tiny-hybrid")
    for stage in registry.priming_stages():
        assert run.stage(stage, model=model)["status"] in ("ok", "skipped")
    stored = glob.glob(run.p(contract.CACHES["triton"][0]) + "/*/*.autotune.json")
    assert len(stored) == 3  # persisted by the priming servers (TRITON_CACHE_AUTOTUNING=1)
    passed = run.stage("serve_check", model=model)
    assert passed["status"] == "ok", passed["message"]
    assert passed["serve_check"]["measured"]["triton_autotune_benchmarks"] == 0
    os.unlink([p for p in stored if p.endswith("/_chunk_scan_fwd_kernel.autotune.json")][0])
    result = run.stage("serve_check", model=model, mode="rebuild")
    assert result["status"] == "error" and result["error_type"] == "jit_at_serve_time", result
    assert "Triton autotune benchmark" in result["message"] and "_chunk_scan_fwd_kernel" in result["message"]


def test_a_lost_cute_dsl_kernel_is_compiled_again_and_fails_the_check(run):
    model = run.add_model("tiny-gdn")
    extra = ["--linear-attn-backend", "cutedsl"]
    for stage in registry.priming_stages():
        assert run.stage(stage, model=model, extra_server_args=extra)["status"] in ("ok", "skipped")
    kernels = glob.glob(run.p(contract.CACHES["cute_dsl"][0]) + "/cutedsl_*.mlir")
    assert len(kernels) == 1
    os.unlink(kernels[0])
    result = run.stage("serve_check", model=model, extra_server_args=extra)
    assert result["status"] == "error" and result["error_type"] == "jit_at_serve_time", result
    assert "cute_dsl: 1 file" in result["message"]

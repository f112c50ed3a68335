"""The serve check's pieces (container/servecheck.py, the JIT lines of container/validate.py), and the stage end to end.

Snapshot and diff on real directories, the log scan on SGLang 0.5.23's real lines (sglang-facts.md 3 and 10),
the verdict and its wording, the shapes it drives; then the stage with the stand-in server on a temporary
/profiles: it passes on a primed host, fails naming the cause when something is missing, and ensure is a noop
after a passing check.
"""

import glob
import os
import shutil
import time

import pytest


from unit_support.runtime import Run

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, registry, wording
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import (
    ledger, plan, servecheck)
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.validate import LogScan

DG_TAG = "sm90_fp8_gemm_1d2d"
MOE_NAME = "E=257,N=256,device_name=NVIDIA_H200,dtype=fp8_w8a8,block_shape=[128, 128]"


def write(root, rel, data=b"x"):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


# ---------------------------------------------------------------- snapshot and diff

def test_snapshot_walks_every_cache_and_skips_the_runtimes_own_files(tmp_path):
    root = str(tmp_path)
    write(root, "triton/ABC/fused_moe_kernel.cubin", b"1234")
    write(root, "deep_gemm/cache/%s.0123/kernel.cubin" % DG_TAG)
    write(root, ".locks/serve_check.lock")
    write(root, ".in_progress/serve_check.json")
    write(root, "moe_configs/.work/run-1/E=8.json")
    os.symlink("/etc", os.path.join(root, "triton", "link"))
    snap = servecheck.snapshot(root)
    assert sorted(snap) == ["deep_gemm/cache/%s.0123/kernel.cubin" % DG_TAG, "triton/ABC/fused_moe_kernel.cubin",
                            "triton/link"]
    assert snap["triton/ABC/fused_moe_kernel.cubin"][0] == 4
    assert servecheck.summary(snap)["files"] == 3
    assert servecheck.snapshot(os.path.join(root, "missing")) == {}


def test_snapshot_of_a_hundred_thousand_files_is_cheap(tmp_path):
    root = str(tmp_path)
    for d in range(100):
        sub = os.path.join(root, "triton", "D%03d" % d)
        os.makedirs(sub)
        for f in range(1000):
            open(os.path.join(sub, "k%d.cubin" % f), "w").close()
    started = time.monotonic()
    snap = servecheck.snapshot(root)
    elapsed = time.monotonic() - started
    assert len(snap) == 100000
    assert elapsed < 5.0, elapsed  # about 0.3 s on a workstation; generous for a loaded CI box
    assert servecheck.diff(snap, dict(snap)) == {}


def test_diff_separates_new_rewritten_removed_and_noise(tmp_path):
    root = str(tmp_path)
    write(root, "triton/OLD/a.cubin")
    write(root, "flashinfer/.cache/flashinfer/0.7.2/90a/flashinfer_jit.log", b"one")
    write(root, "deep_gemm/locks/GEMM.lock")
    write(root, "inductor_gone/x.py")
    write(root, "deep_gemm/tiny-moe/signature.json")
    before = servecheck.snapshot(root)
    time.sleep(0.01)
    write(root, "triton/NEW/fused_moe_kernel.cubin")
    write(root, "triton/NEW/fused_moe_kernel.json")
    write(root, "triton/OLD/a.cubin", b"rewritten")
    write(root, "flashinfer/.cache/flashinfer/0.7.2/90a/flashinfer_jit.log", b"one two")
    write(root, "deep_gemm/locks/GEMM.lock", b"again")
    write(root, "deep_gemm/tmp/1234/kernel.cu")
    write(root, "deep_gemm/tiny-moe/signature.json", b"{}")
    os.unlink(os.path.join(root, "inductor_gone/x.py"))
    changes = servecheck.diff(before, servecheck.snapshot(root))
    assert changes["triton"]["added"] == ["triton/NEW/fused_moe_kernel.cubin", "triton/NEW/fused_moe_kernel.json"]
    assert changes["triton"]["modified"] == ["triton/OLD/a.cubin"]
    assert changes["flashinfer"] == {"added": [], "modified": [], "removed": [],
                                     "noise": ["flashinfer/.cache/flashinfer/0.7.2/90a/flashinfer_jit.log"]}
    assert changes["deep_gemm"]["added"] == [] and changes["deep_gemm"]["modified"] == []
    assert len(changes["deep_gemm"]["noise"]) == 3  # a lock, a staging file, a stage's signature.json
    assert changes["inductor_gone"]["removed"] == ["inductor_gone/x.py"]


def test_the_cache_of_a_path_is_its_contract_name():
    assert servecheck.cache_of("nv/ComputeCache/x") == "cuda"
    assert servecheck.cache_of("torchinductor/fxgraph/a") == "torchinductor"
    assert servecheck.cache_of("site/x") == "site"
    assert servecheck.cache_of("stray.txt") == "(profiles root)"


def test_what_a_cache_gained_in_words():
    dg = ["deep_gemm/cache/%s.%s/%s" % (tag, digest, name) for tag, digest in (
        (DG_TAG, "aa"), (DG_TAG, "bb"), (DG_TAG, "cc"), ("sm90_m_grouped_fp8_gemm_masked_1d2d", "dd"))
          for name in ("kernel.cu", "kernel.cubin")]
    assert servecheck.describe_files("deep_gemm", dg) == (
        "deep_gemm: 3 new kernels sm90_fp8_gemm_1d2d.*, 1 new kernel sm90_m_grouped_fp8_gemm_masked_1d2d.*")
    triton = ["triton/H%d/%s" % (i, name) for i in range(2) for name in (
        "fused_moe_kernel.cubin", "fused_moe_kernel.json", "fused_moe_kernel.ptx", "__grp__fused_moe_kernel.json",
        "fused_moe_kernel.ttir", "fused_moe_kernel.ttgir")]
    assert servecheck.describe_files("triton", triton) == "triton: 12 files (fused_moe_kernel)"
    fi = ["flashinfer/.cache/flashinfer/0.7.2/90a/cached_ops/sampling/sampling.so",
          "flashinfer/.cache/flashinfer/0.7.2/90a/cached_ops/sampling/build.ninja"]
    assert servecheck.describe_files("flashinfer", fi) == "flashinfer: 2 files (sampling)"
    assert servecheck.describe_files("torchinductor", ["torchinductor/a"]) == "torchinductor: 1 file"


# ---------------------------------------------------------------- the log scan

REAL_LINES = {
    "deep_gemm_session": "[2026-11-29 12:00:00 TP0] Entering DeepGEMM JIT Pre-Compile session. It may take a long time "
                         "(typically 10-20 mins) if you have not run `sglang.compile_deep_gemm`. ...",
    "deep_gemm_compile": "[2026-11-29 12:00:00 TP0] Try DeepGEMM JIT Compiling for <GEMM_NT_F8F8BF16> N=7168, K=2048, "
                         "num_groups=1 with all Ms. It only takes a little time (typically 1 sec) if you have run "
                         "`python3 -m sglang.compile_deep_gemm`. ",
    "flashinfer_build": "[2026-11-29 12:00:00 TP0] flashinfer.jit: Building JIT ops: sampling",
    "moe_default": "[2026-11-29 12:00:00 TP0] Using default MoE kernel config. Performance might be sub-optimal! "
                   "Config file not found at /profiles/moe_configs/configs/triton_3_6_0/%s.json, you can create them "
                   "with https://github.com/sgl-project/sglang/tree/main/benchmark/kernels/fused_moe_triton" % MOE_NAME,
    "moe_down_fallback": "[2026-11-29 12:00:00 TP0] Down MoE config file not found at /profiles/moe_configs/configs/"
                         "triton_3_6_0/%s_down.json; reusing the tuned up-projection config without TMA. Performance "
                         "might be sub-optimal." % MOE_NAME,
}


def test_the_log_scan_knows_each_jit_line_and_keeps_up_and_down_apart():
    scan = LogScan()
    for line in REAL_LINES.values():
        scan.feed(line)
    scan.feed("[2026-11-29 12:00:00 TP0] Using MoE kernel config from /profiles/moe_configs/configs/triton_3_6_0/%s.json."
              % MOE_NAME)
    scan.feed("[2026-11-29 12:00:00 TP0] Using MoE kernel config from /profiles/moe_configs/configs/triton_3_6_0/"
              "%s_down.json." % MOE_NAME)
    assert [line["kind"] for line in scan.jit_lines] == list(REAL_LINES)
    assert dict(scan.jit_counts) == dict((kind, 1) for kind in REAL_LINES)
    compile_line = scan.jit_lines[1]
    assert compile_line["match"] == "Try DeepGEMM JIT Compiling for <GEMM_NT_F8F8BF16> N=7168, K=2048, num_groups=1"
    assert scan.jit_lines[4]["match"].endswith("%s_down.json" % MOE_NAME)  # the path with its space kept whole
    # the up and the down lookups are different files: each has its own field
    assert scan.moe["up"]["path"].endswith("%s.json" % MOE_NAME) and not scan.moe["up"]["path"].endswith("_down.json")
    assert scan.moe["down"]["path"].endswith("%s_down.json" % MOE_NAME)
    assert scan.moe["up"]["default"] is True
    scan.feed("[2026-11-29 12:00:00 TP0] Capture target decode CUDA graph end. bs=[1, 2, 4, 8], elapsed=0.02 s")
    assert scan.decode_capture_bs == [1, 2, 4, 8]


def test_ordinary_lines_are_no_jit():
    scan = LogScan()
    for line in ("KV Cache is allocated. dtype: torch.float8_e4m3fn, #tokens: 10, K size: 1 GB, V size: 1 GB",
                 "flashinfer.jit: Loading JIT ops: sampling", "The server is fired up and ready to roll!",
                 "Config file not found at /x.json. Fallback to triton version 3.4.0 and use MoE kernel config from "
                 "/y.json. Performance might be sub-optimal!"):
        scan.feed(line)
    assert scan.jit_lines == [] and scan.moe["up"]["fallback"] is not None


# ---------------------------------------------------------------- the verdict

def _verdict(before, after, lines=(), windows=(), serving=(), primed=None, requests=(), chunk=4096):
    return servecheck.verdict(before, after, list(lines), list(windows), list(serving), primed or {}, chunk,
                              list(requests))


def test_nothing_grew_and_no_jit_line_is_zero_jit():
    snap = {"triton/A/k.cubin": (10, 1)}
    lines = [{"kind": "deep_gemm_compile", "text": REAL_LINES["deep_gemm_compile"], "t": time.time()}]
    out = _verdict(snap, dict(snap, **{"flashinfer/x/flashinfer_jit.log": (3, 5)}), lines)
    # real SGLang logs the DeepGEMM lines in every server that warms up: without new kernels they are no JIT
    assert out["zero_jit"] is True and out["findings"] == [] and out["message"] is None
    assert out["deep_gemm_lines_without_new_kernels"] is True
    assert out["caches"]["flashinfer"]["ignored"] == 1


def test_new_deep_gemm_kernels_name_the_kernels_the_trigger_and_the_stage():
    now = time.time_ns()
    windows = [(now - 10 ** 9, "prompt of 1 tokens"), (now + 10 ** 9, servecheck.TEARDOWN)]
    after = {"deep_gemm/cache/%s.aa/%s" % (DG_TAG, n): (5, now - 2 * 10 ** 9) for n in ("kernel.cu", "kernel.cubin",
                                                                                         "meta.json", ".committed")}
    lines = [{"kind": "deep_gemm_compile", "text": REAL_LINES["deep_gemm_compile"], "t": (now - 2 * 10 ** 9) / 1e9,
              "match": "Try DeepGEMM JIT Compiling for <GEMM_NT_F8F8BF16> N=7168, K=2048, num_groups=1"}]
    out = _verdict({}, after, lines, windows)
    assert out["zero_jit"] is False
    [finding] = out["findings"]
    assert finding["evidence"] == "deep_gemm: 1 new kernel sm90_fp8_gemm_1d2d.*"
    assert finding["should_have_primed"] == "deep_gemm" and finding["phases"] == [servecheck.STARTUP]
    assert finding["log_lines"] == ["Try DeepGEMM JIT Compiling for <GEMM_NT_F8F8BF16> N=7168, K=2048, num_groups=1"]
    assert "deep_gemm: 1 new kernel sm90_fp8_gemm_1d2d.*" in out["message"]
    assert "deep_gemm should have primed them" in out["message"]
    assert "prime_stage_modes: {deep_gemm: rebuild}" in out["message"]


def test_a_missing_moe_config_is_jit_by_its_log_line_alone():
    lines = [{"kind": "moe_default", "text": REAL_LINES["moe_default"], "t": time.time()},
             {"kind": "moe_down_fallback", "text": REAL_LINES["moe_down_fallback"], "t": time.time()}]
    out = _verdict({}, {}, lines)
    kinds = dict((f["kind"], f) for f in out["findings"])
    assert set(kinds) == {"moe_default", "moe_down_fallback"}
    assert kinds["moe_default"]["should_have_primed"] == "moe_tune"
    assert "default MoE kernel config" in out["message"] and "moe_tune should have primed it" in out["message"]
    assert "tune_down_moe.py" in kinds["moe_down_fallback"]["fix"]


def test_files_written_during_a_request_are_that_requests():
    now = time.time_ns()
    windows = [(now, "prompt of 4096 tokens"), (now + 10 ** 8, "prompt of 8192 tokens (2 chunks of up to 4096)"),
               (now + 2 * 10 ** 8, servecheck.TEARDOWN)]
    after = {"triton/X/_fwd_kernel.cubin": (5, now + 15 * 10 ** 7), "triton/X/_fwd_kernel.json": (5, now + 15 * 10 ** 7)}
    requests = [{"label": "prompt of 4096 tokens", "prompt_tokens": 4096},
                {"label": "prompt of 8192 tokens (2 chunks of up to 4096)", "prompt_tokens": 8192}]
    out = _verdict({}, after, windows=windows, requests=requests)
    [finding] = out["findings"]
    assert finding["phases"] == ["prompt of 8192 tokens (2 chunks of up to 4096)"]
    assert finding["evidence"] == "triton: 2 files (_fwd_kernel)"
    assert [c["cause"] for c in out["causes"]] == ["longer_context"]
    assert "--cuda-graph-prefill-max-context=8192" in finding["fix"]
    assert "a longer context" in out["message"]


def test_other_serving_args_than_the_priming_ones_are_named():
    after = {"triton/Y/fused_moe_kernel.cubin": (5, 1)}
    out = _verdict({}, after, serving=["--cuda-graph-max-bs-decode=512"],
                   primed={"deep_gemm": [], "flashinfer": [], "inductor": [], "never": None})
    assert out["causes"][0]["cause"] == "serving_args"
    assert "--cuda-graph-max-bs-decode=512" in out["message"] and "flashinfer: none" in out["message"]
    assert "never" not in out["message"]  # a stage without a recorded signature is not compared
    assert "prime_extra_server_args" in out["findings"][0]["fix"]


def test_shapes_cover_every_captured_batch_size_and_prompt_lengths_up_to_the_chunk():
    decode, source = servecheck.decode_plan({}, [1, 2, 4, 8, 12, 16])
    assert decode == [1, 2, 4, 8, 12, 16] and "capture line" in source
    assert servecheck.decode_plan({"cuda_graph_config": {"decode": {"max_bs": 48}}}, None)[0] == [1, 2, 4, 8, 16, 32, 48]
    assert servecheck.decode_plan({"cuda_graph_bs_decode": [4, 1]}, None)[0] == [1, 4]
    assert servecheck.decode_plan({"cuda_graph_config": {"decode": {"backend": "disabled"}}}, None)[0] == [1]
    assert servecheck.prompt_plan(4096) == ([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096], 4096)
    assert servecheck.prompt_plan(None)[1] == contract.CANONICAL_SETTINGS["chunked_prefill_size"]
    assert servecheck.prompt_plan(4096, 10000)[0][-3:] == [4096, 8192, 10000]
    reqs = servecheck.requests([1, 3], [2, 6000], 4096)
    assert [r["label"] for r in reqs] == ["prompt of 2 tokens", "prompt of 6000 tokens (2 chunks of up to 4096)",
                                          "decode batch 1", "decode batch 3 (3 concurrent requests in one batch)"]
    assert len(reqs[1]["body"]["input_ids"]) == 6000 and len(reqs[3]["body"]["input_ids"]) == 3
    assert all(0 < t < 100 for r in reqs for ids in ([r["body"]["input_ids"]] if r["batch_size"] == 1 else
                                                      r["body"]["input_ids"]) for t in ids)
    assert reqs[3]["body"]["sampling_params"]["ignore_eos"] is True


def test_zero_jit_wording():
    assert wording.zero_jit(None) == (None, "not checked: serve_check is not among the stages")
    ok = {"status": "ok", "zero_jit": True, "serve_check": {"summary": "3 requests"}}
    assert wording.zero_jit(ok) == (True, "yes: 3 requests")
    noop = {"status": "noop", "zero_jit": True, "proven_by": {"run_id": "r1", "at": "t1"}}
    assert wording.zero_jit(noop) == (True, "yes: the last serve_check passed (run r1, t1) and nothing it depends on "
                                            "changed")
    # a check answer (noop) refers to the evidence this run recorded, when it is the same signature
    recorded = {"status": "ok", "zero_jit": True, "signature": {"a": 1}, "finished_at": "t0",
                "serve_check": {"summary": "3 requests"}}
    assert wording.zero_jit(dict(noop, signature={"a": 1}), recorded) == (
        True, "yes: 3 requests (proven at t0; nothing it depends on changed since)")
    assert wording.zero_jit(dict(noop, signature={"a": 2}), recorded)[1].startswith("yes: the last serve_check passed")
    bad = {"status": "error", "zero_jit": False, "error_type": "jit_at_serve_time", "message": "triton: 2 files"}
    assert wording.zero_jit(bad) == (False, "no: triton: 2 files")
    assert wording.zero_jit({"status": "would_run", "reprime_reasons": []})[0] is None
    assert wording.reason("serve_check", noop).startswith("serve_check is proven: its last check passed")
    assert ledger.build_prep_result("r", {"serve_check": bad})["zero_jit"] is False


# ---------------------------------------------------------------- the stage, with the stand-in server

@pytest.fixture
def primed(tmp_path):
    run = Run(str(tmp_path))
    for stage in registry.priming_stages():
        assert run.stage(stage)["status"] == "ok"
    return run


def test_on_a_primed_host_the_check_passes_and_ensure_is_then_a_noop(primed):
    first = primed.stage("serve_check")
    assert first["status"] == "ok" and first["zero_jit"] is True, first["message"]
    evidence = first["serve_check"]
    assert evidence["findings"] == [] and evidence["zero_jit"] is True
    assert "--enable-metrics" in first["server"]["argv"] and "--enable-torch-compile" not in first["server"]["argv"]
    assert evidence["shapes"]["decode_batch_sizes"][-1] == 256 and evidence["shapes"]["chunked_prefill_size"] == 4096
    assert evidence["shapes"]["prompt_lengths"][-1] == 4096
    assert len(evidence["requests"]) == len(evidence["shapes"]["decode_batch_sizes"]) + len(
        evidence["shapes"]["prompt_lengths"]) and all(r["ok"] for r in evidence["requests"])
    assert evidence["snapshot"]["before"]["files"] == evidence["snapshot"]["after"]["files"] > 100
    assert evidence["summary"].startswith("%d requests (" % len(evidence["requests"]))
    assert primed.stage_json("serve_check")["zero_jit"] is True and primed.prep_result()["zero_jit"] is True
    assert [r["field"] for r in first["reprime_reasons"]] == ["signature"]
    starts = len(primed.server_lines("serve_check"))
    again = primed.stage("serve_check")
    assert again["status"] == "noop" and again["zero_jit"] is True and again["server"] is None
    assert again["proven_by"]["run_id"] == first["run_id"]
    assert len(primed.server_lines("serve_check")) == starts


def test_check_mode_says_whether_the_check_would_run_and_why(primed):
    would = primed.stage("serve_check", mode="check")
    assert would["status"] == "would_run" and would["zero_jit"] is None
    assert primed.stage("serve_check")["status"] == "ok"
    assert primed.stage("serve_check", mode="check")["status"] == "noop"
    # new serving args: the check would run again, and says which field changed
    changed = primed.stage("serve_check", mode="check", extra_server_args=["--random-seed=7"])
    assert changed["status"] == "would_run"
    assert [r["field"] for r in changed["reprime_reasons"]] == ["extra_server_args"]
    longer = primed.stage("serve_check", mode="check", serve_max_prompt_tokens=8192)
    assert [r["field"] for r in longer["reprime_reasons"]] == ["serve_max_prompt_tokens"]


def test_a_plan_sends_the_check_after_a_stage_whose_inputs_changed(primed):
    assert primed.stage("serve_check")["status"] == "ok"
    model = plan.plan(list(contract.STAGE_ORDER), primed.model, {"pointer": primed.pointer, "port": primed.port,
                                                                 "moe_batch_sizes": [4]},
                      stream=open(os.devnull, "w"), env=primed.env)
    # moe_tune and what depends on it
    assert model["to_run"] == ["moe_tune"] + [s for s in contract.STAGE_ORDER if "moe_tune" in registry.get(s).depends_on]
    assert model["stages"]["serve_check"]["reprime_reasons"][-1]["field"] == "moe_tune_signature"


def test_a_deleted_deep_gemm_kernel_fails_the_check_and_a_reprime_makes_it_pass(primed):
    assert primed.stage("serve_check")["status"] == "ok"
    kernel = sorted(glob.glob(primed.p("/profiles/deep_gemm/cache/sm90_fp8_gemm_1d2d.*")))[0]
    shutil.rmtree(kernel)
    failed = primed.stage("serve_check", mode="rebuild")
    assert failed["status"] == "error" and failed["error_type"] == "jit_at_serve_time" and failed["zero_jit"] is False
    assert "deep_gemm: 1 new kernel sm90_fp8_gemm_1d2d.*" in failed["message"]
    assert "deep_gemm should have primed them" in failed["message"]
    assert "Try DeepGEMM JIT Compiling for <GEMM_NT_F8F8BF16>" in failed["message"]
    assert "server start-up" in failed["message"]
    assert primed.prep_result()["zero_jit"] is False
    assert os.path.exists(primed.p(contract.marker_path("serve_check")))  # left on error: ensure re-runs it
    assert primed.stage("deep_gemm", mode="rebuild")["status"] == "ok"
    again = primed.stage("serve_check")
    assert again["status"] == "ok" and again["zero_jit"] is True, again["message"]
    assert "in_progress_marker" in [r["field"] for r in again["reprime_reasons"]]


def test_a_deleted_down_config_fails_the_check_and_moe_tune_makes_it_pass(primed):
    down = glob.glob(primed.p("/profiles/moe_configs/configs/triton_3_4_0/E=8,N=256,*_down.json"))
    assert len(down) == 1
    os.unlink(down[0])
    failed = primed.stage("serve_check")
    assert failed["error_type"] == "jit_at_serve_time", failed["message"]
    [finding] = failed["serve_check"]["findings"]
    assert finding["kind"] == "moe_down_fallback" and finding["should_have_primed"] == "moe_tune"
    assert "Down MoE config file not found at %s; reusing the tuned up-projection config without TMA" % (
        down[0]) in finding["log_lines"][0]
    assert "re-run moe_tune with mode rebuild" in failed["message"]
    assert primed.stage("moe_tune", mode="rebuild")["status"] == "ok"
    assert os.path.isfile(down[0])
    again = primed.stage("serve_check")
    assert again["status"] == "ok" and again["zero_jit"] is True, again["message"]


def test_a_checkpoint_whose_down_file_cannot_be_tuned_still_proves_zero_jit(tmp_path):
    # W8A8-int8: tune_down_moe.py cannot name its file, so SGLang reusing the up config is what priming leaves
    run = Run(str(tmp_path))
    model = run.add_model("tiny-moe-int8")
    for stage in registry.priming_stages():  # (deep_gemm is skipped: SGLang runs DeepGEMM for FP8-block weights only)
        assert run.stage(stage, model=model)["status"] == ("skipped" if stage == "deep_gemm" else "ok"), stage
    check = run.stage("serve_check", model=model)
    assert check["status"] == "ok" and check["zero_jit"] is True, check["message"]
    assert any("Down MoE config file not found" in line for line in run.server_lines("serve_check"))

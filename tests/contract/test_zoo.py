"""Contract tier: the model zoo. Real SGLang 0.5.23 decides; our plan must agree, field by field.

For every (checkpoint, serving args) case below, tests/contract/zoo_probe.py runs SGLang's own code in the
contract venv (one subprocess for all cases: parse + resolve the args, ModelConfig, the quantization config, the
shared-expert fusion gate, the experts layer built on the meta device, its quant method's own apply() up to the
MoE runner, try_get_optimal_moe_config, the block-FP8 linear dispatch, the mamba request-slot sizing), and the
runtime's plan for the same inputs comes from `python3 -m sglang_prep decide` (cli.decide, in process): moe_tune's
plan and tuner argv, the deep_gemm decision and the --max-mamba-cache-size policy. The argv the oracle parses
is the one the deep_gemm stage server would get (argv.server_argv), so the policy's flags are checked too.

Every field that differs fails its case; the table (checkpoint x args -> agree/differ per field) is printed in
the terminal summary of the pytest run (tests/contract/conftest.py). The checkpoints are under zoo/ (README.md
there names each source).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import argv as argv_mod, cli
from contract_probe import VENV_PYTHON

ZOO = Path(__file__).with_name("zoo")
PROBE = Path(__file__).with_name("zoo_probe.py")
RESULT_MARK = "ZOO-PROBE-RESULT "
DEVICE = "NVIDIA H200"
ORACLE_BASE = ["--device", "cpu", "--load-format", "dummy", "--skip-tokenizer-init"]
TP8 = ("tp8", 8, [])
EP8 = ("tp8 --ep-size 8", 8, ["--ep-size", "8"])
EP8_ABBREV = ("tp8 --ep-s 8", 8, ["--ep-s", "8"])
TP1 = ("tp1", 1, [])

# checkpoint -> argument sets (label, tp, extra server args): tp 1 and 8, expert parallelism (also abbreviated),
# non-Triton MoE runners, --json-model-override-args, --quantization, --dtype, and the hybrid model's cache strategies
CASES = {
    "DeepSeek-V3": [TP1, TP8, EP8, EP8_ABBREV,
                    ("tp8 --disable-shared-experts-fusion", 8, ["--disable-shared-experts-fusion"]),
                    ("tp8 --moe-runner-backend deep_gemm", 8, ["--moe-runner-backend", "deep_gemm"]),
                    ("tp8 json n_shared_experts=2", 8, ["--json-model-override-args", '{"n_shared_experts": 2}'])],
    "Kimi-K2-Instruct": [TP8, EP8],
    "Moonlight-16B-A3B-Instruct": [TP1, TP8, EP8_ABBREV],
    "GLM-4.5-Air-FP8": [TP1, ("tp4", 4, []), TP8, EP8],
    "Qwen3-235B-A22B": [TP8, EP8],
    "Qwen3-235B-A22B-FP8": [("tp4", 4, []), TP8, EP8],
    "Qwen3-30B-A3B": [TP1, TP8, EP8_ABBREV, ("tp1 --dtype float32", 1, ["--dtype", "float32"]),
                      ("tp1 json moe_intermediate_size=1024", 1,
                       ["--json-model-override-args", '{"moe_intermediate_size": 1024}']),
                      ("tp1 --moe-runner-backend flashinfer_cutlass", 1, ["--moe-runner-backend", "flashinfer_cutlass"])],
    "Qwen3-Next-80B-A3B-Instruct": [TP1, TP8, ("tp8 --disable-shared-experts-fusion", 8, ["--disable-shared-experts-fusion"]),
                                    ("tp1 no_buffer, no overlap", 1, ["--mamba-radix-cache-strategy", "no_buffer",
                                                                      "--disable-overlap-schedule"]),
                                    ("tp1 --disable-radix-cache", 1, ["--disable-radix-cache"])],
    "Mixtral-8x7B-Instruct-v0.1": [TP1, TP8],
    "Mixtral-8x7B-Instruct-v0.1-AWQ": [TP1, ("tp1 --quantization moe_wna16", 1, ["--quantization", "moe_wna16"])],
    "Mixtral-8x7B-Instruct-v0.1-GPTQ-Int4": [TP1, ("tp2 --quantization=moe_wna16", 2, ["--quantization=moe_wna16"])],
    "Qwen3-30B-A3B-FP8-dynamic": [TP1, TP8],
    "Qwen3-30B-A3B-FP8-BLOCK": [TP1, TP8, EP8],
    "Qwen3-30B-A3B-FP8-ModelOpt": [TP1, ("tp1 --moe-runner-backend flashinfer_cutlass", 1,
                                         ["--moe-runner-backend", "flashinfer_cutlass"])],
    "gpt-oss-20b": [TP1, ("tp1 --moe-runner-backend triton_kernel", 1, ["--moe-runner-backend", "triton_kernel"])],
    "dbrx-instruct": [TP1, TP8],
    "Llama-4-Scout-17B-16E-Instruct": [TP1, TP8],
}
FIELDS = ("refused", "triton", "runner", "fused", "E", "N", "dtype", "block", "per_channel", "up", "down",
          "deep_gemm", "mamba")


def case_ids():
    return ["%s | %s" % (name, label) for name, sets in CASES.items() for label, _tp, _extra in sets]


def oracle_argv(model, tp, extra):
    """The deep_gemm stage server's argv (what the runtime would launch), as SGLang's parser gets it."""
    argv = argv_mod.server_argv("deep_gemm", str(model), tp=tp, extra_args=extra)
    assert argv[:3] == ["python3", "-m", "sglang.launch_server"]
    return argv[5:] + ORACLE_BASE  # without "--model-path <model>": the probe puts it first


def runner_name(value):
    """MoeRunnerBackend.TRITON_KERNELS -> triton_kernel: SGLang's enum member as its --moe-runner-backend value."""
    text = str(value or "").lower().rsplit(".", 1)[-1]
    return text[:-1] if text.endswith("kernels") else text


def compare(real, ours):
    """{field: (real, ours, agree)} for one case."""
    moe = ours["moe_tune"]
    mamba = ours["mamba_cache"]
    out = {}
    if "error" in real:
        return {"oracle": (real["error"], None, False)}
    refused = bool(real.get("refused"))
    out["refused"] = (refused, moe.get("error") == "bad_input" and "refuses" in moe.get("message", ""))
    if real.get("stage") == "arguments":  # SGLang refuses the arguments themselves: nothing else to compare
        return {"refused": out["refused"] + (out["refused"][0] == out["refused"][1],)}
    if not refused and "error" not in moe:
        lookup = real["lookup"] or {"triton": False}
        out["triton"] = (lookup["triton"], moe["runner"] == "triton")
        out["runner"] = (runner_name(real["runner"]), moe["runner"])
        out["fused"] = (real["fused_shared_experts"], moe["fused_shared_experts"])
        if lookup["triton"]:
            out["E"] = (lookup["E"], moe["E"])
            out["N"] = (lookup["N"], moe["N"])
            out["dtype"] = (lookup["dtype"], moe["dtype"])
            out["block"] = (lookup["block_shape"], moe["block_shape"])
            out["per_channel"] = (lookup["per_channel_quant"], moe["per_channel_quant"])
            out["up"] = (lookup["up"], moe["up_name"])
            out["down"] = (lookup["down"], moe["down_name"])
    out["deep_gemm"] = (bool(real["deep_gemm"]), ours["deep_gemm"]["uses_deep_gemm"])
    info = real["mamba"]
    if info["hybrid"]:
        ok = info.get("serves") is True and info.get("one_less_serves") is False
        out["mamba"] = ("smallest serving" if ok else "size %s: serves %s, one less serves %s" % (
            info["max_mamba_cache_size"], info.get("serves"), info.get("one_less_serves")), mamba["value"])
        out["mamba"] = out["mamba"] + (ok and mamba["hybrid"],)
    else:
        out["mamba"] = ("not hybrid, %s" % info["max_mamba_cache_size"], mamba["value"],
                        not mamba["hybrid"] and info["max_mamba_cache_size"] == 1 == mamba["value"])
    return dict((k, v if len(v) == 3 else (v[0], v[1], v[0] == v[1])) for k, v in out.items())


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, request):
    if not VENV_PYTHON.exists():
        pytest.fail("the contract venv %s is missing: run scripts/contract-venv.sh "
                    "(`make test-contract` runs it first)" % VENV_PYTHON.parent.parent)
    cases, ours = [], {}
    for name, sets in CASES.items():
        model = ZOO / name
        for label, tp, extra in sets:
            case_id = "%s | %s" % (name, label)
            ours[case_id] = cli.decide(str(model), tp, extra, DEVICE)
            cases.append({"id": case_id, "model": str(model), "argv": oracle_argv(model, tp, extra)})
    cwd = tmp_path_factory.mktemp("zoo")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(PYTHONNOUSERSITE="1", SGLANG_CACHE_DIR=str(cwd), SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN="1")
    proc = subprocess.run([str(VENV_PYTHON), str(PROBE)], input=json.dumps({"device_name": DEVICE, "cases": cases}),
                          capture_output=True, text=True, env=env, timeout=900, cwd=str(cwd))
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    assert proc.returncode == 0 and lines, "zoo probe failed (rc=%s):\n%s" % (proc.returncode, proc.stderr[-4000:])
    real = dict((r["id"], r) for r in json.loads(lines[-1][len(RESULT_MARK):]))
    table = dict((case_id, (real[case_id], ours[case_id], compare(real[case_id], ours[case_id]))) for case_id in ours)
    request.config.zoo_table = render(table)
    return table


def render(table):
    width = max(len(case_id) for case_id in table)
    lines = ["model zoo: real SGLang 0.5.23 (contract venv, CUDA SM 9.0 emulated where SGLang asks the platform) "
             "vs the runtime's plan; '=' agree, 'X' differ, '.' not applicable",
             "%-*s  %s" % (width, "checkpoint | args", "  ".join("%-8s" % f for f in FIELDS))]
    differ = []
    for case_id, (_real, _ours, fields) in table.items():
        cells = []
        for field in FIELDS:
            if field not in fields:
                cells.append("%-8s" % ".")
            else:
                cells.append("%-8s" % ("=" if fields[field][2] else "X"))
                if not fields[field][2]:
                    differ.append("  %s: %s: SGLang %r, plan %r" % (case_id, field, fields[field][0], fields[field][1]))
        if "oracle" in fields:
            differ.append("  %s: the oracle failed: %s" % (case_id, fields["oracle"][0]))
        lines.append("%-*s  %s" % (width, case_id, "  ".join(cells)))
    lines.append("%d cases, %d differ" % (len(table), len(set(d.split(":")[0] for d in differ))))
    return "\n".join(lines + differ)


def test_the_zoo_holds_the_checkpoints_the_tier_promises():
    names = sorted(p.name for p in ZOO.iterdir() if (p / "config.json").is_file())
    assert len(names) >= 15 and names == sorted(CASES)
    readme = (ZOO / "README.md").read_text()
    assert all(name in readme for name in names)  # each fixture names its source


@pytest.mark.parametrize("case_id", case_ids())
def test_plan_agrees_with_real_sglang(zoo, case_id):
    real, ours, fields = zoo[case_id]
    assert "error" not in real, real.get("traceback") or real["error"]
    differ = dict((f, (v[0], v[1])) for f, v in fields.items() if not v[2])
    assert not differ, "SGLang vs plan: %s" % differ


def test_the_oracle_sees_what_the_issue_reported(zoo):
    """The facts the tier exists for, straight from SGLang: fusion per model and EP, packed N, Marlin, CT names."""
    def lookup(case_id):
        return zoo[case_id][0]["lookup"]
    assert lookup("DeepSeek-V3 | tp8")["E"] == 257 and lookup("DeepSeek-V3 | tp8 --ep-size 8")["E"] == 32
    assert lookup("DeepSeek-V3 | tp8 --ep-s 8")["E"] == 32  # the abbreviation is read as --ep-size
    assert lookup("Kimi-K2-Instruct | tp8")["E"] == 384 and lookup("Moonlight-16B-A3B-Instruct | tp8")["E"] == 64
    assert lookup("Mixtral-8x7B-Instruct-v0.1-AWQ | tp1")["triton"] is False
    assert "Marlin" in zoo["Mixtral-8x7B-Instruct-v0.1-GPTQ-Int4 | tp1"][0]["quant_method"]
    assert lookup("Mixtral-8x7B-Instruct-v0.1-AWQ | tp1 --quantization moe_wna16")["N"] == 14336 // 2
    assert lookup("Qwen3-30B-A3B-FP8-dynamic | tp1")["up"].endswith(",dtype=fp8_w8a8,per_channel_quant=True.json")
    assert lookup("Qwen3-30B-A3B-FP8-BLOCK | tp1")["up"].endswith(",dtype=fp8_w8a8,block_shape=[128, 128].json")
    assert zoo["Qwen3-30B-A3B-FP8-BLOCK | tp1"][0]["deep_gemm"]  # compressed-tensors block FP8 runs DeepGEMM


def test_decide_cli_prints_the_plan_the_tier_compares(zoo):
    module_utils = Path(argv_mod.__file__).resolve().parents[2]
    model = ZOO / "DeepSeek-V3"
    env = dict(os.environ, PYTHONPATH=str(module_utils))
    proc = subprocess.run([sys.executable, "-m", "sglang_prep", "decide", "--model", str(model), "--tp", "8",
                           "--extra-server-arg=--ep-s", "--extra-server-arg=8"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["moe_tune"]["up_name"] == zoo["DeepSeek-V3 | tp8 --ep-s 8"][1]["moe_tune"]["up_name"]
    assert "--disable-shared-experts-fusion" in printed["moe_tune"]["tuner_argv"]

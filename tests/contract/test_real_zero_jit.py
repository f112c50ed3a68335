"""Contract tier: the zero-JIT switches and the pinned stack, against the REAL sglang 0.5.23, Triton and torch.

Whatever the runtime and the stand-in server believe about SGLANG_CRASH_ON_JIT_COMPILE, TRITON_CACHE_AUTOTUNING,
TRITON_PRINT_AUTOTUNING, the linear-attention backends and SGLang's pins is checked here against the real code in
the contract venv (zero_jit_probe.py): the real load_jit's refusal text is what the runtime's log scan reads and what
the stand-in prints, and so on. A missing venv is a failure, not a skip.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("zero_jit_probe.py")
RESULT_MARK = "ZERO-JIT-PROBE-RESULT "
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import inductor
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container.validate import LogScan
from contract_probe import REPO, STANDIN_PYTHON as STANDINS, VENV_PYTHON, clean_env as _clean_env, require_venv


def clean_env(**extra):
    """No SGLang, Triton or TorchInductor setting of this environment reaches the probes."""
    return _clean_env(drop_prefixes=("SGLANG_", "TRITON_", "TORCHINDUCTOR_"), **extra)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    require_venv()
    scratch = tmp_path_factory.mktemp("zero-jit")
    proc = subprocess.run([str(VENV_PYTHON), str(PROBE), str(scratch)], capture_output=True, text=True,
                          env=clean_env(SGLANG_CACHE_DIR=str(scratch / "sglang")), timeout=300, cwd=str(scratch))
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    assert proc.returncode == 0 and lines, "zero-JIT probe failed (rc=%s):\n%s" % (proc.returncode, proc.stderr[-4000:])
    return json.loads(lines[-1][len(RESULT_MARK):])


def standin_crash_message(tmp_path):
    """The stand-in server's refusal (tests/standins: caches.warm_sglang_jit) for the same module."""
    code = ("import os, sys\nfrom types import SimpleNamespace\nfrom sglang.srt._standin import caches\n"
            "dirs = caches.CacheDirs.from_env()\n"
            "try:\n    caches.warm_sglang_jit(dirs, SimpleNamespace(hidden_size=128), None)\n"
            "except RuntimeError as exc:\n    print('RuntimeError: %s' % exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=clean_env(
        PYTHONPATH=str(STANDINS), SGLANG_CRASH_ON_JIT_COMPILE="1", SGLANG_JIT_CACHE_DIR=str(tmp_path / "jit"),
        HOME=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_real_switch_raises_on_a_jit_cache_miss_and_the_log_scan_names_the_module(real):
    assert contract.ENV_CRASH_ON_JIT_COMPILE == "SGLANG_CRASH_ON_JIT_COMPILE"
    assert real["switch"] == {"declared": True, "type": "EnvBool", "default": False}
    crash = real["crash"]
    assert crash and crash.startswith("RuntimeError: JIT module 'sgl_kernel_jit_fused_add_rmsnorm_128' ")
    assert real["jit_cache_dir_written"] in ([], ["sm00"])  # refused before any build: no leaf was published
    scan = LogScan()
    scan.feed("[2026-12-06 10:00:00 TP0] Scheduler hit an exception: Traceback (most recent call last):")
    scan.feed(crash)
    [line] = scan.jit_lines
    assert line["kind"] == "sglang_jit_crash" and line["name"] == "sgl_kernel_jit_fused_add_rmsnorm_128"


def test_the_stand_in_refuses_with_the_real_text(real, tmp_path):
    def shape(text):  # the cache path is the only difference: the machine's
        head, _sep, rest = text.partition(" under ")
        return head, rest.split(", and ", 1)[1]
    assert shape(standin_crash_message(tmp_path)) == shape(real["crash"])


def test_triton_autotune_switches_and_the_line_the_check_reads_are_reals(real, tmp_path):
    assert real["autotune_envs"] == {"cache": contract.ENV_TRITON_CACHE_AUTOTUNING,
                                     "print": contract.ENV_TRITON_PRINT_AUTOTUNING}
    assert real["autotune_print"] == "Triton autotuning for function {self.base_fn.__name__},"
    assert real["autotune_disk_file"] == "autotune.json"
    scan = LogScan()
    scan.feed(real["autotune_print"].replace("{self.base_fn.__name__}", "_chunk_scan_fwd_kernel"))
    assert [(l["kind"], l["name"]) for l in scan.jit_lines] == [("triton_autotune", "_chunk_scan_fwd_kernel")]
    # the stand-in parses Triton's booleans like libtriton does
    code = ("import json, sys\nfrom sglang.srt import environ\nvalues = json.loads(sys.argv[1])\n"
            "print(json.dumps(dict((v, environ.triton_env_bool('X', {'X': v})) for v in values)))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(list(real["getenv_bool"]))], capture_output=True,
                          text=True, timeout=60, env=clean_env(PYTHONPATH=str(STANDINS)))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == real["getenv_bool"]


def test_the_stand_ins_linear_attention_backends_are_the_real_choices(real):
    code = "import json\nfrom sglang.srt import server_args\nprint(json.dumps(server_args.LINEAR_ATTN_KERNEL_BACKEND_CHOICES))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=clean_env(PYTHONPATH=str(STANDINS)))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == real["linear_attn_choices"]
    assert "cutedsl" in real["linear_attn_choices"]


def test_the_fidelity_stack_is_sglang_0_5_23_and_its_pins(real):
    stack = contract.FIDELITY_STACK
    assert real["sglang_version"] == stack["sglang"]
    pins = dict((r.split("==")[0].split("[")[0].replace("_", "-"), r.split("==")[1].split(";")[0].strip())
                for r in real["requires"] if "==" in r)
    assert pins["torch"] == stack["torch"]
    assert pins["flashinfer-python"] == stack["flashinfer"]
    assert pins["sgl-deep-gemm"] == stack["deep_gemm"]


def test_the_static_launcher_probe_on_the_real_torch_keeps_the_launcher(real):
    """torch 2.13 (the contract venv's) carries the coordesc mark over in recheck_autotune_cache: no need to turn the
    static launcher off. The torch 2.11 method (tests/gpu/evidence) drops it: turned off."""
    decision = inductor.probe_static_launcher(str(VENV_PYTHON), clean_env())
    assert decision["torch_version"].startswith("2.13") and decision["keeps_coordesc_mark"] is True
    assert decision["needed"] is False
    evidence = (REPO / "tests" / "gpu" / "evidence" / "torch-2.11-recheck_autotune_cache.txt").read_text()
    old = inductor.decide({"torch_version": "2.11.0+cu130", "static_default": True, "recheck_source": evidence})
    assert old["needed"] is True and old["keeps_coordesc_mark"] is False

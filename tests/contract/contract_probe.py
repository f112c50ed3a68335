"""What the contract tests share (not a test module; pytest.ini puts tests/contract on sys.path): where the contract
venv, the runtime and the stand-ins are, a clean environment for a subprocess, the parser probe (parser_probe.py)
run in the contract venv, and the server arguments a stage gets from the runtime CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO / ".cache" / "sglang-contract-venv" / "bin" / "python"
MODULE_UTILS = REPO / "collections" / "ansible_collections" / "sglang" / "prep" / "plugins" / "module_utils"
STANDIN_PYTHON = REPO / "tests" / "standins" / "python"
TINY_MODEL = REPO / "tests" / "standins" / "models" / "tiny-moe"
PROBE = Path(__file__).with_name("parser_probe.py")
RESULT_MARK = "PARSER-PROBE-RESULT "
LAUNCH_PREFIX = ["python3", "-m", "sglang.launch_server"]


def require_venv():
    """The contract venv's Python; a missing venv is a failure, not a skip."""
    if not VENV_PYTHON.exists():
        pytest.fail("the contract venv %s is missing: run scripts/contract-venv.sh "
                    "(`make test-contract` runs it first)" % VENV_PYTHON.parent.parent)
    return VENV_PYTHON


def clean_env(drop_prefixes=(), **extra):
    """This environment without Python path settings (and variables with drop_prefixes), plus extra."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
           and not (drop_prefixes and k.startswith(tuple(drop_prefixes)))}
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra)
    return env


def run_probe(mode, corpus, cache_dir, standin=False):
    if standin:
        cmd = [str(VENV_PYTHON), "-S", str(PROBE), mode]
        env = clean_env(PYTHONPATH=str(STANDIN_PYTHON), SGLANG_CACHE_DIR=str(cache_dir))
    else:
        cmd = [str(VENV_PYTHON), str(PROBE), mode]
        env = clean_env(SGLANG_CACHE_DIR=str(cache_dir))
    proc = subprocess.run(cmd, input=json.dumps(corpus), capture_output=True, text=True, env=env,
                          timeout=600, cwd=str(cache_dir))
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    assert proc.returncode == 0 and lines, (
        "parser probe failed (rc=%s): %s\n%s" % (proc.returncode, " ".join(cmd), proc.stderr[-4000:]))
    return json.loads(lines[-1][len(RESULT_MARK):])


def runtime_argv(*args):
    """The argv the runtime CLI prints (`python3 -m sglang_prep argv ...`)."""
    proc = subprocess.run([sys.executable, "-m", "sglang_prep", "argv"] + [str(a) for a in args],
                          capture_output=True, text=True, env=clean_env(PYTHONPATH=str(MODULE_UTILS)), timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stage_server_args(stage, model):
    """Server arguments of a stage, from the runtime CLI (python3 -m sglang_prep argv)."""
    argv = runtime_argv(stage, "--model", model, "--tp", "1")
    assert argv[:3] == LAUNCH_PREFIX, argv
    return argv[3:]


def abbreviations(flag, options):
    """Every prefix argparse (allow_abbrev) reads as ``flag`` alone: the real parser's own rule."""
    out = []
    for end in range(3, len(flag)):
        prefix = flag[:end]
        if prefix not in options and [name for name in options if name.startswith(prefix)] == [flag]:
            out.append(prefix)
    return out

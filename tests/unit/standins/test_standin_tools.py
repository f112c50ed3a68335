"""nvidia-smi, dcgm-exporter and the stand-in packages (tests/standins)."""

import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from harness import STANDINS, free_port, standin_env, wait_for

NVIDIA_SMI = STANDINS / "bin" / "nvidia-smi"
DCGM = STANDINS / "bin" / "dcgm-exporter"
QUERY = "--query-gpu=name,compute_cap,driver_version,memory.total"


def run(tmp_path, program, *args, env=None):
    return subprocess.run([sys.executable, str(program), *args], env=standin_env(tmp_path, **(env or {})),
                          capture_output=True, text=True, timeout=30)


# ------------------------------------------------------------------------------------------ nvidia-smi

def test_query_defaults(tmp_path):
    proc = run(tmp_path, NVIDIA_SMI, QUERY, "--format=csv,noheader,nounits")
    assert proc.returncode == 0
    assert proc.stdout == "NVIDIA H100 80GB HBM3, 9.0, 570.148.08, 81559\n"


def test_query_with_units_header_and_order(tmp_path):
    proc = run(tmp_path, NVIDIA_SMI, "--query-gpu=memory.total,name", "--format=csv")
    assert proc.stdout.splitlines() == ["memory.total [MiB], name", "81559 MiB, NVIDIA H100 80GB HBM3"]
    proc = run(tmp_path, NVIDIA_SMI, "--query-gpu", "driver_version,compute_cap", "--format", "csv,noheader")
    assert proc.stdout == "570.148.08, 9.0\n"


def test_query_from_env_and_several_gpus(tmp_path):
    env = {"SGLANG_STANDIN_GPU_NAME": "NVIDIA H200", "SGLANG_STANDIN_COMPUTE_CAP": "9.0",
           "SGLANG_STANDIN_DRIVER": "575.57.08", "SGLANG_STANDIN_GPU_MEM_MIB": "143771",
           "SGLANG_STANDIN_GPU_COUNT": "2"}
    proc = run(tmp_path, NVIDIA_SMI, QUERY, "--format=csv,noheader,nounits", env=env)
    assert proc.stdout.splitlines() == ["NVIDIA H200, 9.0, 575.57.08, 143771"] * 2
    listing = run(tmp_path, NVIDIA_SMI, "-L", env=env).stdout.splitlines()
    assert len(listing) == 2
    assert re.fullmatch(r"GPU 1: NVIDIA H200 \(UUID: GPU-[0-9a-f-]{36}\)", listing[1])


def test_summary_header(tmp_path):
    proc = run(tmp_path, NVIDIA_SMI, env={"SGLANG_STANDIN_CUDA": "12.9"})
    assert proc.returncode == 0
    assert re.search(r"Driver Version: 570\.148\.08\s+CUDA Version: 12\.9", proc.stdout)
    assert "NVIDIA H100 80GB HBM3" in proc.stdout


def test_errors(tmp_path):
    proc = run(tmp_path, NVIDIA_SMI, "--query-gpu=name,bogus", "--format=csv")
    assert proc.returncode == 2 and 'Field "bogus" is not a valid field to query.' in proc.stderr
    proc = run(tmp_path, NVIDIA_SMI, "-L", env={"SGLANG_STANDIN_GPU_COUNT": "0"})
    assert proc.returncode == 6 and proc.stdout.strip() == "No devices were found"


# ------------------------------------------------------------------------------------------ dcgm-exporter

def test_dcgm_exporter(tmp_path):
    assert run(tmp_path, DCGM, "--version").stdout.startswith("dcgm-exporter version ")
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(DCGM), "--address", "127.0.0.1:%d" % port],
                            env=standin_env(tmp_path, SGLANG_STANDIN_GPU_NAME="NVIDIA H200"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def scrape():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as resp:
                    return resp.read().decode()
            except OSError:
                return None
        text = wait_for(scrape, 10, what="dcgm-exporter /metrics")
        for name in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_GPU_TEMP"):
            assert re.search(r'^%s\{gpu="0",.*modelName="NVIDIA H200".*\} \S+$' % name, text, re.M)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------------------------------ packages

def python_in(tmp_path, code, **env):
    return subprocess.run([sys.executable, "-c", code], env=standin_env(tmp_path, **env), capture_output=True,
                          text=True, timeout=30)


def test_packages_are_marked_stand_ins(tmp_path):
    out = python_in(tmp_path, "import sglang, triton; print(sglang.__version__, sglang.__standin__, "
                              "triton.__version__)").stdout
    assert out.split() == ["0.5.23", "True", "3.4.0"]


@pytest.mark.parametrize("preset, expected", [
    ({}, "{home}/.cache/sglang/triton {home}/.cache/sglang {home}/.cache/sglang/inductor"),
    ({"SGLANG_CACHE_DIR": "/p/sg"}, "/p/sg/triton /p/sg /p/sg/inductor"),
    ({"SGLANG_CACHE_DIR": "/p/sg", "TRITON_CACHE_DIR": "/p/tr"}, "/p/tr /p/sg /p/sg/inductor"),
])
def test_import_redirects_caches_with_setdefault(tmp_path, preset, expected):
    out = python_in(tmp_path, "import os, sglang; print(os.environ['TRITON_CACHE_DIR'], "
                              "os.environ['FLASHINFER_WORKSPACE_BASE'], os.environ['TORCHINDUCTOR_CACHE_DIR'])",
                    **preset).stdout.strip()
    assert out == expected.format(home=tmp_path)

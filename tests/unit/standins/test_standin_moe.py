"""Fused-MoE config lookup of the stand-in server, and the tuner stand-in that produces the files."""

import json
import shutil
import subprocess
import sys

import pytest

from harness import STANDIN_PYTHON, STANDINS, TINY_MODEL, StandinServer, standin_env

TUNER = STANDINS / "benchmark" / "kernels" / "fused_moe_triton" / "tuning_fused_moe_triton.py"
SHIPPED = STANDIN_PYTHON / "sglang" / "srt" / "layers" / "moe" / "moe_runner" / "triton_utils"
TINY_FILE = "E=8,N=256,device_name=NVIDIA_H100_80GB_HBM3.json"  # tiny-moe at tp=1


def run_tuner(tmp_path, *args, env=None):
    return subprocess.run([sys.executable, str(TUNER), "--model", str(TINY_MODEL), *args], cwd=str(tmp_path),
                          env=standin_env(tmp_path, **(env or {})), capture_output=True, text=True, timeout=60)


def server_log(tmp_path, env, expect_exit=None):
    server = StandinServer(tmp_path, env=env).start()
    try:
        if expect_exit is None:
            server.wait_ready()
        else:
            assert server.wait_exit() == expect_exit
        return server.log()
    finally:
        server.kill()


# ------------------------------------------------------------------------------------------ tuner

def test_tuner_writes_config_into_cwd(tmp_path):
    proc = run_tuner(tmp_path, "--tune", "--batch-sizes", "1", "8", "64")
    assert proc.returncode == 0, proc.stderr
    name = "E=8,N=128,device_name=NVIDIA_H100_80GB_HBM3.json"  # default --tp-size 2: N = 2*256/2/2
    assert "Writing best config to %s..." % name in proc.stdout
    text = (tmp_path / name).read_text()
    assert text.endswith("}\n") and text.startswith('{\n    "1": {\n        "BLOCK_SIZE_M": ')
    configs = json.loads(text)
    assert list(configs) == ["1", "8", "64"]
    for config in configs.values():
        assert list(config) == ["BLOCK_SIZE_M", "BLOCK_SIZE_N", "BLOCK_SIZE_K", "GROUP_SIZE_M", "num_warps",
                                "num_stages"]
    assert [p.name for p in tmp_path.glob("E=*.json")] == [name]


@pytest.mark.parametrize("args, name", [
    (["--tp-size", "1"], TINY_FILE),
    (["--tp", "4", "--ep", "2"], "E=4,N=128,device_name=NVIDIA_H100_80GB_HBM3.json"),
    (["--tp-size", "1", "--dtype", "fp8_w8a8"], "E=8,N=256,device_name=NVIDIA_H100_80GB_HBM3,dtype=fp8_w8a8.json"),
    (["--tp-size", "1", "--dtype", "int8_w8a8", "--per-channel-quant"],
     "E=8,N=256,device_name=NVIDIA_H100_80GB_HBM3,dtype=int8_w8a8,per_channel_quant=True.json"),
])
def test_tuner_file_names(tmp_path, args, name):
    proc = run_tuner(tmp_path, "--tune", "--batch-size", "16", *args)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / name).is_file()


def test_tuner_gpu_name_from_env_and_defaults(tmp_path):
    proc = run_tuner(tmp_path, "--tune", "--tp-size", "1", env={"SGLANG_STANDIN_GPU_NAME": "NVIDIA H200"})
    assert proc.returncode == 0, proc.stderr
    configs = json.loads((tmp_path / "E=8,N=256,device_name=NVIDIA_H200.json").read_text())
    assert len(configs) == 18 and "4096" in configs


def test_tuner_without_tune_writes_nothing(tmp_path):
    proc = run_tuner(tmp_path, "--batch-size", "8")
    assert proc.returncode == 0 and "Kernel time:" in proc.stdout
    assert not list(tmp_path.glob("E=*.json"))


def test_tuner_fault_and_cli_errors(tmp_path):
    proc = run_tuner(tmp_path, "--tune", env={"SGLANG_STANDIN_TUNER_FAULT": "fail"})
    assert proc.returncode == 1 and "Traceback (most recent call last):" in proc.stderr
    assert not list(tmp_path.glob("E=*.json"))
    proc = run_tuner(tmp_path, "--tune", "--dtype", "fp4")
    assert proc.returncode == 2 and "invalid choice: 'fp4'" in proc.stderr


# ------------------------------------------------------------------------------------------ server lookup

def test_shipped_tree_has_no_config_for_tiny_model(tmp_path):
    assert (SHIPPED / "configs" / "triton_3_4_0").is_dir()
    shipped = list((SHIPPED / "configs" / "triton_3_4_0").glob("E=*.json"))
    assert shipped and TINY_FILE not in [p.name for p in shipped]
    for path in shipped:
        assert all(key.isdigit() for key in json.loads(path.read_text()))
    log = server_log(tmp_path, {})
    assert ("Using default MoE kernel config. Performance might be sub-optimal! Config file not found at %s, "
            "you can create them with https://github.com/sgl-project/sglang/tree/main/benchmark/kernels/"
            "fused_moe_triton" % (SHIPPED.resolve() / "configs" / "triton_3_4_0" / TINY_FILE)) in log


def test_seeded_tree_with_tuned_file_is_used(tmp_path):
    config_dir = tmp_path / "moe_configs"
    shutil.copytree(SHIPPED / "configs", config_dir / "configs")  # seed with the shipped tree
    tuned_dir = config_dir / "configs" / "triton_3_4_0"
    proc = run_tuner(tuned_dir, "--tune", "--tp-size", "1", "--batch-sizes", "1", "2")
    assert proc.returncode == 0, proc.stderr
    log = server_log(tmp_path, {"SGLANG_MOE_CONFIG_DIR": config_dir})
    assert "Using MoE kernel config from %s." % (tuned_dir / TINY_FILE) in log


def test_fallback_to_other_triton_version(tmp_path):
    old = tmp_path / "moe_configs" / "configs" / "triton_3_3_1"
    old.mkdir(parents=True)
    run_tuner(old, "--tune", "--tp-size", "1", "--batch-size", "1")
    (tmp_path / "moe_configs" / "configs" / "triton_3_1_0").mkdir()
    log = server_log(tmp_path, {"SGLANG_MOE_CONFIG_DIR": tmp_path / "moe_configs"})
    assert "Fallback to triton version 3.3.1 and use MoE kernel config from %s" % (old / TINY_FILE) in log


def test_config_dir_without_configs_subdir_crashes(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    run_tuner(flat, "--tune", "--tp-size", "1", "--batch-size", "1")  # a file put flat in the dir
    log = server_log(tmp_path, {"SGLANG_MOE_CONFIG_DIR": flat}, expect_exit=1)
    assert "FileNotFoundError: [Errno 2] No such file or directory: '%s/configs'" % flat in log
    assert "Scheduler hit an exception" in log


def test_dense_model_skips_moe_lookup(tmp_path):
    dense = tmp_path / "dense"
    dense.mkdir()
    config = json.loads((TINY_MODEL / "config.json").read_text())
    for key in ("num_local_experts", "num_experts_per_tok"):
        config.pop(key)
    config.update(architectures=["LlamaForCausalLM"], model_type="llama")
    (dense / "config.json").write_text(json.dumps(config))
    server = StandinServer(tmp_path, model=dense, env={"SGLANG_MOE_CONFIG_DIR": tmp_path / "nowhere"}).start()
    try:
        server.wait_ready()
        assert "MoE kernel config" not in server.log()
    finally:
        server.kill()


# ------------------------------------------------------------------------------------------ both lookups

DOWN_TUNER = TUNER.with_name("tune_down_moe.py")
TINY_DOWN = TINY_FILE[:-len(".json")] + "_down.json"
MODELS = STANDINS / "models"


def run_down_tuner(cwd, gate_up, *args, model=TINY_MODEL, env=None):
    return subprocess.run([sys.executable, str(DOWN_TUNER), "--model", str(model), "--tp-size", "1",
                           "--gate-up-config", str(gate_up), "--out-dir", str(cwd), *args], cwd=str(cwd),
                          env=standin_env(cwd, **(env or {})), capture_output=True, text=True, timeout=60)


def tuned_tree(tmp_path, down=True):
    """An SGLANG_MOE_CONFIG_DIR with tiny-moe's up (and down) file tuned for batch sizes 1 and 8."""
    tuned_dir = tmp_path / "moe_configs" / "configs" / "triton_3_4_0"
    tuned_dir.mkdir(parents=True)
    assert run_tuner(tuned_dir, "--tune", "--tp-size", "1", "--batch-sizes", "1", "8").returncode == 0
    if down:
        proc = run_down_tuner(tuned_dir, tuned_dir / TINY_FILE, "--dtype", "auto", "--batch-sizes", "1", "8")
        assert proc.returncode == 0, proc.stderr
    return tuned_dir


def test_down_tuner_writes_the_down_file_with_the_up_block_m(tmp_path):
    tuned_dir = tuned_tree(tmp_path)
    up = json.loads((tuned_dir / TINY_FILE).read_text())
    down = json.loads((tuned_dir / TINY_DOWN).read_text())
    assert list(down) == ["1", "8"]
    assert all(down[m]["BLOCK_SIZE_M"] == up[m]["BLOCK_SIZE_M"] for m in down)  # one sort feeds both GEMMs


def test_down_tuner_names_only_fp8_w8a8_like_the_real_script(tmp_path):
    # its --dtype defaults to fp8_w8a8, and any other value names the file without dtype=
    assert run_tuner(tmp_path, "--tune", "--tp-size", "1", "--batch-size", "1").returncode == 0
    assert run_down_tuner(tmp_path, tmp_path / TINY_FILE, "--batch-sizes", "1").returncode == 0
    assert (tmp_path / "E=8,N=256,device_name=NVIDIA_H100_80GB_HBM3,dtype=fp8_w8a8_down.json").is_file()
    proc = run_down_tuner(tmp_path, tmp_path / TINY_FILE, "--dtype", "int8_w8a8", "--batch-sizes", "1")
    assert proc.returncode == 0 and (tmp_path / TINY_DOWN).is_file()
    missing = subprocess.run([sys.executable, str(DOWN_TUNER), "--model", str(TINY_MODEL), "--tp-size", "1"],
                             env=standin_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "--gate-up-config" in missing.stderr


def test_tuners_need_ray_like_the_real_ones(tmp_path):
    no_ray = tmp_path / "no_ray"
    no_ray.mkdir()
    for name in ("sglang", "triton"):
        (no_ray / name).symlink_to(STANDIN_PYTHON / name)
    proc = run_tuner(tmp_path, "--tune", env={"PYTHONPATH": no_ray})
    assert proc.returncode == 1 and "ModuleNotFoundError: No module named 'ray'" in proc.stderr


def test_server_looks_up_up_then_down_and_uses_both(tmp_path):
    tuned_dir = tuned_tree(tmp_path)
    log = server_log(tmp_path, {"SGLANG_MOE_CONFIG_DIR": tmp_path / "moe_configs"})
    up = "Using MoE kernel config from %s." % (tuned_dir / TINY_FILE)
    down = "Using MoE kernel config from %s." % (tuned_dir / TINY_DOWN)
    assert up in log and down in log and log.index(up) < log.index(down)


def test_server_without_a_down_file_reuses_the_up_config_with_the_real_warning(tmp_path):
    tuned_dir = tuned_tree(tmp_path, down=False)
    log = server_log(tmp_path, {"SGLANG_MOE_CONFIG_DIR": tmp_path / "moe_configs"})
    assert log.count("Using MoE kernel config from %s." % (tuned_dir / TINY_FILE)) == 1  # cached, logged once
    assert ("Down MoE config file not found at %s; reusing the tuned up-projection config without TMA. "
            "Performance might be sub-optimal." % (tuned_dir / TINY_DOWN)) in log
    assert "Using default MoE kernel config" not in log


@pytest.mark.parametrize("model, name", [
    ("tiny-moe-fp8-block", "E=8,N=256,device_name=NVIDIA_H100_80GB_HBM3,dtype=fp8_w8a8,block_shape=[128, 128]"),
    ("tiny-moe-int8", "E=8,N=256,device_name=NVIDIA_H100_80GB_HBM3,dtype=int8_w8a8,per_channel_quant=True"),
])
def test_server_names_quantized_lookups_by_the_quant_method(tmp_path, model, name):
    (tmp_path / "moe_configs" / "configs" / "triton_3_4_0").mkdir(parents=True)
    server = StandinServer(tmp_path, model=MODELS / model, env={"SGLANG_MOE_CONFIG_DIR": tmp_path / "moe_configs"})
    server.start()
    try:
        server.wait_ready()
        log = server.log()
    finally:
        server.kill()
    base = tmp_path / "moe_configs" / "configs" / "triton_3_4_0" / name
    assert "Config file not found at %s.json, you can create them" % base in log
    assert "Config file not found at %s_down.json, you can create them" % base in log


def test_a_config_directory_with_a_local_triton_version_crashes_the_lookup(tmp_path):
    configs = tmp_path / "moe_configs" / "configs"
    (configs / "triton_3_4_0+git0123abcd").mkdir(parents=True)
    log = server_log(tmp_path, {"SGLANG_MOE_CONFIG_DIR": tmp_path / "moe_configs"}, expect_exit=1)
    assert "ValueError: invalid literal for int() with base 10: '0+git0123abcd'" in log

"""The stage engine inside the test image with the GPU stand-ins, as a non-root UID (not 1000).

Each test gets its own container (own network namespace, so its own port 30000) and its own
bind-mounted host directories. Every error case checks what a user relies on afterwards: the
error type and an actionable message, earlier stage results intact, the port free, the lock
released, nothing left running.
"""

import json
import os
import time

import pytest

import stage_harness as h
from stage_harness import GID, MODEL, RUN_ID, UID, contract

STAGES = ("deep_gemm", "moe_tune", "flashinfer", "inductor")


pytestmark = pytest.mark.usefixtures("image")  # the test image (conftest.py), before the first test


@pytest.fixture
def box():
    container = h.StageContainer()
    yield container
    container.remove()


@pytest.fixture
def primed(box):
    """A container whose run already holds a successful deep_gemm result."""
    first = box.stage("deep_gemm")
    assert first.rc == 0 and first["status"] == "ok", first
    box.earlier = box.stage_json_text("deep_gemm")
    return box


def assert_failed(result, error_type, *words):
    assert result.rc == 1, result
    assert result["status"] == "error" and result["error_type"] == error_type, result
    for word in words:
        assert word in result["message"], result["message"]


def assert_earlier_kept(box):
    assert box.stage_json_text("deep_gemm") == box.earlier
    assert box.prep_result()["stages"]["deep_gemm"]["status"] == "ok"


# ---------------------------------------------------------------- the happy path

def test_prime_all_stages_then_ensure_is_a_noop_without_servers(box):
    for stage in STAGES:
        result = box.stage(stage)
        assert result.rc == 0 and result["status"] == "ok" and result["ran"], result
        assert result["stage_json"] == contract.stage_json_path(RUN_ID, stage, MODEL)
        assert result["stage_json_host"] == box.telemetry(contract.stage_json_path(RUN_ID, stage, MODEL))
        box.assert_clean(stage)
    agg = box.prep_result()
    assert agg["status"] == "ok" and sorted(agg["stages"]) == sorted(STAGES)
    assert agg["run"]["device_name"] == "NVIDIA H100 80GB HBM3" and agg["run"]["compute_capability"] == "sm_90"
    assert agg["run"]["triton_version"] == "3.4.0" and agg["run"]["torch_version"] is None  # not invented
    assert box.foreign_owned() == []  # everything under telemetry/ and profiles/ belongs to the host user

    dg = box.stage_json("deep_gemm")
    assert "--enable-metrics" not in dg["server"]["argv"] and "--enable-trace" not in dg["server"]["argv"]
    assert os.path.getsize(box.profiles(contract.stage_model_dir("deep_gemm", MODEL) + "/compile.log")) > 0
    assert os.path.exists(box.profiles(contract.signature_path("deep_gemm", MODEL)))
    tuned = box.profiles("/profiles/moe_configs/configs/triton_3_4_0/E=8,N=256,device_name=NVIDIA_H100_80GB_HBM3,dtype=fp8_w8a8,block_shape=[128, 128].json")
    assert sorted(json.load(open(tuned)), key=int) == list(h.BATCH_SIZES)
    # the down projection, tuned by tune_down_moe.py beside the up config
    assert sorted(json.load(open(tuned[:-len(".json")] + "_down.json")), key=int) == list(h.BATCH_SIZES)
    for warm in ("flashinfer", "inductor"):
        data = box.stage_json(warm)
        assert data["server"]["port"] == 30000 and "--enable-metrics" in data["server"]["argv"]
        assert data["validation"]["verified_in_log"] is True
        assert data["validation"]["moe_config_used"].startswith("/profiles/moe_configs/configs/triton_3_4_0/")
        lookups = data["validation"]["moe_lookups"]
        assert lookups["up"]["source"] == "tuned" and lookups["down"]["source"] == "tuned"
        assert lookups["down"]["config_used"] == data["validation"]["moe_config_used"][:-len(".json")] + "_down.json"
    assert "--enable-torch-compile" in box.stage_json("inductor")["server"]["argv"]
    assert box.stage_json("inductor")["validation"]["cache_after"]["count"] > 0  # the inductor cache filled
    # restarted until a start added nothing: the stand-in's first warm start adds the coordinate-descent configs
    settled = box.stage_json("inductor")["inductor"]
    assert settled["settled"] is True and settled["starts"] == 3 and settled["per_start"][-1]["files_changed"] == 0
    assert box.stage_json("inductor")["static_cuda_launcher"]["needed"] is None  # no torch in the image: left alone
    assert os.path.isdir(box.profiles(contract.CACHES["cute_dsl"][0]))  # CUTE_DSL_CACHE_DIR under profiles/

    starts = box.server_starts()
    compile_log = open(box.profiles(contract.stage_model_dir("deep_gemm", MODEL) + "/compile.log")).read()
    for stage in STAGES:
        again = box.stage(stage)
        assert again.rc == 0 and again["status"] == "noop" and again["ran"] is False, again
        assert again["server"] is None and again["duration_s"] < 2.0
    assert box.server_starts() == starts  # no server (or tuner) was started by the noops
    assert open(box.profiles(contract.stage_model_dir("deep_gemm", MODEL) + "/compile.log")).read() == compile_log
    assert box.prep_result()["status"] == "ok"


def test_check_mode_says_why_and_writes_nothing(box):
    before = box.tree()
    result = box.stage("deep_gemm", mode="check")
    assert result.rc == 0 and result["status"] == "would_run" and result["would_run"] is True, result
    assert result["reprime_reasons"][0]["field"] == "signature"
    assert box.tree() == before  # no stage JSON, no directories, no lock or marker files, no log lines


def test_changing_one_input_reruns_exactly_that_stage_naming_the_field(box):
    for stage in STAGES:
        assert box.stage(stage)["status"] == "ok"
    # an sgl-deep-gemm upgrade: package metadata the probe reads, first on the servers' python path
    dist = box.host("profiles", "site", "sgl_deep_gemm-0.2.4.dist-info")
    os.makedirs(dist)
    with open(os.path.join(dist, "METADATA"), "w") as handle:
        handle.write("Metadata-Version: 2.1\nName: sgl-deep-gemm\nVersion: 0.2.4\n")
    env = {"PYTHONPATH": "/opt/sglang-prep:/profiles/site"}
    ran = {}
    for stage in STAGES:
        result = box.stage(stage, env=env)
        assert result.rc == 0, result
        ran[stage] = result["status"]
        if stage == "deep_gemm":
            assert result["reprime_reasons"] == [{"field": "deep_gemm_version", "old": "0.2.3.post2", "new": "0.2.4"}]
    assert ran == {"deep_gemm": "ok", "moe_tune": "noop", "flashinfer": "noop", "inductor": "noop"}


# ---------------------------------------------------------------- every error type this layer can produce

def test_port_busy_names_the_holder_and_never_falls_back(primed):
    primed.exec("python3", "-m", "http.server", "30000", "--bind", "127.0.0.1", detach=True)
    h.wait_for(lambda: not primed.state("flashinfer")["port_free"], 10, "the squatter on port 30000")
    result = primed.stage("flashinfer")
    assert_failed(result, "port_busy", "30000", "http.server", "never fall back")
    assert result["server"]["pid"] is None  # nothing started, on 30000 or any other port
    assert_earlier_kept(primed)
    state = primed.state("flashinfer")
    assert state["lock_free"] and state["servers"] == []


def test_lock_timeout_names_the_live_holder(primed):
    primed.stage_detached("flashinfer", env={"SGLANG_STANDIN_START_DELAY_S": "60"})
    marker = primed.profiles("/profiles/.in_progress/flashinfer.json")
    holder = h.wait_for(lambda: os.path.exists(marker) and json.load(open(marker)).get("server_pid") and
                        json.load(open(marker)), 20, "the holder's server")
    result = primed.stage("flashinfer", "--lock-timeout", "1")
    assert_failed(result, "lock_timeout", "pid %d" % holder["owner_pid"], "/profiles/.locks/flashinfer.lock")
    assert "waiting for lock" in result.stderr  # heartbeats while waiting
    assert_earlier_kept(primed)
    assert not os.path.exists(primed.telemetry(contract.stage_json_path(RUN_ID, "flashinfer", MODEL)))
    primed.exec("kill", "-9", str(holder["owner_pid"]), check=True)
    h.wait_for(lambda: primed.state("flashinfer") == {"lock_free": True, "port_free": True, "servers": []}, 10,
               "the killed holder's lock, port and server to go")


def test_unwritable_cache_directory_is_permissions_unexpected(primed):
    path = primed.host("profiles", "flashinfer")
    os.makedirs(path, exist_ok=True)
    os.chown(path, 0, 0)  # test setup: a root-owned directory, the defect users hit
    os.chmod(path, 0o755)
    result = primed.stage("flashinfer")
    assert_failed(result, "permissions_unexpected", "/profiles/flashinfer", "Owner seen: 0:0",
                  "%d:%d" % (UID, GID), path)
    assert result["server"] is None
    assert_earlier_kept(primed)
    primed.assert_clean("flashinfer")


def test_disk_headroom_is_insufficient_disk(primed):
    result = primed.stage("flashinfer", "--disk-headroom-mb", "100000000")
    assert_failed(result, "insufficient_disk", "required headroom", "/profiles/flashinfer")
    assert result["errors"][0]["required_bytes"] == 100000000 * 1024 * 1024
    assert_earlier_kept(primed)
    primed.assert_clean("flashinfer")


@pytest.mark.parametrize("fault,error_type,words", [
    ("exit_at_start", "server_exited_early", ("code 3", "before it was ready")),
    ("generate_500", "generate_failed", ("HTTP 500",)),
    ("oom", "not_enough_memory", ("Not enough memory", "mem_fraction_static=0.94")),
    ("kv_dtype_drift", "config_drift", ("torch.bfloat16", "fp8_e4m3")),
    ("libcuda_missing", "libcuda_missing", ("libcuda.so.1",)),
])
def test_server_failures_are_classified(primed, fault, error_type, words):
    start = time.monotonic()
    result = primed.stage("flashinfer", env={"SGLANG_STANDIN_FAULT": fault})
    assert_failed(result, error_type, *words)
    assert 0 < len(result["log_tail"]) <= 20
    assert time.monotonic() - start < 15
    assert primed.stage_json("flashinfer")["error_type"] == error_type
    assert os.path.exists(primed.profiles("/profiles/.in_progress/flashinfer.json"))  # left on error
    assert_earlier_kept(primed)
    assert primed.prep_result()["status"] == "partial"
    primed.assert_clean("flashinfer")


def test_deep_gemm_disabled_by_a_failed_import_is_deepgemm_inactive(box):
    """libnvrtc.so.13 missing: `import deep_gemm` fails and SGLang runs without DeepGEMM, saying nothing."""
    result = box.stage("deep_gemm", env={"SGLANG_STANDIN_FAULT": "nvrtc_missing"})
    assert_failed(result, "deepgemm_inactive", "import deep_gemm failed", "libnvrtc.so.13", "FP8 block-quantized")
    assert result["validation"]["deep_gemm"]["compile_lines"] == 0
    assert not os.path.exists(box.profiles("/profiles/deep_gemm/cache"))
    box.assert_clean("deep_gemm")


def test_deep_gemm_like_sglangs_precompile_with_the_real_cache_layout(box):
    result = box.stage("deep_gemm", "--ready-timeout", "1800")
    assert result.rc == 0 and result["status"] == "ok", result
    argv = result["server"]["argv"]
    assert argv[argv.index("--watchdog-timeout") + 1] == "1800.0"
    info = result["validation"]["deep_gemm"]
    assert info["compile_lines"] >= 4 and info["files_added"] == result["primed"]["deep_gemm"]["files_added"] > 0
    kernels = sorted(os.listdir(box.profiles("/profiles/deep_gemm/cache")))
    assert kernels and all(k.startswith("sm90_") for k in kernels)
    for kernel in kernels:
        assert sorted(os.listdir(box.profiles("/profiles/deep_gemm/cache/" + kernel))) == [
            ".committed", "kernel.cu", "kernel.cubin", "meta.json"]
    assert not os.listdir(box.profiles("/profiles/deep_gemm/tmp"))  # published by rename
    skipped = box.stage("deep_gemm", model="/models/tiny-moe")
    assert skipped.rc == 0 and skipped["status"] == "skipped" and "no quantization_config" in skipped["message"]


def test_deep_gemm_without_nvcc_is_nvcc_not_found_before_any_server(box):
    result = box.stage("deep_gemm", env={"CUDA_HOME": "/opt"})
    assert_failed(result, "nvcc_not_found", "NVCC compiler is not executable: /opt/bin/nvcc", "CUDA toolkit")
    assert result["server"] is None


def test_a_hybrid_model_is_primed_without_a_state_cache_too_small_to_serve(box):
    """The notebook's --max-mamba-cache-size 1 leaves a hybrid model no request slot: it gets the smallest size that
    serves (SGLang's state slots per request), and the stage JSON and the session log say why."""
    result = box.stage("flashinfer", model="/models/tiny-hybrid")
    assert result.rc == 0 and result["status"] == "ok", result
    argv = result["server"]["argv"]
    assert argv[argv.index("--max-mamba-cache-size") + 1] == "5"
    assert result["mamba_cache"]["hybrid"] is True and "smallest value that serves" in result["mamba_cache"]["deviation"]
    plain = box.stage("flashinfer")
    assert plain["server"]["argv"][plain["server"]["argv"].index("--max-mamba-cache-size") + 1] == "1"
    assert plain["mamba_cache"]["deviation"] is None
    smuggled = box.stage("flashinfer", "--extra-server-arg=--max-mamba-cache-size=1", model="/models/tiny-hybrid")
    assert_failed(smuggled, "mamba_cache_too_small", "state cache is too small to serve any requests",
                  "remove --max-mamba-cache-size")


def test_flashinfer_says_what_it_added_and_which_backend_attention_runs_on(box):
    """On Hopper attention runs on fa3: FlashInfer only samples, and the deep_gemm server already built that."""
    assert box.stage("deep_gemm").rc == 0
    result = box.stage("flashinfer")
    assert result.rc == 0, result
    info = result["validation"]["flashinfer"]
    assert info["attention_backend"] == "fa3" and info["sampling_backend"] == "flashinfer"
    assert info["files_added"] == 0 and info["summary"].startswith("nothing added to /profiles/flashinfer")
    assert "attention runs on fa3, not FlashInfer" in info["summary"] and info["summary"] in result["message"]
    fi = box.stage("flashinfer", "--extra-server-arg=--attention-backend=flashinfer", mode="rebuild")
    assert fi["validation"]["flashinfer"]["flashinfer_attention"] is True
    assert fi["validation"]["flashinfer"]["files_added"] > 0  # its attention kernels


def test_a_server_that_never_gets_ready_is_a_readiness_timeout(primed):
    start = time.monotonic()
    result = primed.stage("inductor", "--ready-timeout", "2", env={"SGLANG_STANDIN_FAULT": "hang"})
    assert_failed(result, "readiness_timeout", "within 2 s")
    assert time.monotonic() - start < 10
    assert result["server"]["teardown"]["signal"] == "SIGTERM"
    assert_earlier_kept(primed)
    primed.assert_clean("inductor")


def test_sigterm_ignored_means_sigkill_after_ten_seconds(primed):
    result = primed.stage("flashinfer", env={"SGLANG_STANDIN_FAULT": "ignore_sigterm"})
    assert result.rc == 0 and result["status"] == "ok", result
    teardown = result["server"]["teardown"]
    assert teardown["signal"] == "SIGKILL" and 10.0 <= teardown["duration_s"] < 13.0
    assert any("SIGKILL" in w for w in result["warnings"])
    assert_earlier_kept(primed)
    primed.assert_clean("flashinfer")


def test_a_quantized_checkpoint_is_tuned_under_the_names_the_server_reads(box):
    # the image's FP8-block test model: the tuner gets --dtype fp8_w8a8, both projections are tuned, and the
    # warm-up's server reads both files (tests/standins/models/tiny-moe-fp8-block)
    model = "/opt/sglang-standin/models/tiny-moe-fp8-block"
    tuned = box.stage("moe_tune", "--model", model)
    assert tuned.rc == 0 and tuned["status"] == "ok", tuned
    argv = tuned["tuner"]["argv"]
    assert argv[argv.index("--dtype") + 1] == "fp8_w8a8" and "--per-channel-quant" not in argv
    name = "/profiles/moe_configs/configs/triton_3_4_0/E=8,N=256,device_name=NVIDIA_H100_80GB_HBM3,dtype=fp8_w8a8," \
           "block_shape=[128, 128]"
    for suffix in (".json", "_down.json"):
        assert sorted(json.load(open(box.profiles(name + suffix))), key=int) == list(h.BATCH_SIZES)
    warm = box.stage("flashinfer", "--model", model)
    assert warm.rc == 0 and warm["status"] == "ok", warm
    lookups = warm["validation"]["moe_lookups"]
    assert (lookups["up"]["config_used"], lookups["up"]["source"]) == (name + ".json", "tuned")
    assert (lookups["down"]["config_used"], lookups["down"]["source"]) == (name + "_down.json", "tuned")


def test_tuner_failure_is_tuner_failed(primed):
    result = primed.stage("moe_tune", env={"SGLANG_STANDIN_TUNER_FAULT": "fail"})
    assert_failed(result, "tuner_failed", "batch size 1")
    assert any("illegal memory access" in line for line in result["log_tail"])
    assert_earlier_kept(primed)
    primed.assert_clean("moe_tune")


def test_missing_pointer_is_bad_pointer(primed):
    os.unlink(primed.host("telemetry", "container_run_meta.env"))
    result = primed.stage("flashinfer")
    assert_failed(result, "bad_pointer", "/telemetry/container_run_meta.env")
    assert_earlier_kept(primed)


# ---------------------------------------------------------------- crash recovery and telemetry

def test_kill_9_of_the_runner_mid_stage_then_ensure_reruns_and_succeeds(primed):
    primed.stage_detached("inductor", env={"SGLANG_STANDIN_START_DELAY_S": "60"})
    marker = primed.profiles("/profiles/.in_progress/inductor.json")
    holder = h.wait_for(lambda: os.path.exists(marker) and json.load(open(marker)).get("server_pid") and
                        json.load(open(marker)), 20, "the stage server to start")
    primed.exec("kill", "-9", str(holder["owner_pid"]), check=True)
    result = primed.stage("inductor")
    assert result.rc == 0 and result["status"] == "ok" and result["ran"], result
    assert "in_progress_marker" in [r["field"] for r in result["reprime_reasons"]]
    assert not os.path.exists(marker)
    assert_earlier_kept(primed)
    primed.assert_clean("inductor")
    assert primed.stage("inductor")["status"] == "noop"


def test_argv_command_prints_what_the_stage_runs(box):
    result = box.stage("inductor")
    printed = box.exec("python3", "-m", "sglang_prep", "argv", "inductor", "--model", MODEL, check=True)
    assert json.loads(printed.stdout) == result["server"]["argv"]


@pytest.fixture
def with_prometheus():
    """A container whose run has a real Prometheus scraping port 30000 with the run_id label."""
    container = h.StageContainer(prometheus_url="http://127.0.0.1:9090")
    config = ("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: sglang\n"
              "    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['127.0.0.1:30000']\n        labels:\n          run_id: %s\n" % RUN_ID)
    with open(container.host("telemetry", "prometheus.yml"), "w") as handle:
        handle.write(config)
    container.exec("prometheus", "--config.file=/telemetry/prometheus.yml", "--storage.tsdb.path=/tmp/tsdb",
                   "--web.listen-address=127.0.0.1:9090", detach=True, check=True)
    # Prometheus applies new scrape targets a few seconds after start: wait until port 30000 is one
    probe = ("import sys, urllib.request; body = urllib.request.urlopen('http://127.0.0.1:9090/api/v1/targets', "
             "timeout=1).read().decode(); sys.exit(0 if '127.0.0.1:30000' in body else 1)")
    h.wait_for(lambda: container.exec("python3", "-c", probe).returncode == 0, 30, "Prometheus and its target")
    yield container
    container.remove()


def test_telemetry_probe_finds_this_runs_tokens_in_prometheus(with_prometheus):
    result = with_prometheus.stage("flashinfer", "--telemetry-timeout", "10")
    assert result.rc == 0, result
    probe = result["telemetry_probe"]
    assert probe["server_metrics"]["ok"] is True
    assert probe["ok"] is True and probe["sample_count"] >= 1, probe
    assert 'run_id="%s"' % RUN_ID in probe["query"]
    assert probe["waited_s"] < 5  # scraped every second while the server is still up
    # the next warm-up of the same run needs a sample of its own server, not the one flashinfer left
    second = with_prometheus.stage("inductor", "--telemetry-timeout", "10")
    assert second.rc == 0 and second["telemetry_probe"]["ok"] is True, second
    agg = with_prometheus.prep_result()
    assert agg["telemetry_probe"]["ok"] is True and agg["telemetry_probe"]["stage"] == "inductor"

"""Fault knobs of the stand-in server (SGLANG_STANDIN_FAULT; tests/standins/README.md)."""

import json
import signal
from pathlib import Path

import pytest

from harness import StandinServer, holds_for, wait_for


@pytest.mark.parametrize("fault, code, text", [
    ("exit_at_start", 3, "exit_at_start"),
    ("oom", 1, "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static. "
               "Current value: mem_fraction_static=0.94"),
    ("libcuda_missing", 1, "OSError: libcuda.so.1: cannot open shared object file: No such file or directory"),
    ("no_such_fault", 2, "unknown SGLANG_STANDIN_FAULT no_such_fault"),
])
def test_fault_exits(tmp_path, fault, code, text):
    server = StandinServer(tmp_path, env={"SGLANG_STANDIN_FAULT": fault}).start()
    try:
        assert server.wait_exit() == code
        log = server.log()
        assert text in log
        assert "Uvicorn running" not in log
    finally:
        server.kill()


def test_hang_never_becomes_ready(tmp_path):
    with StandinServer(tmp_path, env={"SGLANG_STANDIN_FAULT": "hang"}) as server:
        server.wait_http()
        assert holds_for(lambda: server.status("/health") == 503 and server.status("/ready") == 503, 1.0)
        assert "fired up" not in server.log()


def test_ignore_sigterm_needs_sigkill(tmp_path):
    server = StandinServer(tmp_path, env={"SGLANG_STANDIN_FAULT": "ignore_sigterm"}).start()
    try:
        server.wait_ready()
        children = server.children()
        assert children
        server.signal_group(signal.SIGTERM)
        assert holds_for(lambda: server.proc.poll() is None and all(Path("/proc/%d" % p).exists() for p in children),
                         0.5)
        server.signal_group(signal.SIGKILL)
        assert server.wait_exit(timeout=5) == -signal.SIGKILL
        wait_for(lambda: not any(Path("/proc/%d" % pid).exists() for pid in children), 2.0, what="child gone")
    finally:
        server.kill()


def test_kv_dtype_drift(tmp_path):
    with StandinServer(tmp_path, env={"SGLANG_STANDIN_FAULT": "kv_dtype_drift"}) as server:
        server.wait_ready()
        log = server.log()
    assert "kv_cache_dtype='fp8_e4m3'" in log
    assert "KV Cache is allocated. dtype: torch.bfloat16, #tokens: " in log
    assert "torch.float8_e4m3fn" not in log


def test_generate_500(tmp_path):
    with StandinServer(tmp_path, env={"SGLANG_STANDIN_FAULT": "generate_500"}) as server:
        server.wait_ready()
        status, body = server.post("/generate", {"input_ids": [0, 1, 2, 3],
                                                 "sampling_params": {"max_new_tokens": 8, "temperature": 0}})
    assert status == 500 and json.loads(body)["error"]["message"]


def test_start_delay_knob(tmp_path):
    with StandinServer(tmp_path, env={"SGLANG_STANDIN_START_DELAY_S": "0.8"}) as server:
        wait_for(lambda: "Load weight begin" in server.log(), 10, what="weight loading")
        assert holds_for(lambda: server.status("/v1/models") is None, 0.4)
        server.wait_ready()

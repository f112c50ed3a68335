"""GPU smoke test for operators: a real GPU host, a real SGLang image, a real model.

Skipped unless SGL_E2E_CONTAINER_TESTS=1. On the GPU host (as root, or as the host user):

    SGL_E2E_CONTAINER_TESTS=1 SGL_E2E_IMAGE=sglang-prep:<tag> SGL_E2E_MODEL=/models/<M> \\
        .venv/bin/python -m pytest -p no:cacheprovider tests/gpu -v

Optional: SGL_E2E_HOST_USER (the owner of the host directories; needed when running as root),
SGL_E2E_HOST_ROOT (default $HOME/sglang-observability of that user), SGL_E2E_TP (default 1),
SGL_E2E_CONTAINER (default sglang-prep-e2e), SGL_E2E_GPUS (prime_gpus, default all).

Flow (the notebook's pointer-and-DeepGEMM smoke test): start the container and wait for the pointer,
DeepGEMM ensure (the first compile, or a no-op if this host is already primed), stop the container and
prove no server is left, start it again (new run, new pointer), DeepGEMM ensure again: a no-op that
launches nothing.
"""

import json
import os
import pwd
import subprocess

import pytest

if os.environ.get("SGL_E2E_CONTAINER_TESTS") != "1":
    pytest.skip("GPU smoke test: set SGL_E2E_CONTAINER_TESTS=1, SGL_E2E_IMAGE=<image> and SGL_E2E_MODEL=/models/<M> "
                "on a GPU host to run it", allow_module_level=True)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, pointer

IMAGE = os.environ.get("SGL_E2E_IMAGE", "")
MODEL = os.environ.get("SGL_E2E_MODEL", "")
HOST_USER = os.environ.get("SGL_E2E_HOST_USER") or (os.environ.get("SUDO_USER") if os.getuid() == 0 else None) \
    or pwd.getpwuid(os.getuid()).pw_name
HOST_ROOT = os.environ.get("SGL_E2E_HOST_ROOT") or os.path.join(pwd.getpwnam(HOST_USER).pw_dir, "sglang-observability")
CONTAINER = os.environ.get("SGL_E2E_CONTAINER", "sglang-prep-e2e")
TP = int(os.environ.get("SGL_E2E_TP", "1"))
GPUS = os.environ.get("SGL_E2E_GPUS", "all")


def playbook(name, **extra_vars):
    settings = {"model": MODEL, "prime_image": IMAGE, "prime_container_name": CONTAINER, "prime_host_user": HOST_USER,
                "prime_host_root": HOST_ROOT, "prime_tp": TP, "prime_gpus": GPUS, "prime_stages": ["deep_gemm"], "sglang_prep_fleet_report": False}
    settings.update(extra_vars)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), os.path.join(REPO, "playbooks", name),
                           "-e", json.dumps(settings)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, "\n".join(proc.stdout.splitlines()[-60:])
    return proc.stdout


def current_run():
    with open(os.path.join(HOST_ROOT, "telemetry", contract.POINTER_NAME)) as handle:
        ptr = pointer.parse_pointer(handle.read())
    with open(ptr["host"]) as handle:
        manifest = json.load(handle)
    return manifest["container_run_id"], manifest["paths"]["host"]["run_dir"]


def deep_gemm_result(run_dir):
    with open(os.path.join(run_dir, "stages", "deep_gemm.json")) as handle:
        return json.load(handle)


@pytest.fixture(scope="module", autouse=True)
def preconditions():
    assert IMAGE and MODEL.startswith(contract.MODELS_ROOT + "/"), "set SGL_E2E_IMAGE and SGL_E2E_MODEL=/models/<M>"
    config = os.path.join(HOST_ROOT, "models", MODEL[len(contract.MODELS_ROOT) + 1:], "config.json")
    assert os.path.isfile(config), "the model is not on this host: %s is missing" % config


def test_pointer_then_deep_gemm_ensure_then_restart_is_a_noop():
    playbook("prime.yml")
    first_run, run_dir = current_run()
    first = deep_gemm_result(run_dir)
    assert first["status"] in ("ok", "noop"), first
    if first["ran"]:  # the first compile on this host: the canonical settings were honoured
        assert first["validation"]["kv_cache_dtype_ok"] is True, first["validation"]
        assert set(first["validation"]["kv_cache_dtypes"]) <= set(contract.EXPECTED_KV_TORCH_DTYPES)
        assert first["validation"]["flag_drift"] == []
        argv = first["server"]["argv"]
        assert argv[argv.index("--kv-cache-dtype") + 1] == contract.CANONICAL_SETTINGS["kv_cache_dtype"]
        assert argv[argv.index("--mem-fraction-static") + 1] == str(contract.CANONICAL_SETTINGS["mem_fraction_static"])

    stop = playbook("stop.yml")
    assert "none is left" in stop or "no process of it is left" in stop, stop

    playbook("prime.yml")
    second_run, run_dir = current_run()
    assert second_run != first_run, "the restarted container published a new run"
    second = deep_gemm_result(run_dir)
    assert second["status"] == "noop" and second["ran"] is False, second
    assert not (second.get("server") or {}).get("pid"), "a no-op must not launch a server"

    uid = pwd.getpwnam(HOST_USER).pw_uid
    foreign = [os.path.join(d, n) for top in ("telemetry", "profiles") for d, dirs, files in os.walk(os.path.join(HOST_ROOT, top))
               for n in dirs + files if os.lstat(os.path.join(d, n)).st_uid != uid]
    assert foreign == [], "files not owned by %s: %s" % (HOST_USER, foreign[:20])

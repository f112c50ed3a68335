"""Filter sglang.prep.prerequisite_rows: one row per prerequisite, with what was found and the fix for a miss.

The end-to-end check (playbook preflight.yml on a real host) is tests/integration/test_operator_inputs.py."""

from ansible_collections.sglang.prep.plugins.filter.prerequisite_rows import prerequisite_rows


def ready(**extra):
    look = {
        "facts": {"host_user": {"name": "dev", "found": True, "uid": 1000}, "host_root": "/h", "connected_user": {"name": "ops"},
                  "entries": [{"path": "/h/models/m/config.json", "isreg": True}]},
        "gpus": {"rc": 0, "stdout": "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)\nGPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-2)"},
        "engine": {"host_info": {"ServerVersion": "27.1", "Runtimes": {"runc": {}, "nvidia": {}}}},
        "hook": {"stat": {"exists": True}}, "requests": {"rc": 0},
        "df": {"stdout": "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/sda1 1 1 %d 1%% /" % (200 * 1024 ** 3)},
        "image_info": {"images": [{"Id": "x"}]}, "manifest": {"skipped": True},
        "gpus_wanted": True, "gpus_setting": "all", "min_free_gb": 50, "model": "/models/m", "models_root": "/models", "image": "img:1",
    }
    look.update(extra)
    return look


def by_check(rows):
    return dict((row["check"], row) for row in rows)


def test_a_ready_host_has_every_row_ok():
    rows = prerequisite_rows(ready())
    assert [row["check"] for row in rows] == ["Host user dev", "NVIDIA driver and GPUs", "NVIDIA Container Toolkit", "Docker for ops",
                                             "python3-requests", "Free disk for the caches", "Model /models/m", "Image img:1"]
    assert all(row["ok"] for row in rows), rows
    found = by_check(rows)
    assert found["NVIDIA driver and GPUs"]["found"] == "2 GPU(s): GPU 0: NVIDIA H100 80GB HBM3"
    assert found["Free disk for the caches"]["found"] == "200.0 GiB free on /"
    assert found["Docker for ops"]["found"] == "engine 27.1"


def test_every_miss_says_what_was_found_and_how_to_fix_it():
    look = ready(gpus={"rc": 9, "stderr": "NVIDIA-SMI has failed\n"}, engine={"msg": "permission denied on /var/run/docker.sock"},
                 hook={"stat": {"exists": False}}, requests={"rc": 1, "stderr": "Traceback\nModuleNotFoundError: No module named 'requests'"},
                 df={"stdout": "", "stderr": "df: /h: No such file"}, model="/models/absent", image_info={},
                 manifest={"rc": 1, "stderr": "no such manifest"})
    rows = by_check(prerequisite_rows(look))
    assert [name for name, row in rows.items() if not row["ok"]] == [
        "NVIDIA driver and GPUs", "NVIDIA Container Toolkit", "Docker for ops", "python3-requests", "Free disk for the caches",
        "Model /models/absent", "Image img:1"]
    assert rows["NVIDIA driver and GPUs"]["found"] == "nvidia-smi -L: NVIDIA-SMI has failed"
    assert rows["NVIDIA Container Toolkit"]["found"] == "runtimes: unknown; hook missing"
    assert rows["python3-requests"]["found"] == "ModuleNotFoundError: No module named 'requests'"
    assert rows["Free disk for the caches"]["found"] == "unknown (df: /h: No such file)"
    assert rows["Model /models/absent"]["found"] == "no /h/models/absent/config.json"
    assert rows["Image img:1"]["found"] == "no such manifest"
    assert "usermod -aG docker" in rows["Docker for ops"]["fix"]


def test_gpu_rows_are_not_needed_without_gpus():
    rows = by_check(prerequisite_rows(ready(gpus_wanted=False, gpus_setting="none", gpus={}, hook={})))
    assert rows["NVIDIA driver and GPUs"] == {"check": "NVIDIA driver and GPUs", "ok": True, "found": "not needed: prime_gpus=none", "fix": ""}


def test_root_is_never_the_host_user():
    rows = prerequisite_rows(ready(facts=dict(ready()["facts"], host_user={"name": "root", "found": True, "uid": 0})))
    assert rows[0]["check"] == "Host user root" and not rows[0]["ok"]

"""Retention of per-run telemetry data (container/retention.py): init keeps the newest N runs' Prometheus and
Jaeger directories, never the current run's, never anything that does not look like a run directory."""

import os

import pytest


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import identity, init, retention

CURRENT = "container-run-20261130T120000Z-0000000c"
OLDER = ["container-run-20261130T11%02d00Z-0000000%d" % (minute, minute) for minute in range(1, 6)]  # oldest first
FOUND = {"prometheus": "/usr/bin/prometheus", "node_exporter": None, "dcgm_exporter": None, "jaeger": "/usr/bin/jaeger",
         "nv_hostengine": None}


def make_run(telemetry, service, run_id):
    path = telemetry / service / run_id
    (path / "tsdb").mkdir(parents=True)
    (path / "tsdb" / "chunk").write_text("data")
    return path


@pytest.fixture
def telemetry(tmp_path):
    tele = tmp_path / "telemetry"
    for service in retention.SERVICES:
        for run_id in OLDER + [CURRENT]:
            make_run(tele, service, run_id)
    return tele


def left(telemetry, service):
    return sorted(os.listdir(str(telemetry / service)))


def test_keeps_the_newest_runs_and_the_current_one(telemetry):
    out = retention.prune(str(telemetry), CURRENT, 3)
    for service in retention.SERVICES:
        assert left(telemetry, service) == sorted(OLDER[-2:] + [CURRENT])
    assert sorted(out["pruned"]) == sorted(str(telemetry / s / r) for s in retention.SERVICES for r in OLDER[:3])
    assert out["warnings"] == []


def test_keep_one_leaves_the_current_run_only_and_zero_keeps_everything(telemetry):
    assert retention.prune(str(telemetry), CURRENT, 0) == {"pruned": [], "warnings": []}
    assert left(telemetry, "prometheus") == sorted(OLDER + [CURRENT])
    retention.prune(str(telemetry), CURRENT, 1)
    assert left(telemetry, "prometheus") == [CURRENT] and left(telemetry, "jaeger") == [CURRENT]


def test_the_current_run_stays_even_when_its_name_is_not_the_newest(telemetry):
    newer = "container-run-20261201T000000Z-000000ff"  # a clock that went back: the current run sorts before it
    make_run(telemetry, "prometheus", newer)
    retention.prune(str(telemetry), CURRENT, 2)
    assert left(telemetry, "prometheus") == sorted([CURRENT, newer])


def test_nothing_that_does_not_look_like_a_run_directory_is_touched(telemetry, tmp_path):
    prom = telemetry / "prometheus"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.me").write_text("x")
    link = prom / "container-run-20261130T100000Z-0000000a"  # named like an old run, but a symlink
    os.symlink(str(elsewhere), str(link))
    (prom / "container-run-20261130T100100Z-0000000b").write_text("a file named like a run")
    (prom / "container-run-2026").mkdir()  # not a run id
    (prom / "notes").mkdir()
    (prom / "container-run-20261130T100200Z-0000000B").mkdir()  # upper-case hex: not a run id either
    retention.prune(str(telemetry), CURRENT, 1)
    assert left(telemetry, "prometheus") == sorted([CURRENT, link.name, "container-run-20261130T100100Z-0000000b",
                                                    "container-run-2026", "notes", "container-run-20261130T100200Z-0000000B"])
    assert (elsewhere / "keep.me").exists()


def test_a_directory_that_cannot_be_deleted_is_a_warning(telemetry, monkeypatch):
    real = retention.shutil.rmtree

    def refuse(path, *args, **kwargs):
        if path.endswith(OLDER[0]):
            raise PermissionError(13, "Permission denied", path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(retention.shutil, "rmtree", refuse)
    out = retention.prune(str(telemetry), CURRENT, 2)
    assert len(out["warnings"]) == 2 and all(OLDER[0] in w and "Permission denied" in w for w in out["warnings"])
    assert OLDER[0] in left(telemetry, "prometheus") and OLDER[1] not in left(telemetry, "prometheus")


def test_no_telemetry_directories_yet_is_nothing_to_do(tmp_path):
    assert retention.prune(str(tmp_path), CURRENT, 3) == {"pruned": [], "warnings": []}


@pytest.mark.parametrize("text, keep, warned", [
    (None, contract.TELEMETRY_KEEP_RUNS, False), ("", contract.TELEMETRY_KEEP_RUNS, False), ("3", 3, False),
    (" 0 ", 0, False), ("-1", 0, True), ("ten", 0, True), ("2.5", 0, True)])
def test_the_environment_sets_how_many_runs_are_kept(text, keep, warned):
    env = {} if text is None else {contract.ENV_TELEMETRY_KEEP_RUNS: text}
    got, warning = retention.keep_runs(env)
    assert got == keep and bool(warning) == warned
    if warned:
        assert contract.ENV_TELEMETRY_KEEP_RUNS in warning and "no run's telemetry data is pruned" in warning


def test_init_prunes_after_laying_out_the_new_run(telemetry, tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    user = identity.Devuser("devuser", os.getuid(), os.getgid(), "/home/devuser")
    new_run = "container-run-20261130T130000Z-0000000d"
    out = init.prepare_run(new_run, user, {"telemetry": "/host/telemetry"}, FOUND, "127.0.0.1", "2026-11-30T13:00:00Z",
                           "img", telemetry_root=str(telemetry), profiles_root=str(profiles),
                           hf_root=str(tmp_path / "hf"), keep_runs=2)
    assert left(telemetry, "prometheus") == sorted([CURRENT, new_run])
    assert (telemetry / "prometheus" / new_run / "prometheus.yml").exists()
    assert out["keep_runs"] == 2 and len(out["pruned"]) == 2 * len(OLDER)
    assert (telemetry / "container_runs").is_dir()  # records of older runs are not telemetry data: they stay

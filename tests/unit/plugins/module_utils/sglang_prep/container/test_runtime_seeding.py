"""Seeding a receiver from a builder (`python3 -m sglang_prep bundle create|install`, container/seeding.py).

Two fake container runs (test_runtime_engine's Run: manifest, pointer, stand-in tools as real subprocesses)
play builder and receiver. What a user relies on: the builder bundles only what it has primed; a receiver
with the same signatures installs it, records each stage as `installed` with the bundle's digest and source,
and then every priming stage is a noop there (no server, no tuner), while the serve check proves the caches
without compiling anything; a receiver with a different driver refuses the bundle and names the field.
"""

import io
import json
import os
import subprocess
import sys

import pytest


from unit_support.runtime import RUNTIME, Run

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, registry
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import bundle, plan, seeding
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError

PRIMING = list(registry.priming_stages())


def options(run, **extra):
    out = {"pointer": run.pointer, "port": run.port, "disk_headroom_mb": 1, "moe_batch_sizes": [1, 2], "telemetry_timeout": 0.5}
    out.update(extra)
    return out


@pytest.fixture
def builder(tmp_path):
    run = Run(str(tmp_path / "builder"))
    for stage in PRIMING:
        assert run.stage(stage)["status"] in ("ok", "skipped"), stage
    return run


@pytest.fixture
def receiver(tmp_path):
    return Run(str(tmp_path / "receiver"))


def create(run, **kwargs):
    return seeding.create(run.model, options(run), source_host="gpu-01", stream=io.StringIO(), env=run.env, **kwargs)


def test_builder_refuses_to_bundle_what_it_has_not_primed(receiver):
    with pytest.raises(PrepError) as err:
        create(receiver)
    assert err.value.error_type == "bundle_unavailable" and "prime it first" in err.value.message


def test_receiver_installs_then_every_priming_stage_is_a_noop_and_the_serve_check_proves_it(builder, receiver):
    made = create(builder)
    assert os.path.isfile(made["path"]) and made["path"].startswith(os.path.join(builder.prof, bundle.BUNDLES_DIR))
    assert made["host_path"] == "/home/u/obs/profiles/.bundles/%s.tar.gz" % made["digest"]
    bundled = [s for s in PRIMING if s in made["stages"]]
    assert bundled and set(bundled) | set(made["skipped_stages"]) == set(PRIMING)

    env = dict(receiver.env)
    outcome = seeding.install(receiver.model, made["path"], options(receiver), expected_sha256=made["digest"],
                              stream=io.StringIO(), env=env)
    assert outcome["status"] == "installed" and outcome["changed"] is True and outcome["stages"] == bundled
    for stage in bundled:
        record = receiver.stage_json(stage)
        assert record["status"] == "installed" and record["ran"] is True
        assert record["installed_from"]["bundle_digest"] == made["digest"]
        assert record["installed_from"]["source_host"] == "gpu-01"
    assert receiver.prep_result()["status"] == "ok"

    for stage in bundled:
        again = receiver.stage(stage)
        assert again["status"] == "noop" and again["ran"] is False, (stage, again["message"])
    check = receiver.stage("serve_check")
    assert check["status"] == "ok", check["message"]
    assert check["zero_jit"] is True

    # installing the same bundle again changes nothing
    outcome = seeding.install(receiver.model, made["path"], options(receiver), stream=io.StringIO(), env=env)
    assert outcome["status"] == "noop" and outcome["changed"] is False


def test_a_receiver_with_another_driver_refuses_and_names_the_field(builder, receiver):
    made = create(builder)
    env = dict(receiver.env, SGLANG_STANDIN_DRIVER="550.54.15")
    before = receiver.tree()
    with pytest.raises(PrepError) as err:
        seeding.install(receiver.model, made["path"], options(receiver), stream=io.StringIO(), env=env)
    assert err.value.error_type == "bundle_mismatch"
    assert "driver_version '570.148.08' -> '550.54.15'" in err.value.message
    assert receiver.tree() == before


def test_the_cli_answers_with_a_result_line(builder, receiver):
    made = create(builder)
    argv = [sys.executable, "-m", "sglang_prep", "bundle", "install", "--model", receiver.model, "--bundle", made["path"],
            "--sha256", "0" * 64, "--pointer", receiver.pointer, "--moe-batch-sizes", "1", "2", "--disk-headroom-mb", "1"]
    env = dict(receiver.env, PYTHONPATH=RUNTIME + ":" + receiver.env.get("PYTHONPATH", ""))
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    result = json.loads([line for line in proc.stdout.splitlines() if line.startswith(contract.RESULT_PREFIX)][-1][len(contract.RESULT_PREFIX):])
    assert result["error_type"] == "bundle_corrupt" and made["digest"] in result["message"]


def test_the_plan_groups_a_fresh_host_with_the_builder_of_its_bundle(builder, receiver):
    """The fan-out groups hosts by the plan's bundle_group: a fresh identical host must land in the group whose
    bundle it can install, and a host with another driver must not."""
    made = create(builder)
    opts = options(receiver)
    fresh = plan.plan(contract.STAGE_ORDER, receiver.model, opts, stream=io.StringIO(), env=receiver.env)
    assert fresh["bundle_group"] == made["group_key"]
    assert fresh["bundle_to_run"] == made["stages"]
    primed = plan.plan(contract.STAGE_ORDER, builder.model, options(builder), stream=io.StringIO(), env=builder.env)
    assert primed["bundle_group"] == made["group_key"] and primed["bundle_to_run"] == []
    other = plan.plan(contract.STAGE_ORDER, receiver.model, opts, stream=io.StringIO(),
                      env=dict(receiver.env, SGLANG_STANDIN_DRIVER="550.54.15"))
    assert other["bundle_group"] != made["group_key"]


def test_a_stage_run_clears_a_killed_install_and_reports_which_caches_the_model_holds(builder, receiver):
    """A killed install left its staging and markers: the next stage run rolls it back before it runs, and the
    session log says the model holds its old caches."""
    made = create(builder)
    pid = os.fork()
    if pid == 0:
        def die(*_args):
            os.kill(os.getpid(), 9)
        bundle._apply = die  # killed once the markers and the journal are written, before any live change
        try:
            seeding.install(receiver.model, made["path"], options(receiver), stream=io.StringIO(), env=receiver.env)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    staging = os.path.join(receiver.prof, bundle.STAGING_DIR)
    assert os.listdir(staging), "the killed install left no staging"
    result = receiver.stage(made["stages"][0])
    assert os.listdir(staging) == []
    assert result["status"] in ("ok", "noop", "skipped")
    with open(receiver.log) as handle:
        log = handle.read()
    assert "rolled back the interrupted install of bundle %s for %s: the model holds its old caches" % (
        made["digest"], receiver.model) in log

"""The stage registry (registry.py) against the runners (container/stages.RUNNERS): one table, and the code agrees.

Fails when a row and its runner disagree: names, order, server or not (ServerStage subclasses exactly
the rows that launch a server), warm-up or not, the switches, the cache the runner fills, the
signature fields it supplies. Also checks that everything derived from the table (contract names,
server switches, probed fields, help text) is derived, not restated.
"""

import io
import os

import pytest


from unit_support.runtime import cli

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import caches, contract, manifest, registry
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import (
    argv, engine, ledger, signature, stages, warmups)
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import runner as runner_mod
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError


def disagreements(rows, runners):
    """Every way the runner classes and the registry rows disagree, in words ([] when they agree)."""
    problems = []
    names = [row.name for row in rows]
    if list(runners) != names:
        problems.append("runners %s, registry %s (names and order must match)" % (list(runners), names))
    for row in rows:
        runner = runners.get(row.name)
        if runner is None:
            continue
        if runner.name != row.name:
            problems.append("%s: RUNNERS entry is %s, whose name is %r" % (row.name, runner.__name__, runner.name))
        if issubclass(runner, runner_mod.ServerStage) != row.server:
            problems.append("%s: server=%s in the registry, runner %s %s a ServerStage" % (
                row.name, row.server, runner.__name__, "is" if issubclass(runner, runner_mod.ServerStage) else "is not"))
        if issubclass(runner, warmups.WarmupStage) != row.warmup:
            problems.append("%s: warm-up=%s in the registry, runner %s disagrees" % (row.name, row.warmup, runner.__name__))
        if row.cache is not None and row.cache not in contract.CACHES:  # None: a stage without an on-disk cache
            problems.append("%s: cache %r is not in contract.CACHES" % (row.name, row.cache))
        for dependency in row.depends_on:
            if dependency not in names or names.index(dependency) >= names.index(row.name):
                problems.append("%s depends on %s, which does not run before it" % (row.name, dependency))
    return problems


def test_runners_and_registry_agree():
    assert disagreements(registry.STAGES, stages.RUNNERS) == []


def test_the_agreement_check_catches_each_kind_of_disagreement():
    """The check above is only worth something if it fails: a row without a runner, swapped order, wrong kind."""
    extra = registry.STAGES + (registry.Stage("extra_stage", cache="sglang", summary="x", server=True),)
    assert any("names and order" in p for p in disagreements(extra, stages.RUNNERS))
    swapped = (registry.STAGES[1], registry.STAGES[0]) + registry.STAGES[2:]
    assert any("names and order" in p for p in disagreements(swapped, stages.RUNNERS))
    not_server = tuple(registry.Stage(r.name, r.cache, r.summary, server=False) if r.name == "inductor" else r
                       for r in registry.STAGES)
    assert any("inductor: server=False" in p for p in disagreements(not_server, stages.RUNNERS))
    early = tuple(registry.Stage(r.name, r.cache, r.summary, server=r.server, switches=r.switches,
                                 depends_on=("inductor",)) if r.name == "deep_gemm" else r for r in registry.STAGES)
    assert any("does not run before it" in p for p in disagreements(early, stages.RUNNERS))


def test_contract_and_the_runtime_derive_from_the_registry():
    assert contract.STAGE_ORDER == registry.ORDER == tuple(stages.RUNNERS)
    assert contract.STAGE_CACHE == {row.name: row.cache for row in registry.STAGES}
    assert argv.SERVER_STAGES == tuple(row.name for row in registry.STAGES if row.server)
    assert argv.STAGE_SWITCHES == {row.name: row.switches for row in registry.STAGES if row.server}
    assert signature.GROUP_FIELDS == registry.GROUP_FIELDS
    for row in registry.STAGES:
        assert signature.probed_fields(row.name) == registry.GROUP_FIELDS + row.probed
    assert set(ledger.WARMUP_STAGES) == {row.name for row in registry.STAGES if row.warmup}
    # the warm-ups compile the MoE kernels with the configs moe_tune wrote: a new tuning re-runs them
    assert all("moe_tune" in row.depends_on for row in registry.STAGES if row.warmup)
    # the serve check comes last and depends on every priming stage: its signature is the union of theirs
    check = registry.get("serve_check")
    assert registry.ORDER[-1] == "serve_check" and registry.priming_stages() == registry.ORDER[:-1]
    assert check.depends_on == registry.priming_stages()
    for row in registry.PRIMING_STAGES:
        assert set(row.probed) <= set(check.probed)
    assert check.server and check.warmup and check.switches == ("--enable-metrics",)
    assert "jit_at_serve_time" in contract.ERROR_TYPES


def test_unknown_stage_is_bad_input_naming_the_known_ones():
    with pytest.raises(PrepError) as err:
        signature.probed_fields("bundle_install")
    assert err.value.error_type == "bad_input"
    assert "unknown stage 'bundle_install'" in err.value.message
    assert ", ".join(registry.ORDER) in err.value.message
    with pytest.raises(KeyError):
        registry.get("bundle_install")


def test_help_lists_every_registry_stage_with_its_summary():
    top = cli("--help").stdout
    stage = cli("stage", "--help").stdout
    for row in registry.STAGES:
        first_words = " ".join(row.summary.split()[:3])
        for text in (top, stage):
            assert "  " + row.name + " " in text and first_words in text
    show = cli("argv", "--help").stdout
    assert "(%s)" % ", ".join(argv.SERVER_STAGES) in " ".join(show.split())


def _ctx(run, stage):
    ctx = engine.StageContext(stage, run.model, {"port": run.port, "moe_batch_sizes": [1, 2]}, io.StringIO(), run.env)
    ctx.result = engine.new_result(stage, run.model, {})
    _ptr, data = manifest.load_current(run.pointer)
    ctx.attach_run(data)
    return ctx


@pytest.mark.parametrize("stage", registry.ORDER)
def test_each_runner_supplies_exactly_the_signature_fields_of_its_row(run, stage):
    row = registry.get(stage)
    runner = stages.RUNNERS[stage](_ctx(run, stage))
    inputs = runner.signature_inputs()
    assert sorted(inputs) == sorted(row.signature_inputs())
    fields, _warnings = signature.build(stage, runner.ctx.probe, inputs)
    assert sorted(fields) == sorted(row.signature_fields())
    if row.server:
        assert inputs["server_flags"] == list(row.switches)
        assert [a for a in runner.build_command() if a in row.switches] == list(row.switches)
    for dependency in row.depends_on:
        assert registry.dependency_field(dependency) in inputs


@pytest.mark.parametrize("stage", registry.priming_stages())
def test_each_runner_fills_the_cache_its_row_names(run, stage):
    """Run alone on empty caches, a stage writes its output under its row's cache and its signature under its row's
    records directory (a stage without an on-disk cache leaves only its record)."""
    row = registry.get(stage)
    result = run.stage(stage)
    assert result["status"] == "ok", result["message"]
    assert os.path.exists(run.p(contract.signature_path(stage, run.model)))
    assert contract.signature_path(stage, run.model).startswith(contract.stage_records_dir(stage) + "/")
    if row.cache is None:
        assert result["validation"]["cache_before"] is None and result["validation"]["cache_after"] is None
        return
    cache_dir = run.p(contract.CACHES[row.cache][0])
    stats = caches.dir_stats(cache_dir)
    assert stats["count"] > 1  # more than signature.json
    if stage == "moe_tune":
        tuned = [a["container_path"] for name, a in result["artifacts"].items() if name.startswith("config:")]
        assert tuned and all(p.startswith(contract.CACHES[row.cache][0] + "/") for p in tuned)
    else:
        before = result["validation"]["cache_before"]["count"]
        after = result["validation"]["cache_after"]["count"]
        assert after > before


def test_the_serve_check_proves_after_the_priming_stages_and_records_under_its_row(run):
    """Alone on empty caches the serve check finds JIT (nothing primed); after the priming stages it passes."""
    row = registry.get("serve_check")
    alone = run.stage("serve_check")
    assert alone["status"] == "error" and alone["error_type"] == "jit_at_serve_time" and alone["zero_jit"] is False
    assert not os.path.exists(run.p(contract.signature_path("serve_check", run.model)))
    for stage in registry.priming_stages():
        assert run.stage(stage, mode="rebuild")["status"] == "ok"
    proof = run.stage("serve_check")
    assert proof["status"] == "ok" and proof["zero_jit"] is True, proof["message"]
    assert contract.signature_path("serve_check", run.model).startswith(contract.stage_records_dir(row.name) + "/")
    assert os.path.exists(run.p(contract.signature_path("serve_check", run.model)))

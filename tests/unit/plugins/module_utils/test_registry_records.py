"""The stage registry declares caches and record directories apart (registry.Stage.cache, .records)."""

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, registry
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import bundle

MODEL = "/models/org/m"


def test_no_two_stages_write_the_same_signature_file():
    paths = [contract.signature_path(stage, MODEL) for stage in contract.STAGE_ORDER]
    assert len(set(paths)) == len(paths), paths


def test_the_records_stay_where_they_were():
    """Existing stages keep their records in their cache's directory: a primed host needs no migration."""
    for stage in (row for row in registry.STAGES if row.cache):
        assert contract.stage_records_dir(stage.name) == contract.CACHES[stage.cache][0]
        assert contract.signature_path(stage.name, MODEL) == "%s/%s/signature.json" % (
            contract.CACHES[stage.cache][0], contract.model_key(MODEL))


def test_two_stages_on_one_cache_must_keep_their_records_apart():
    first = registry.Stage("first", cache="sglang", summary="x")
    second = registry.Stage("second", cache="sglang", summary="y")
    with pytest.raises(ValueError, match="'first' and 'second' both keep their records in 'sglang'"):
        registry.check_records((first, second))
    apart = registry.Stage("second", cache="sglang", summary="y", records="second")
    assert registry.check_records((first, apart)) == (first, apart)


def test_a_stage_needs_a_cache_or_a_records_directory():
    with pytest.raises(ValueError, match="no cache and no records directory"):
        registry.Stage("cuda_graph", cache=None, summary="x")


@pytest.fixture
def cacheless(monkeypatch):
    """A CUDA-graph-like warm-up with no on-disk cache, added to the registry's derived tables."""
    row = registry.Stage("graph_example", cache=None, records="graph_example", server=True, switches=("--enable-metrics",),
                         summary="CUDA graph capture warm-up: nothing on disk, its record says it ran")
    registry.check_records(registry.STAGES + (row,))
    monkeypatch.setitem(contract.STAGE_CACHE, row.name, row.cache)
    monkeypatch.setitem(contract.STAGE_RECORDS, row.name, row.records)
    monkeypatch.setattr(contract, "STAGE_ORDER", contract.STAGE_ORDER + (row.name,))
    return row


def test_a_stage_without_an_on_disk_cache_fits(cacheless):
    assert contract.stage_cache_dir("graph_example") is None
    assert contract.stage_records_dir("graph_example") == "/profiles/graph_example"
    assert contract.signature_path("graph_example", MODEL) == "/profiles/graph_example/%s/signature.json" % (
        contract.model_key(MODEL))
    # its records travel with the model's subtree in a bundle, like every stage's
    assert bundle.model_subtree("graph_example/%s/signature.json" % contract.model_key(MODEL)) == (
        "graph_example/" + contract.model_key(MODEL))
    assert len(set(contract.signature_path(stage, MODEL) for stage in contract.STAGE_ORDER)) == len(
        contract.STAGE_ORDER)

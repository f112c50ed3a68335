"""Run ids of container starts: container-run-<UTC yyyymmddThhmmssZ>-<8 hex>."""

import calendar

import pytest


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import runid


def test_run_id_is_utc_timestamp_plus_eight_hex():
    epoch = calendar.timegm((2025, 10, 10, 18, 37, 37, 0, 0, 0))
    assert runid.new_run_id(epoch, "e37a089d") == "container-run-20251010T183737Z-e37a089d"
    assert runid.iso_utc(epoch) == "2025-10-10T18:37:37Z"


def test_run_id_ignores_local_timezone(monkeypatch):
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    epoch = calendar.timegm((2025, 1, 2, 3, 4, 5, 0, 0, 0))
    assert runid.new_run_id(epoch, "00000000").startswith("container-run-20250102T030405Z-")


def test_fresh_run_ids_differ_and_match_the_pattern():
    ids = {runid.new_run_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(runid.is_run_id(i) for i in ids)


@pytest.mark.parametrize("suffix", ["E37A089D", "e37a089", "e37a089dd", "xyz12345"])
def test_bad_suffix_is_refused(suffix):
    with pytest.raises(ValueError):
        runid.new_run_id(0, suffix)


@pytest.mark.parametrize("text", ["", None, "container-run-20251010T183737-e37a089d", "run-20251010T183737Z-e37a089d",
                                  "container-run-20251010T183737Z-e37a089d.json"])
def test_is_run_id_rejects_lookalikes(text):
    assert not runid.is_run_id(text)

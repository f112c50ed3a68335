"""Filter sglang.prep.device_requests: a GPU setting spelled out as Docker device requests."""

import pytest

from ansible_collections.sglang.prep.plugins.filter.device_requests import device_requests


@pytest.mark.parametrize("gpus", [None, "none", "", "0", 0, [], "[]"])
def test_no_gpu_asks_for_nothing(gpus):
    assert device_requests(gpus) == []


@pytest.mark.parametrize("gpus, count, ids", [
    ("all", -1, []), (-1, -1, []), (2, 2, []), ("4", 4, []),
    ("0,1", 0, ["0", "1"]), ([0, " 3"], 0, ["0", "3"]), (["GPU-ab12"], 0, ["GPU-ab12"]), ("GPU-ab12, GPU-cd34", 0, ["GPU-ab12", "GPU-cd34"]),
])
def test_every_spelling_of_a_gpu_setting(gpus, count, ids):
    assert device_requests(gpus) == [{"driver": "nvidia", "count": count, "device_ids": ids, "capabilities": [["gpu"]], "options": {}}]

"""contract.model_path: the one home of the "under /models" check and of the trailing-slash rule."""

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError


@pytest.mark.parametrize("given, taken", [
    ("/models/m", "/models/m"),
    ("/models/m/", "/models/m"),
    ("/models/org/m//", "/models/org/m"),
])
def test_a_model_under_the_models_root_is_taken_without_trailing_slashes(given, taken):
    assert contract.model_path(given) == taken
    assert contract.model_key(given) == contract.model_key(taken)


@pytest.mark.parametrize("given", ["", "/", "/models", "/models/", "/data/m", "models/m", "/models/../etc",
                                   "/modelsx/m", "/models//m"])
def test_a_path_outside_the_models_root_is_refused_with_the_one_message(given):
    with pytest.raises(PrepError) as caught:
        contract.model_path(given)
    assert caught.value.error_type == "model_not_found"
    assert caught.value.message == (
        "model %r is not under /models: give the model's path inside the container, e.g. /models/<name> for "
        "<host root>/models/<name> on the host" % given)


def test_without_a_root_only_the_trailing_slashes_go():
    assert contract.model_path("/tmp/x/models/m/", models_root=None) == "/tmp/x/models/m"
    assert contract.model_path("/", models_root=None) == "/"

"""Integration tier fixtures. pytest.ini (the repository root) puts this folder on sys.path once, so the tests
import its harnesses (docker_util, init_harness, stage_harness, role_harness) by name; so does tests/faults."""

import pytest

from docker_util import ensure_image


@pytest.fixture(scope="module")
def image():
    """The stand-in test image (SGLANG_PREP_TEST_IMAGE), built by scripts/build-images.sh when it is missing."""
    return ensure_image()

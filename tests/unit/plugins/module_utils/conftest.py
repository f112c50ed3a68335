"""Fixtures of the runtime's module_utils tests: a fake container run with the GPU stand-ins (unit_support.runtime)."""

import pytest

from unit_support.runtime import Run


@pytest.fixture
def run(tmp_path):
    """A fake container run under tmp_path."""
    return Run(str(tmp_path))

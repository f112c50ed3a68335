"""Fixtures of the module tests: the recording fake docker CLI (unit_support.modules holds the module runner)."""

import pytest

from unit_support.modules import fake_docker


@pytest.fixture
def docker(tmp_path, monkeypatch):
    """The fake docker CLI: (path, configure(**cfg), calls())."""
    return fake_docker(tmp_path, monkeypatch)

"""Unit tier set-up. pytest.ini (the repository root) puts collections/ (the collection's import root),
tests/standins (the stand-in harness) and tests/unit (unit_support, the helpers below) on sys.path once;
the folders under plugins/ mirror the collection's plugins/ and hold their own conftest.py for their fixtures."""

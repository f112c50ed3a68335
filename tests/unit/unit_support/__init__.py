"""Helpers the unit tests share (tests/unit/conftest.py and the per-folder conftest.py files expose them as fixtures).

The root pytest.ini puts tests/unit on sys.path, so a test imports them as `from unit_support.<module> import ...`;
no test imports another test file.
"""

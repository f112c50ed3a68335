"""Where things are in the repository, for every unit test (one definition, whatever folder the test sits in)."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COLLECTIONS = os.path.join(REPO, "collections")
COLLECTION = os.path.join(COLLECTIONS, "ansible_collections", "sglang", "prep")
# the directory the runtime package sglang_prep lives in (PYTHONPATH of `python3 -m sglang_prep` in a subprocess)
RUNTIME = os.path.join(COLLECTION, "plugins", "module_utils")
STANDINS = os.path.join(REPO, "tests", "standins")


def collections_env(**extra):
    """The environment for a child Python that imports the collection (pytest.ini's pythonpath is this process's)."""
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    env.update(extra)
    return env

"""Path set-up for the module_utils tests: the collection importable as ansible_collections.sglang.prep."""

import os
import sys

COLLECTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "collections")
if os.path.realpath(COLLECTIONS) not in [os.path.realpath(p) for p in sys.path]:
    sys.path.insert(0, os.path.realpath(COLLECTIONS))

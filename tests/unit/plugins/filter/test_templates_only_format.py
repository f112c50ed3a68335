"""The role's templates only format: the data they show is built by filter plugins (unit-tested beside this file), so
no template walks hostvars, accumulates a list or a namespace, or filters and merges data structures."""

import glob
import os
import re

import pytest

ROLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "collections", "ansible_collections",
                     "sglang", "prep", "roles")
TEMPLATES = sorted(glob.glob(os.path.join(ROLES, "*", "templates", "*")))
# building data in Jinja: state across loop iterations, reaching into other hosts, reshaping collections
COMPUTES = re.compile(r"namespace\(|\.append\(|hostvars|combine\(|dict2items|items2dict|selectattr|rejectattr")


def test_there_are_templates_to_check():
    assert len(TEMPLATES) >= 3  # fanout_groups, inspect, prerequisites (the container spec is a filter now)


@pytest.mark.parametrize("path", TEMPLATES, ids=os.path.basename)
def test_a_template_computes_no_data(path):
    with open(path, encoding="utf-8") as handle:
        found = [(number, line.strip()) for number, line in enumerate(handle, 1) if COMPUTES.search(line)]
    assert found == [], "data logic in %s belongs in a filter plugin (plugins/filter/): %s" % (os.path.basename(path), found)

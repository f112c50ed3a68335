"""Every module's attributes as ansible-doc renders them: what they mean from one fragment (sglang.prep._attributes),
a support level for check mode and diff, and what check mode does said somewhere a reader sees it."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from unit_support.paths import COLLECTION, REPO

MODULES = sorted(os.path.basename(path)[:-3] for path in glob.glob(os.path.join(COLLECTION, "plugins", "modules", "*.py")))


def own_doc(name):
    with open(os.path.join(COLLECTION, "plugins", "modules", name + ".py"), encoding="utf-8") as handle:
        return yaml.safe_load(handle.read().split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0])


@pytest.fixture(scope="module")
def rendered():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "collections"))
    shown = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "-t", "module", "--json"]
                           + ["sglang.prep." + name for name in MODULES], env=env, check=True, capture_output=True, text=True)
    return {fqcn.rsplit(".", 1)[1]: doc["doc"] for fqcn, doc in json.loads(shown.stdout).items()}


@pytest.mark.parametrize("name", MODULES)
def test_attributes_mean_what_the_collection_fragment_says(name):
    fragments = own_doc(name)["extends_documentation_fragment"]
    assert "sglang.prep._attributes" in fragments
    # only the .flow attributes come from ansible.builtin; the others' meaning has one home
    assert not [f for f in fragments if f.startswith("ansible.builtin.") and f != "ansible.builtin.action_common_attributes.flow"]


@pytest.mark.parametrize("name", MODULES)
def test_check_mode_and_diff_are_rendered_with_their_support_and_meaning(rendered, name):
    attributes = rendered[name]["attributes"]
    for key in ("check_mode", "diff_mode", "platform"):
        assert attributes[key]["description"] and attributes[key]["support"] in ("full", "partial", "none", "N/A"), key
    assert attributes["platform"]["platforms"] == "posix"
    assert " ".join(rendered[name]["author"]).startswith("Seed 0be3ddc0 maintainers")


@pytest.mark.parametrize("name", MODULES)
def test_what_check_mode_does_is_said(rendered, name):
    doc = rendered[name]
    check = doc["attributes"]["check_mode"]
    said = " ".join(doc["description"] + doc.get("notes", []))
    assert check.get("details") or re.search(r"[Ii]n check mode|changed=false", said), name

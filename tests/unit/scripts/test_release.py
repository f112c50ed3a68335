"""Releases: galaxy.yml's version has its changelog entry, no released fragment is left over, CHANGELOG.rst is
what antsibull-changelog renders from changelogs/changelog.yaml, and scripts/release.sh releases the next version
from the fragments (the way every later version is released)."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

from unit_support.paths import COLLECTION, REPO
BIN = os.path.dirname(sys.executable)
CHANGELOG = os.path.join(BIN, "antsibull-changelog")


def galaxy_version(root):
    with open(os.path.join(root, "galaxy.yml"), encoding="utf-8") as handle:
        return str(yaml.safe_load(handle)["version"])


def releases(root):
    with open(os.path.join(root, "changelogs", "changelog.yaml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle).get("releases") or {}


def fragments(root):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(root, "changelogs", "fragments", "*.y*ml")))


def release_problems(root):
    """What stops ``root`` (a collection) from being released as galaxy.yml's version, as sentences."""
    problems = []
    version = galaxy_version(root)
    known = releases(root)
    if version not in known:
        problems.append("galaxy.yml says %s, but changelogs/changelog.yaml has no release %s: run "
                        "scripts/release.sh %s (antsibull-changelog release) before building the tarball"
                        % (version, version, version))
    with open(os.path.join(root, "plugins", "module_utils", "sglang_prep", "__init__.py"), encoding="utf-8") as handle:
        runtime = re.search(r'^__version__ = "([^"]+)"', handle.read(), re.M).group(1)
    if runtime != version:
        problems.append("galaxy.yml says %s, but the runtime's __version__ (plugins/module_utils/sglang_prep/__init__.py) "
                        "says %s: scripts/release.sh sets both" % (version, runtime))
    released = {name for entry in known.values() for name in entry.get("fragments") or []}
    left_over = sorted(set(fragments(root)) & released)
    if left_over:
        problems.append("fragments already released are left over in changelogs/fragments: %s (delete them)"
                        % ", ".join(left_over))
    return problems


def copy_collection(tmp_path):
    target = tmp_path / "ansible_collections" / "sglang" / "prep"  # where ansible-doc finds it
    shutil.copytree(COLLECTION, str(target), ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "output"))
    return str(target)


def run(argv, cwd, **env):
    full = dict(os.environ, **env)
    return subprocess.run(argv, cwd=cwd, env=full, capture_output=True, text=True, check=False, timeout=120)


def test_galaxy_version_is_released_and_no_fragment_is_left_over():
    assert release_problems(COLLECTION) == []


def test_the_fragments_lint():
    proc = run([CHANGELOG, "lint"], COLLECTION)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_changelog_rst_is_rendered_from_changelog_yaml(tmp_path):
    copy = copy_collection(tmp_path)
    proc = run([CHANGELOG, "generate"], copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(os.path.join(COLLECTION, "CHANGELOG.rst"), encoding="utf-8") as ours, \
            open(os.path.join(copy, "CHANGELOG.rst"), encoding="utf-8") as rendered:
        assert ours.read() == rendered.read(), "CHANGELOG.rst was edited by hand: run antsibull-changelog generate"


def test_a_version_bump_without_a_release_fails_the_check(tmp_path):
    copy = copy_collection(tmp_path)
    with open(os.path.join(copy, "galaxy.yml"), encoding="utf-8") as handle:
        text = handle.read()
    with open(os.path.join(copy, "galaxy.yml"), "w", encoding="utf-8") as handle:
        handle.write(text.replace("version: %s" % galaxy_version(COLLECTION), "version: 99.0.0"))
    changelog, runtime = release_problems(copy)
    assert "galaxy.yml says 99.0.0" in changelog and "scripts/release.sh 99.0.0" in changelog
    assert "the runtime's __version__" in runtime and "says %s" % galaxy_version(COLLECTION) in runtime


def test_a_released_fragment_left_over_fails_the_check(tmp_path):
    copy = copy_collection(tmp_path)
    name = releases(copy)[galaxy_version(copy)]["fragments"][0]
    with open(os.path.join(copy, "changelogs", "fragments", name), "w", encoding="utf-8") as handle:
        handle.write("bugfixes:\n  - prime role - a change.\n")
    (problem,) = release_problems(copy)
    assert name in problem and "left over" in problem


def test_release_script_releases_the_next_version_from_the_fragments(tmp_path):
    copy = copy_collection(tmp_path)
    with open(os.path.join(copy, "changelogs", "fragments", "a-later-change.yml"), "w", encoding="utf-8") as handle:
        handle.write("minor_changes:\n  - prime role - a later change.\n")
    proc = run([os.path.join(REPO, "scripts", "release.sh"), "99.1.0"], REPO, SGLANG_PREP_COLLECTION=copy,
               VENV=os.path.dirname(BIN))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert galaxy_version(copy) == "99.1.0"
    with open(os.path.join(copy, "plugins", "module_utils", "sglang_prep", "__init__.py"), encoding="utf-8") as handle:
        assert '__version__ = "99.1.0"' in handle.read()
    assert "prime role - a later change." in releases(copy)["99.1.0"]["changes"]["minor_changes"]
    assert fragments(copy) == [] and release_problems(copy) == []
    with open(os.path.join(copy, "CHANGELOG.rst"), encoding="utf-8") as handle:
        assert "v99.1.0" in handle.read()


def documented_plugins():
    """{plugin type: [FQCN of each plugin file with its own DOCUMENTATION]} (modules, filters, lookups, ...)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(COLLECTION, "plugins", "*", "*.py"))):
        kind = os.path.basename(os.path.dirname(path))
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if kind == "doc_fragments" or "DOCUMENTATION = " not in text:
            continue
        doc = yaml.safe_load(text.split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0])
        name = doc.get("module") or doc["name"]
        out.setdefault("module" if kind == "modules" else kind, []).append("sglang.prep." + name)
    return out


def test_every_plugin_names_the_galaxy_author():
    """The author of every plugin's documentation as ansible-doc renders it (doc fragments merged: the modules name
    their maintainers through sglang.prep._attributes) is galaxy.yml's."""
    with open(os.path.join(COLLECTION, "galaxy.yml"), encoding="utf-8") as handle:
        (author,) = yaml.safe_load(handle)["authors"]
    name = author.split(" <")[0]
    plugins = documented_plugins()
    assert plugins.get("module") and plugins.get("filter")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "collections"))
    for kind, names in plugins.items():
        shown = subprocess.run([os.path.join(BIN, "ansible-doc"), "-t", kind, "--json"] + names, env=env, check=True,
                               capture_output=True, text=True)
        docs = json.loads(shown.stdout)
        assert sorted(docs) == sorted(names), shown.stderr
        for fqcn, doc in docs.items():
            authors = doc["doc"].get("author")
            authors = [authors] if isinstance(authors, str) else authors or []
            assert [a for a in authors if a.startswith(name + " (@")] and "!UNKNOWN" not in " ".join(authors), fqcn
"""The collection stands alone: its tarball carries the image recipe, the example inventory and the
recommended ansible.cfg, the repository keeps no second copy of them, and the documentation's links resolve."""

import configparser
import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

from unit_support.paths import COLLECTION, REPO
BIN = os.path.dirname(sys.executable)
EXAMPLE_CFG = os.path.join(COLLECTION, "examples", "ansible.cfg")
SHIPPED = ["CHANGELOG.rst", "images/Dockerfile", "images/optional/README.md", "examples/inventory/fleet.example.yml", "examples/ansible.cfg",
           "docs/air-gapped.md", "playbooks/tasks/require_targets.yml", "examples/prometheus/sglang-prep.rules.yml",
           "examples/prometheus/sglang-prep.rules.test.yml", "LICENSE", "meta/execution-environment.yml",
           "meta/ee-bindep.txt", "examples/execution-environment.yml"]


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    """The collection as ansible-galaxy builds it, from a copy with optional image binaries dropped in."""
    work = tmp_path_factory.mktemp("build")
    source = work / "ansible_collections" / "sglang" / "prep"
    shutil.copytree(COLLECTION, str(source), ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "output"))
    for name in ("jaeger", "jaeger-all-in-one", "dcgm-exporter"):
        (source / "images" / "optional" / name).write_bytes(b"\x7fELF not really")
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(work / "out")],
                   cwd=str(source), env=clean_env(), check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    (path,) = glob.glob(str(work / "out" / "sglang-prep-*.tar.gz"))
    with tarfile.open(path) as archive:
        return set(archive.getnames())


@pytest.mark.parametrize("path", SHIPPED)
def test_the_tarball_carries(tarball, path):
    assert path in tarball


def test_optional_image_binaries_are_never_shipped(tarball):
    assert not [n for n in tarball if n.startswith("images/optional/") and n != "images/optional/README.md"]


def test_the_repository_keeps_no_second_copy():
    assert not os.path.exists(os.path.join(REPO, "images"))
    assert not os.path.exists(os.path.join(REPO, "inventory", "fleet.example.yml"))
    with open(os.path.join(REPO, "scripts", "build-images.sh")) as handle:
        script = handle.read()
    assert "IMAGE_DIR=collections/ansible_collections/sglang/prep/images" in script


def test_galaxy_yml_has_no_placeholder():
    with open(os.path.join(COLLECTION, "galaxy.yml")) as handle:
        text = handle.read()
    assert not re.search(r"example\.(invalid|com|org)|TODO|CHANGEME|your[-_ ]", text, re.IGNORECASE), text


def test_the_recommended_ansible_cfg_is_valid_and_sets_what_the_docs_promise():
    proc = subprocess.run([os.path.join(BIN, "ansible-config"), "validate"], env=clean_env(ANSIBLE_CONFIG=EXAMPLE_CFG),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert proc.returncode == 0, proc.stdout
    config = configparser.ConfigParser()
    config.read(EXAMPLE_CFG)
    assert config.getboolean("connection", "pipelining") is True
    assert config.getint("defaults", "forks") >= 20
    assert config.get("defaults", "interpreter_python")
    assert config.get("defaults", "collections_path").split(":")[0] == "./collections"


def settings(text):
    """The [section] and key = value lines of an ini text, comments and blank lines dropped."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(("#", ";"))]


def test_the_runbook_shows_the_shipped_ansible_cfg():
    with open(os.path.join(COLLECTION, "docs", "air-gapped.md")) as handle:
        doc = handle.read()
    block = re.search(r"```ini\n(.*?)```", doc, re.DOTALL).group(1)
    with open(EXAMPLE_CFG) as handle:
        assert settings(block) == settings(handle.read())


MARKDOWN = [os.path.join(REPO, "README.md")] + glob.glob(os.path.join(COLLECTION, "*.md")) + glob.glob(
    os.path.join(COLLECTION, "docs", "*.md")) + glob.glob(os.path.join(COLLECTION, "images", "**", "*.md"), recursive=True)


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: os.path.relpath(p, REPO))
def test_relative_links_resolve(path):
    with open(path) as handle:
        text = handle.read()
    dead = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not os.path.exists(os.path.join(os.path.dirname(path), target.split("#")[0])):
            dead.append(target)
    assert not dead, dead

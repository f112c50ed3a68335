"""AWX/AAP: the example execution environment builds a context with ansible-builder (offline: `create` only
writes files), the collection's meta/execution-environment.yml is what ansible-builder's introspection reads
(the system packages the controller side needs), and the repository's collections/requirements.yml names the
dependencies galaxy.yml declares, with the same ranges."""

import os
import shutil
import subprocess
import sys

import yaml

from unit_support.paths import COLLECTION, REPO
BUILDER = os.path.join(os.path.dirname(sys.executable), "ansible-builder")


def load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def builder(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_proxy") and not k.endswith("_PROXY")}
    proc = subprocess.run([BUILDER] + list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_ansible_builder_creates_the_example_context(tmp_path):
    shutil.copy(os.path.join(COLLECTION, "examples", "execution-environment.yml"), str(tmp_path))
    builder("create", "-f", "execution-environment.yml", "-c", "context", "--output-filename", "Containerfile",
            cwd=str(tmp_path))
    context = tmp_path / "context"
    galaxy = load(str(context / "_build" / "requirements.yml"))
    assert [c["name"] for c in galaxy["collections"]] == ["sglang.prep"]
    recipe = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in recipe and "-r requirements.yml" in recipe
    assert 'ANSIBLE_INSTALL_REFS="ansible-core>=2.19,<2.22 ansible-runner"' in recipe
    # the introspection step is what picks up sglang.prep's meta/execution-environment.yml in the build
    assert "introspect.py introspect" in recipe


def test_the_collection_declares_what_an_ee_needs():
    meta = load(os.path.join(COLLECTION, "meta", "execution-environment.yml"))
    assert meta["version"] == 1
    out = builder("introspect", os.path.join(REPO, "collections"), cwd=REPO)
    deps = yaml.safe_load(out[out.index("---"):])
    names = [line.split()[0] for line in deps["system"]]
    assert {"openssh-clients", "openssh-client", "rsync"} <= set(names)
    assert all(line.endswith("# from collection sglang.prep") for line in deps["system"])


def test_repository_requirements_match_galaxy_dependencies():
    galaxy = load(os.path.join(COLLECTION, "galaxy.yml"))
    requirements = load(os.path.join(REPO, "collections", "requirements.yml"))
    declared = {c["name"]: c["version"] for c in requirements["collections"]}
    assert declared == galaxy["dependencies"]

"""Every command of the READMEs and the collection's docs/*.md runs as written.

The fenced ```bash blocks of README.md, the collection README and docs/*.md are read line by line
(continuation lines joined, comments dropped, placeholders such as <M> filled in, an optional
``[-e model=...]`` tried with and without). Each test is named after the doc and line it checks.

- Every ``ansible-playbook`` line parses: ``--syntax-check`` from the repository root with .venv's
  bin on PATH (what ``source .venv/bin/activate`` gives), with the inventory the line names (the
  documented ``inventory/fleet.yml`` is the collection's example inventory, which the docs copy there).
- The installed collection stands alone: the collection is built and installed into an empty directory with
  the lines of docs/air-gapped.md (its ``/tmp/carry`` a temporary directory), configured as its step 3 says
  (examples/ansible.cfg, inventory/fleet.yml from the example, its hosts edited to the demo host), and every
  line that runs a playbook of the collection by name (``ansible-playbook sglang.prep.<name>``, no ``-i`` or
  ``-i inventory/fleet.yml``) runs unchanged from there, without the checkout's ansible.cfg or collections.
- The lines that can run on the demo host run for real against it: no ``-i`` (this machine) or
  ``-i inventory/demo.yml``, a model given as <M>, and not a line that would change what is primed
  (a prime without ``--check`` is a no-op on the primed demo host and runs too). The demo host is a
  demo of its own (playbooks/demo.yml with its own host user and container name), so a demo host
  someone else uses is never touched. ``--check``, inspect and validate must change nothing on the host
  (its files, outside the services' own TSDBs), and ``--check`` writes no fleet report, even with the
  report switched on. stop.yml runs last. An output sample right after a command's block (a plain
  ``` block) must appear in the real output, but for its ``...`` lines.
- ``docker exec ... python3 -m sglang_prep ...`` lines run in the demo container, except one that
  would re-prime with other settings (``--tp``).
- The other lines: ``source`` names an existing file, ``make`` an existing target, and the repository
  paths a line names exist. Commands that need the network or a GPU host of your own (pip download,
  ansible-galaxy, docker build/load, promtool, http.server) are not run.
"""

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections import namedtuple

import pytest
import yaml

from docker_util import REPO, docker, pinned_image

COLLECTION = os.path.join("collections", "ansible_collections", "sglang", "prep")
DOCS = ["README.md", os.path.join(COLLECTION, "README.md")] + sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, COLLECTION, "docs", "*.md")))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
DEMO_USER = "sglang-docs-it"
DEMO_CONTAINER = "sglang-prep-docs-it"
DEMO_MODEL = "tiny-moe"
DEMO_INVENTORY = "inventory/demo.yml"
EXAMPLE_INVENTORY = os.path.join(REPO, COLLECTION, "examples", "inventory", "fleet.example.yml")
PLACEHOLDERS = {"<M>": DEMO_MODEL, "<name>": DEMO_MODEL, "<container>": DEMO_CONTAINER, "<pattern>": "localhost",
                "<owner>": DEMO_USER}
NOT_RUN = ("pip", "ansible-galaxy", "docker build", "docker load", "promtool", "python3 -m http.server",
           "python3 -m venv", "SGLANG_PREP_DEBIAN_MIRROR", "SGL_E2E_CONTAINER_TESTS", "cd ", "mkdir ", "C=")
RECAP = re.compile(r"^localhost\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)

Line = namedtuple("Line", "doc lineno text argv sample")


# ---------------------------------------------------------------- reading the docs
def bash_lines(doc):
    """(lineno, text, sample) of every command in the doc's ```bash blocks; sample: the plain block right after."""
    with open(os.path.join(REPO, doc), encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    out = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```bash":
            i += 1
            continue
        indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
        i += 1
        block = []
        while i < len(lines) and lines[i].strip() != "```":
            block.append((i + 1, lines[i][len(indent):] if lines[i].startswith(indent) else lines[i]))
            i += 1
        i += 1
        sample = None
        if i < len(lines) and lines[i].strip() == "```":  # an output sample right after the block
            j = i + 1
            sample = []
            while j < len(lines) and lines[j].strip() != "```":
                sample.append(lines[j])
                j += 1
        pending, start = "", None
        for lineno, text in block:
            if start is None:
                start = lineno
            if text.rstrip().endswith("\\"):
                pending += text.rstrip()[:-1] + " "
                continue
            command = (pending + text).strip()
            if command and not command.startswith("#"):
                out.append((start, command, sample))
            pending, start = "", None
    return out


def words(command):
    """The command's words, placeholders filled in, the comment dropped."""
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(placeholder, value)
    try:
        return shlex.split(command, comments=True)
    except ValueError:  # not valid shell (an unclosed quote): test_every_line_is_valid_shell names it
        return [None]


def variants(command):
    """An optional part in brackets ([-e model=...]) is tried without it and with it."""
    match = re.search(r"\s\[(-[^\]]+)\]", command)  # an option in brackets, not a JSON list such as '[1, "25%"]'
    if not match:
        return [command]
    return [command[:match.start()] + command[match.end():], command[:match.start()] + " " + match.group(1) +
            command[match.end():]]


def collect():
    lines = []
    for doc in DOCS:
        for lineno, command, sample in bash_lines(doc):
            for variant in variants(command):
                lines.append(Line(doc, lineno, variant, words(variant), sample))
    return lines


LINES = collect()
PLAYBOOK_LINES = [line for line in LINES if "ansible-playbook" in line.argv[:1]]


def line_id(line):
    return "%s:%d:%s" % (line.doc, line.lineno, line.text[:60])


def where(line, proc=None):
    text = "%s line %d: %s" % (line.doc, line.lineno, line.text)
    if proc is not None:
        output = (proc.stdout or "") + (proc.stderr or "")
        text += "\n(exit %s)\n%s" % (proc.returncode, "\n".join(output.splitlines()[-50:]))
    return text


# ---------------------------------------------------------------- running them
def env(**extra):
    out = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    out.pop("ANSIBLE_CONFIG", None)  # from the repository root, its ansible.cfg is found as a user's shell finds it
    out.update(extra)
    return out


def run(argv, timeout=600, **extra):
    return subprocess.run(argv, cwd=REPO, env=env(**extra), capture_output=True, text=True, timeout=timeout,
                          check=False)


def inventory_arg(argv):
    return argv[argv.index("-i") + 1] if "-i" in argv else None


@pytest.fixture(scope="module")
def fleet_inventory():
    """inventory/fleet.yml as the docs make it: a copy of the collection's example inventory."""
    base = tempfile.mkdtemp(prefix="sglang-prep-docs-")
    path = os.path.join(base, "fleet.yml")
    shutil.copy(EXAMPLE_INVENTORY, path)
    yield path
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("line", LINES, ids=line_id)
def test_every_line_is_valid_shell(line):
    assert line.argv != [None], "an unclosed quote: " + where(line)


def test_the_docs_have_commands_to_check():
    assert len(PLAYBOOK_LINES) > 20 and any(line.doc.endswith("runtime.md") for line in LINES)


@pytest.mark.parametrize("doc", DOCS)
def test_a_doc_with_playbook_commands_says_how_ansible_comes_on_path(doc):
    if not any(line.doc == doc for line in PLAYBOOK_LINES):
        pytest.skip("no ansible-playbook command")
    with open(os.path.join(REPO, doc), encoding="utf-8") as handle:
        text = handle.read()
    assert "bin/activate" in text or ".venv/bin/ansible-playbook" in text, (
        "%s has ansible-playbook commands but does not say to activate a virtualenv (or to call "
        ".venv/bin/ansible-playbook)" % doc)


@pytest.mark.parametrize("line", PLAYBOOK_LINES, ids=line_id)
def test_every_playbook_command_parses(line, fleet_inventory):
    argv = list(line.argv)
    inventory = inventory_arg(argv)
    if inventory and not os.path.exists(os.path.join(REPO, inventory)):
        assert inventory == "inventory/fleet.yml", "an inventory the docs do not create: " + where(line)
        argv[argv.index("-i") + 1] = fleet_inventory
    proc = run(argv + ["--syntax-check"], timeout=120)
    assert proc.returncode == 0, where(line, proc)


@pytest.mark.parametrize("line", [line for line in LINES if line.argv[0] not in ("ansible-playbook", None)], ids=line_id)
def test_every_other_command_names_what_exists(line):
    if line.text.startswith(NOT_RUN) or any(" %s " % word in " %s " % line.text for word in ("pip", "ansible-galaxy")):
        pytest.skip("needs the network or a machine of your own: not run here")
    argv = line.argv
    if argv[0] == "source":
        assert os.path.exists(os.path.join(REPO, argv[1])), where(line)
    elif argv[0] == "make":
        with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as handle:
            targets = re.findall(r"^([a-z][a-z-]*):", handle.read(), re.M)
        assert argv[1] in targets, where(line)
    for word in argv:
        if re.match(r"^(collections|tests|playbooks|scripts)/", word):
            assert glob.glob(os.path.join(REPO, word)), "%s does not exist: %s" % (word, where(line))


# ---------------------------------------------------------------- on the demo host
def by_name(line):
    """A playbook of the installed collection, by its name (ansible-playbook sglang.prep.<name>)."""
    return any(a.startswith("sglang.prep.") for a in line.argv[1:])


def runnable_on_demo(line):
    argv = line.argv
    # the installed collection's project directory has inventory/fleet.yml, edited to the demo host
    inventories = (None, "inventory/fleet.yml") if by_name(line) else (None, DEMO_INVENTORY)
    if inventory_arg(argv) not in inventories or "--limit" in argv:
        return False
    models = [a for a in argv if a.startswith("model=")]
    if models and models != ["model=/models/%s" % DEMO_MODEL]:
        return False  # a model the demo host does not have: parsed only
    return True


DEMO_LINES = [line for line in PLAYBOOK_LINES if runnable_on_demo(line)]
# stop.yml ends the demo host's container: it runs after every other line; before it, serve.yml (its server holds the
# server port, which the lines that run a stage server need)
DEMO_LINES.sort(key=lambda line: (any(a.endswith("stop.yml") or a.endswith(".stop") for a in line.argv),
                                  any(a.endswith("serve.yml") or a.endswith(".serve") for a in line.argv)))
EXEC_LINES = [line for line in LINES if line.argv[:2] == ["docker", "exec"] and "--tp" not in line.argv]


@pytest.fixture(scope="module")
def demo():
    """A demo host of its own, made by the demo playbook: its own host user and container."""
    if os.geteuid() != 0:
        pytest.skip("the demo host for the docs is made as root (its own host user)")
    # the test image under a tag no other checkout's rebuild moves while the lines run
    image = pinned_image()
    # a fresh demo host: nothing left from an earlier run decides what this one sees
    docker("rm", "-f", DEMO_CONTAINER, check=False)
    subprocess.run(["userdel", "--remove", DEMO_USER], capture_output=True, check=False)
    overrides = ["-e", "sglang_prep_demo_user=" + DEMO_USER, "-e", "prime_container_name=" + DEMO_CONTAINER,
                 "-e", "prime_image=" + image]
    # primed, not yet serving: the documented serve lines start the server, after the lines that need the port
    proc = run(["ansible-playbook", "-i", DEMO_INVENTORY, "playbooks/demo.yml", "-e", "sglang_prep_demo_serve=false"]
               + overrides)
    assert proc.returncode == 0 and "Host root /home/%s/sglang-observability, container %s" % (
        DEMO_USER, DEMO_CONTAINER) in " ".join(proc.stdout.split()), proc.stdout[-4000:]
    reports = tempfile.mkdtemp(prefix="sglang-prep-docs-reports-")
    try:
        yield {"overrides": overrides, "root": "/home/%s/sglang-observability" % DEMO_USER, "reports": reports}
    finally:
        docker("rm", "-f", DEMO_CONTAINER, check=False)
        subprocess.run(["userdel", "--remove", DEMO_USER], capture_output=True, check=False)
        shutil.rmtree(reports, ignore_errors=True)


INSTALL_DOC = os.path.join(COLLECTION, "docs", "air-gapped.md")
INSTALL_STEPS = ("cd collections/ansible_collections/sglang/prep", "ansible-galaxy collection build",
                 "ansible-galaxy collection install /tmp/carry/sglang-prep-", "C=", "cp $C/", "mkdir -p inventory")


@pytest.fixture(scope="module")
def installed(demo):
    """The collection built and installed into an empty project directory by the lines of docs/air-gapped.md, and
    configured as it says, with the demo host as the one host of inventory/fleet.yml."""
    with open(os.path.join(REPO, COLLECTION, "galaxy.yml"), encoding="utf-8") as handle:
        version = yaml.safe_load(handle)["version"]
    carry, project = tempfile.mkdtemp(prefix="sglang-prep-carry-"), tempfile.mkdtemp(prefix="sglang-prep-project-")
    steps = [command for _lineno, command, _sample in bash_lines(INSTALL_DOC) if command.startswith(INSTALL_STEPS)]
    assert len(steps) == len(INSTALL_STEPS), "docs/air-gapped.md no longer has the steps %s: %s" % (INSTALL_STEPS, steps)
    build, install = steps[:2], steps[2:]
    script = ["set -e", "cd %s" % shlex.quote(REPO)] + build + ["cd %s" % shlex.quote(project)] + install
    script = "\n".join(script).replace("/tmp/carry", carry).replace("<version>", version)
    outside = env()
    outside.pop("ANSIBLE_COLLECTIONS_PATH", None)
    proc = subprocess.run(["bash", "-c", script], cwd=project, env=outside, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, "the install steps of %s failed:\n%s\n%s%s" % (INSTALL_DOC, script, proc.stdout,
                                                                             proc.stderr)
    # "then edit the hosts": the demo host, with the demo's settings
    with open(os.path.join(REPO, DEMO_INVENTORY), encoding="utf-8") as handle:
        demo_host = yaml.safe_load(handle)["all"]["children"]["sglang_nodes"]["hosts"]["localhost"]
    overrides = dict(a.split("=", 1) for a in demo["overrides"] if a != "-e")
    with open(os.path.join(project, "inventory", "fleet.yml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump({"sglang_nodes": {"hosts": {"localhost": dict(demo_host, **overrides)}}}, handle)
    listed = subprocess.run(["ansible-galaxy", "collection", "list", "sglang.prep"], cwd=project, env=outside,
                            capture_output=True, text=True, check=False).stdout
    assert os.path.join(project, "collections", "ansible_collections") in listed and version in listed, listed
    try:
        yield {"project": project, "env": outside}
    finally:
        shutil.rmtree(carry, ignore_errors=True)
        shutil.rmtree(project, ignore_errors=True)


def host_files(root):
    """What the host root holds (path -> size, mtime), but the services' own storage, which changes as they run."""
    out = {}
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(top, d) not in (os.path.join(root, "telemetry", "prometheus"),
                                                                   os.path.join(root, "telemetry", "jaeger"))]
        for name in files:
            st = os.lstat(os.path.join(top, name))
            out[os.path.join(top, name)] = (st.st_size, st.st_mtime_ns)
    return out


def changes_nothing(line):
    """--check, inspect, validate and preflight change nothing; validate with prime_serve_check=rebuild runs the zero-JIT
    check again on purpose (it records that stage), so it is not held to that."""
    argv = line.argv
    if "prime_serve_check=rebuild" in argv:
        return False
    return "--check" in argv or any(a.endswith(("inspect.yml", "validate.yml", "preflight.yml", ".inspect", ".validate",
                                                ".preflight")) for a in argv)


def assert_sample(line, output):
    """Every line of the output sample that follows the command's block, but for its '...' lines, is in the output."""
    seen = [text.strip() for text in output.splitlines()]
    for expected in line.sample or []:
        expected = expected.strip()
        if expected and "..." not in expected:
            assert any(expected in text for text in seen), "sample line %r is not in the output of %s\n%s" % (
                expected, where(line), "\n".join(output.splitlines()[-80:]))


@pytest.mark.parametrize("line", EXEC_LINES, ids=line_id)
def test_the_runtime_command_runs_in_the_demo_container(line, demo):
    # (before the playbooks: stop.yml, the last of them, ends the container)
    proc = subprocess.run(line.argv, capture_output=True, text=True, timeout=300, check=False)
    last = [text for text in proc.stdout.splitlines() if text.startswith("RESULT ")]
    assert proc.returncode == 0 and last, where(line, proc)
    result = json.loads(last[-1][len("RESULT "):])
    # skipped: deep_gemm on the bf16 demo model, which SGLang never runs DeepGEMM for (the message says so)
    assert result.get("status", "ok") in ("ok", "noop", "would_run", "changed", "skipped"), where(line, proc)


@pytest.mark.parametrize("line", DEMO_LINES, ids=line_id)
def test_the_command_runs_on_the_demo_host(line, demo, request):
    argv = list(line.argv)
    extra = {}
    if by_name(line):  # as written, from the installed collection's project directory
        project = request.getfixturevalue("installed")["project"]
        reports = os.path.join(project, "reports")
        cwd, base_env = project, request.getfixturevalue("installed")["env"]
    else:
        if inventory_arg(argv) is None:
            argv[1:1] = ["-i", DEMO_INVENTORY]
        argv += demo["overrides"]
        reports = demo["reports"]
        extra["SGLANG_PREP_REPORT_DIR"] = reports
        cwd, base_env = REPO, env()
    if "--check" in argv:
        argv += ["-e", "sglang_prep_fleet_report=true"]  # a --check run must not write one even then
    if line.sample:
        extra["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"  # the samples show Ansible's default result format
    reports_before = sorted(os.listdir(reports)) if os.path.isdir(reports) else []
    before = host_files(demo["root"])
    proc = subprocess.run(argv, cwd=cwd, env=dict(base_env, **extra), capture_output=True, text=True, timeout=600,
                          check=False)
    recap = RECAP.search(proc.stdout)
    assert proc.returncode == 0 and recap and recap.group(3) == "0", where(line, proc)
    if changes_nothing(line):
        assert host_files(demo["root"]) == before, "it changed the host: " + where(line, proc)
        reports_after = sorted(os.listdir(reports)) if os.path.isdir(reports) else []
        assert reports_after == reports_before, "it wrote a fleet report: " + where(line, proc)
    if "prime.yml" in " ".join(argv) and "--check" not in argv:
        assert recap.group(1) == "0", "a prime of the primed demo host is a no-op: " + where(line, proc)
    assert_sample(line, proc.stdout)

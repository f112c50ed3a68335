"""`python3 -m sglang_prep` keeps its compiled modules between runs, although the container mounts the package
read-only: every docker exec of the runtime (a plan, a stage check, a stage run) would otherwise compile all its
modules again. The cache is one directory per deployed content (the digest of MANIFEST.sha256), of the running user
alone: code that changed never runs from an old cache, and a directory someone else owns is not used."""

import glob
import hashlib
import os
import shutil
import subprocess
import sys

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import __main__ as entry

PACKAGE = os.path.dirname(os.path.abspath(entry.__file__))


def deployed(tmp_path, manifest=b"0000  contract.py\n"):
    """A copy of the package as the role deploys it (with its manifest), read-only like the container's mount."""
    root = tmp_path / "runtime"
    shutil.copytree(PACKAGE, root / "sglang_prep", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "sglang_prep" / entry.MANIFEST_NAME).write_bytes(manifest)
    for path, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chmod(os.path.join(path, name), 0o555 if name in dirs else 0o444)
    return root


def run_runtime(root, tmp_dir):
    env = dict(os.environ, TMPDIR=str(tmp_dir), PYTHONPATH=str(root))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    return subprocess.run([sys.executable, "-m", "sglang_prep", "--help"], cwd=str(root), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)


def test_a_run_compiles_into_the_cache_of_this_content_and_the_next_run_reads_it(tmp_path):
    root = deployed(tmp_path)
    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    first = run_runtime(root, tmp_dir)
    assert first.returncode == 0, first.stderr
    digest = hashlib.sha256((root / "sglang_prep" / entry.MANIFEST_NAME).read_bytes()).hexdigest()[:16]
    cache = tmp_dir / ("sglang-prep-pycache-%d" % os.getuid())
    assert oct(cache.stat().st_mode & 0o777) == oct(0o700)
    compiled = glob.glob(str(cache / digest / "**" / "container" / "cli.*.pyc"), recursive=True)
    assert compiled, "the container program's modules were not compiled into %s" % cache
    # (only the package's own __init__ is imported before the cache is set)
    assert not (root / "sglang_prep" / "container" / "__pycache__").exists(), "the container program compiled in place"
    stamp = os.stat(compiled[0]).st_mtime_ns
    second = run_runtime(root, tmp_dir)
    assert second.returncode == 0 and second.stdout == first.stdout
    assert os.stat(compiled[0]).st_mtime_ns == stamp, "the second run compiled again instead of reading the cache"


def test_other_content_gets_another_cache(tmp_path):
    one = entry.bytecode_cache_dir(str(deployed(tmp_path / "a", b"1111  contract.py\n") / "sglang_prep"), str(tmp_path))
    two = entry.bytecode_cache_dir(str(deployed(tmp_path / "b", b"2222  contract.py\n") / "sglang_prep"), str(tmp_path))
    assert one and two and one != two
    assert os.path.dirname(one) == os.path.dirname(two)


def test_no_cache_without_a_manifest(tmp_path):
    assert entry.bytecode_cache_dir(str(tmp_path), str(tmp_path)) is None


def test_a_cache_directory_others_can_write_or_that_is_a_link_is_not_used(tmp_path):
    package = str(deployed(tmp_path / "pkg") / "sglang_prep")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / ("sglang-prep-pycache-%d" % os.getuid())).mkdir(mode=0o777)
    os.chmod(shared / ("sglang-prep-pycache-%d" % os.getuid()), 0o777)
    assert entry.bytecode_cache_dir(package, str(shared)) is None
    linked = tmp_path / "linked"
    linked.mkdir()
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    os.symlink(tmp_path / "elsewhere", linked / ("sglang-prep-pycache-%d" % os.getuid()))
    assert entry.bytecode_cache_dir(package, str(linked)) is None
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    assert entry.bytecode_cache_dir(package, str(foreign), uid=os.getuid() + 1) is None

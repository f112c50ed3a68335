"""sglang_host_info (formerly sglang_host_info): the prime role's one look at a host before it changes anything.

Who connects, who the host user is, the host root and the model directory two levels deep (as
ansible.builtin.find with depth 2 lists them) and the env file, on a real temporary file tree.
"""

import hashlib
import json
import os
import pwd

import pytest

from ansible_collections.sglang.prep.plugins.modules import sglang_host_info
from unit_support.modules import Case, cases, run_module

ME = pwd.getpwuid(os.getuid())
SECRETS = b"HF_TOKEN=hf_secret\n"


def run(capsys, **args):
    return run_module(sglang_host_info, args, capsys)


def tree(tmp_path):
    root = tmp_path / "root"
    for rel in ("telemetry/container_runs", "profiles/triton", "models/org/m/sub", "runtime/sglang_prep/container"):
        (root / rel).mkdir(parents=True)
    (root / "models" / "org" / "m" / "config.json").write_text("{}")
    (root / "telemetry" / "container_runs" / "deep.json").write_text("{}")
    (root / "profiles" / "stale").symlink_to("/etc")
    return root


def paths(result):
    return {e["path"] for e in result["entries"]}


@cases(
    Case("lists the host root two levels deep and the model directory",
         {"host_user": ME.pw_name, "host_root": "{root}//", "model": "org/m"},
         result={"changed": False, "host_root": "{root}", "model_dir": "{root}/models/org/m"},  # trailing slashes dropped
         listed=["telemetry", "telemetry/container_runs", "runtime/sglang_prep", "models/org/m/config.json",
                 "models/org/m/sub"],
         not_listed=["telemetry/container_runs/deep.json"]),  # three levels below the host root
    Case("a missing host root is null and lists nothing", {"host_user": ME.pw_name, "host_root": "{tmp}/absent"},
         result={"root": None, "entries": []}),
    Case("the default host root is in the host user's home", {"host_user": ME.pw_name},
         result={"host_root": os.path.join(ME.pw_dir, "sglang-observability"),
                 "host_user": {"name": ME.pw_name, "uid": ME.pw_uid, "gid": ME.pw_gid, "home": ME.pw_dir, "found": True},
                 "connected_user": {"uid": os.getuid()}}),
    Case("an unknown host user is not found", {"host_user": "no-such-user-sglang", "host_root": "{tmp}"},
         result={"host_user": {"found": False, "uid": None}}),
    Case("the env file is looked at, never returned",
         {"host_user": ME.pw_name, "host_root": "{tmp}", "env_file": "{tmp}/secrets.env"},
         result={"env_file": {"isreg": True, "sha256": hashlib.sha256(SECRETS).hexdigest()}}, never="hf_secret"),
    Case("an env file that is a directory is not a regular file",
         {"host_user": ME.pw_name, "host_root": "{tmp}", "env_file": "{tmp}"}, result={"env_file": {"isreg": False}}),
)
def test_host_facts(case, capsys, tmp_path):
    root = tree(tmp_path)
    (tmp_path / "secrets.env").write_bytes(SECRETS)
    result = case.check(sglang_host_info, capsys, root=root, tmp=tmp_path)
    found = paths(result)
    assert {str(root / rel) for rel in case.more.get("listed", [])} <= found
    assert not {str(root / rel) for rel in case.more.get("not_listed", [])} & found
    assert len(found) == len(result["entries"])  # each path once
    assert case.more.get("never", "\0") not in json.dumps(result)


def test_entries_carry_what_the_ownership_check_reads(tmp_path, capsys):
    root = tree(tmp_path)
    os.chmod(root / "profiles", 0o555)
    _code, result = run(capsys, host_user=ME.pw_name, host_root=str(root))
    by_path = {e["path"]: e for e in result["entries"]}
    profiles = by_path[str(root / "profiles")]
    assert profiles["isdir"] and not profiles["islnk"] and profiles["uid"] == os.getuid()
    assert profiles["mode"] == "0555" and profiles["wusr"] is False and profiles["xusr"] is True
    assert profiles["pw_name"] == ME.pw_name
    link = by_path[str(root / "profiles" / "stale")]
    assert link["islnk"] and not link["isdir"]  # described as itself; what it points to is beside it
    assert link["lnk_target"] == "/etc" and link["target"]["uid"] == 0 and link["target"]["isdir"]
    assert result["root"]["path"] == str(root) and result["root"]["isdir"]


def test_an_unnamed_host_user_is_the_connecting_one_or_sudo_user(capsys, monkeypatch):
    monkeypatch.delenv("SUDO_USER", raising=False)
    _code, result = run(capsys)
    expected = "" if os.getuid() == 0 else ME.pw_name  # root must name the host user
    assert result["host_user"]["name"] == expected
    if os.getuid() == 0:
        monkeypatch.setenv("SUDO_USER", "nobody")
        _code, result = run(capsys)
        assert result["host_user"]["name"] == "nobody" and result["host_user"]["found"]


def test_a_symlinked_host_directory_is_followed_and_its_target_described(tmp_path, capsys):
    root = tree(tmp_path)
    elsewhere = tmp_path / "elsewhere-profiles"
    elsewhere.mkdir()
    (elsewhere / "triton").mkdir()
    os.rename(root / "profiles", tmp_path / "old-profiles")
    (root / "profiles").symlink_to(elsewhere)
    (root / "telemetry" / "gone").symlink_to(tmp_path / "nothing-here")
    _code, result = run(capsys, host_user=ME.pw_name, host_root=str(root))
    by_path = {e["path"]: e for e in result["entries"]}
    profiles = by_path[str(root / "profiles")]
    assert profiles["islnk"] and profiles["lnk_source"] == str(elsewhere) and profiles["lnk_target"] == str(elsewhere)
    assert profiles["target"]["uid"] == os.getuid() and profiles["target"]["isdir"]
    assert by_path[str(root / "profiles" / "triton")]["isdir"]  # listed below the link
    assert by_path[str(root / "telemetry" / "gone")]["target"] is None  # leads nowhere
    (elsewhere / "loop").symlink_to(root)  # a link back up is not followed again
    _code, result = run(capsys, host_user=ME.pw_name, host_root=str(root))
    assert len(result["entries"]) == len({e["path"] for e in result["entries"]})


@pytest.mark.parametrize("make, container_path, problem", [
    (lambda m, t: (m / "alias").symlink_to("org/m"), "/models/org/m", None),
    (lambda m, t: (m / "alias").symlink_to("/models/org/m"), "/models/org/m", None),
    (lambda m, t: (m / "alias").symlink_to(m / "org" / "m"), None, "absolute link"),
    (lambda m, t: (m / "alias").symlink_to(t), None, "outside the models root"),
    (lambda m, t: (m / "alias").symlink_to("../../outside"), None, "above the models root"),
    (lambda m, t: (m / "alias").symlink_to("org/missing"), None, "does not exist"),
])
def test_a_symlinked_model_directory_is_resolved_as_the_container_resolves_it(tmp_path, capsys, make, container_path,
                                                                               problem):
    root = tree(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    make(root / "models", outside)
    _code, result = run(capsys, host_user=ME.pw_name, host_root=str(root), model="alias")
    link = result["model_link"]
    assert link["link"] == str(root / "models" / "alias") and link["container_path"] == container_path
    if problem:
        assert problem in link["problem"]
    else:
        assert link["problem"] is None
        assert str(root / "models" / "alias" / "config.json") in paths(result)
    _code, plain = run(capsys, host_user=ME.pw_name, host_root=str(root), model="org/m")
    assert plain["model_link"] is None


def test_the_deployed_runtime_is_checked_against_its_manifest(tmp_path, capsys):
    root = tmp_path / "root"
    package = root / "runtime" / "sglang_prep"
    (package / "container").mkdir(parents=True)
    files = {"__init__.py": b"", "container/engine.py": b"print('engine')\n"}
    for rel, data in files.items():
        (package / rel).write_bytes(data)
    (package / "MANIFEST.sha256").write_text("".join(
        "%s  %s\n" % (hashlib.sha256(data).hexdigest(), rel) for rel, data in sorted(files.items())))
    (package / "container" / "__pycache__").mkdir()
    (package / "container" / "__pycache__" / "engine.cpython-312.pyc").write_bytes(b"x")  # bytecode is not the code
    _code, result = run(capsys, host_user=ME.pw_name, host_root=str(root), runtime_package="sglang_prep")
    check = result["runtime"]
    assert check["present"] and check["problem"] is None
    assert check["manifest_sha256"] == hashlib.sha256((package / "MANIFEST.sha256").read_bytes()).hexdigest()
    assert check["modified"] == check["missing"] == check["added"] == []
    with open(package / "container" / "engine.py", "a") as handle:
        handle.write("import os  # appended on the host\n")
    (package / "__init__.py").unlink()
    (package / "sitecustomize.py").write_text("")
    _code, result = run(capsys, host_user=ME.pw_name, host_root=str(root), runtime_package="sglang_prep")
    check = result["runtime"]
    assert check["modified"] == ["container/engine.py"] and check["missing"] == ["__init__.py"]
    assert check["added"] == ["sitecustomize.py"]
    (package / "MANIFEST.sha256").write_text("garbage\n")
    _code, result = run(capsys, host_user=ME.pw_name, host_root=str(root), runtime_package="sglang_prep")
    assert "MANIFEST.sha256" in result["runtime"]["problem"]
    _code, result = run(capsys, host_user=ME.pw_name, host_root=str(root))
    assert "runtime" not in result

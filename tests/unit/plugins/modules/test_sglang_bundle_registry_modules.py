"""sglang_bundle_publish and sglang_bundle_pull: bad input is refused before anything runs, failures are classified,
and the registry password reaches no command line and no result (a fake docker CLI records its argv and stdin)."""

import json
import os
import stat

import pytest


from ansible.module_utils.testing import patch_module_args
from ansible_collections.sglang.prep.plugins.modules import sglang_bundle_publish, sglang_bundle_pull

SECRET = "pa55-w0rd-never-shown"
FAKE = r"""#!/usr/bin/env python3
import json, os, sys
log = os.environ["FAKE_DOCKER_LOG"]
stdin = sys.stdin.read() if "--password-stdin" in sys.argv else ""
with open(log, "a") as handle:
    handle.write(json.dumps({"argv": sys.argv[1:], "stdin": stdin}) + "\n")
mode = os.environ.get("FAKE_DOCKER_MODE", "")
if "login" in sys.argv and mode == "bad_login":
    # a registry that echoes what it was given, to prove the module hides it
    sys.stderr.write("Error response from daemon: login attempt failed with status: 401 Unauthorized (%s)\n" % stdin.strip())
    sys.exit(1)
if "pull" in sys.argv and mode == "absent":
    sys.stderr.write("Error response from daemon: manifest for x not found: manifest unknown: manifest unknown\n")
    sys.exit(1)
if "pull" in sys.argv and mode == "down":
    sys.stderr.write("Error response from daemon: Get \"https://r/v2/\": dial tcp 10.9.9.9:443: connect: connection refused\n")
    sys.exit(1)
sys.exit(0)
"""


@pytest.fixture
def docker(tmp_path, monkeypatch):
    path = tmp_path / "docker"
    path.write_text(FAKE)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "docker.log"
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return str(path), calls, monkeypatch


def run(module, args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            module.main()
    return info.value.code, json.loads(capsys.readouterr().out)


def pull_args(docker_cli, **extra):
    return dict(dict(registry="r.example/caches", model="/models/tiny-moe", group_key="ab" * 8, dest="/nonexistent/b",
                     docker_cli=docker_cli), **extra)


@pytest.mark.parametrize("bad", [{"registry": "https://r.example/caches"}, {"group_key": "../x"},
                                 {"registry_username": "u"}])
def test_pull_refuses_bad_input_before_running_docker(docker, capsys, bad):
    cli, calls, _mp = docker
    rc, out = run(sglang_bundle_pull, pull_args(cli, **bad), capsys)
    assert rc == 1 and out["failed"]
    assert calls() == []


def test_pull_absent_is_not_a_failure(docker, capsys):
    cli, calls, mp = docker
    mp.setenv("FAKE_DOCKER_MODE", "absent")
    rc, out = run(sglang_bundle_pull, pull_args(cli), capsys)
    assert rc == 0 and out["status"] == "absent" and out["tag"] == "tiny-moe-b3-g" + "ab" * 8 and not out["changed"]


def test_pull_unreachable_registry_is_classified(docker, capsys):
    cli, _calls, mp = docker
    mp.setenv("FAKE_DOCKER_MODE", "down")
    rc, out = run(sglang_bundle_pull, pull_args(cli), capsys)
    assert rc == 1 and out["error_type"] == "registry_unavailable"


def test_password_goes_by_stdin_into_a_private_config_and_is_never_shown(docker, capsys):
    cli, calls, mp = docker
    mp.setenv("FAKE_DOCKER_MODE", "bad_login")
    rc, out = run(sglang_bundle_pull, pull_args(cli, registry_username="u", registry_password=SECRET), capsys)
    assert rc == 1 and out["error_type"] == "registry_auth"
    assert SECRET not in json.dumps(out)
    login = calls()[0]
    assert SECRET not in " ".join(login["argv"]) and login["stdin"].strip() == SECRET
    config = login["argv"][login["argv"].index("--config") + 1]
    assert not os.path.exists(config)  # the private config directory is gone


def test_publish_needs_a_packed_bundle_with_its_manifest(docker, capsys, tmp_path):
    cli, calls, _mp = docker
    rc, out = run(sglang_bundle_publish, dict(registry="r.example/caches", bundle=str(tmp_path / ("a" * 64 + ".tar.gz")),
                                              docker_cli=cli), capsys)
    assert rc == 1 and out["error_type"] == "bad_input" and "state=packed" in out["msg"]
    assert calls() == []

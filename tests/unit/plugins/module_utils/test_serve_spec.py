"""serve-spec's hand-off: one docker run line, one compose service and one systemd unit, rendered from the spec; the
examples of docs/usage.md are these renderings of one example spec, so the docs show what the command prints."""

import json
import os
import re
import shlex

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import argv as argv_mod
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import serve

from unit_support.paths import REPO

USAGE = os.path.join(REPO, "collections", "ansible_collections", "sglang", "prep", "docs", "usage.md")
HOME = "/home/alice/sglang-observability"


def example_spec():
    """What serve-spec prints on a host of alice (uid 1001) primed for /models/Qwen3-30B-A3B (the docs' example)."""
    argv = argv_mod.server_argv("serve_check", "/models/Qwen3-30B-A3B")
    env = argv_mod.server_env({}, "serve_check")
    mounts = [{"type": "bind", "source": "%s/%s" % (HOME, name), "target": target, "read_only": False}
              for name, target in sorted(contract.HOST_SUBDIRS.items())]
    return {"model": "/models/Qwen3-30B-A3B", "image": "sglang-prep:v0.5.23", "argv": argv, "port": 30000,
            "env": dict([(k, env[k]) for k in serve.SETTINGS_ENV if k in env] + [("HOME", serve.HOME)]), "mounts": mounts, "user": "1001:1001",
            "settings_digest": "0123456789abcdef"}


def doc_block(title):
    """The fenced block that follows the line '<!-- serve-spec: <title> -->' in docs/usage.md."""
    text = open(USAGE, encoding="utf-8").read()
    match = re.search(r"<!-- serve-spec: %s -->\n```[a-z]*\n(.*?)\n```" % re.escape(title), text, re.S)
    assert match, "docs/usage.md has no serve-spec %s example" % title
    return match.group(1)


@pytest.mark.parametrize("fmt", ["docker-run", "compose", "systemd"])
def test_the_docs_show_what_serve_spec_renders(fmt):
    rendered = serve.render(example_spec(), fmt)
    assert doc_block(fmt) == rendered, "regenerate the %s example of docs/usage.md:\n%s" % (fmt, rendered)


def test_the_docker_run_line_starts_the_primed_argv_with_every_cache_variable_and_mount():
    spec = example_spec()
    args = shlex.split(serve.render(spec, "docker-run"))
    image_at = args.index(spec["image"])
    assert args[image_at + 1:] == spec["argv"][1:] and args[image_at - 1] == spec["argv"][0]
    envs = [args[i + 1] for i, a in enumerate(args) if a == "-e"]
    for name, (path, variable) in contract.CACHES.items():
        assert "%s=%s" % (variable, path) in envs, name
    assert "SGLANG_CRASH_ON_JIT_COMPILE=1" in envs
    volumes = [args[i + 1] for i, a in enumerate(args) if a == "-v"]
    assert "%s/profiles:%s" % (HOME, contract.PROFILES_ROOT) in volumes
    assert args[args.index("--user") + 1] == "1001:1001" and "--enable-metrics" in args


def test_the_compose_service_is_the_same_server():
    service = json.loads(serve.render(example_spec(), "compose"))["services"][serve.SERVICE_NAME]
    assert service["entrypoint"] + service["command"] == example_spec()["argv"]
    assert service["environment"] == example_spec()["env"]


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError):
        serve.render(example_spec(), "helm")

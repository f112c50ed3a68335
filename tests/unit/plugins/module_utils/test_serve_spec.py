"""serve-spec's hand-off: one docker run line, one compose service and one systemd unit, rendered from the spec; the
examples of docs/usage.md are these renderings of what serve.spec returns for the docs' example host, so the docs
show what the command prints (tests/integration/test_serve_spec_docs.py checks the docker run line against
serve-spec on a primed host, and runs it)."""

import json
import os
import re
import shlex

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import serve

from unit_support.paths import REPO

USAGE = os.path.join(REPO, "collections", "ansible_collections", "sglang", "prep", "docs", "usage.md")
HOME = "/home/alice/sglang-observability"


def example_spec(run):
    """What serve-spec prints on a host of alice (uid 1001) primed for /models/Qwen3-30B-A3B (the docs' example):
    serve.spec itself on the fake run, its host roots, user and image those of the example; the fake run's own
    paths (its /profiles, the model, the port) then written as the container sees them."""
    options, env = run.options({})
    env.update({contract.ENV_UID: "1001", contract.ENV_GID: "1001"})
    for name, variable in contract.ENV_HOST_ROOTS.items():
        env[variable] = "%s/%s" % (HOME, name)
    spec = serve.spec(run.model, options, env)
    text = json.dumps(spec).replace(run.model, "/models/Qwen3-30B-A3B").replace(run.prof, contract.PROFILES_ROOT)
    spec = json.loads(text)
    spec["argv"][spec["argv"].index("--port") + 1] = "30000"
    spec.update(image="sglang-prep:v0.5.23", port=30000, settings_digest="0123456789abcdef")
    return spec


def doc_block(title):
    """The fenced block that follows the line '<!-- serve-spec: <title> -->' in docs/usage.md."""
    text = open(USAGE, encoding="utf-8").read()
    match = re.search(r"<!-- serve-spec: %s -->\n```[a-z]*\n(.*?)\n```" % re.escape(title), text, re.S)
    assert match, "docs/usage.md has no serve-spec %s example" % title
    return match.group(1)


@pytest.mark.parametrize("fmt", ["docker-run", "compose", "systemd"])
def test_the_docs_show_what_serve_spec_renders(fmt, run):
    rendered = serve.render(example_spec(run), fmt)
    assert doc_block(fmt) == rendered, "regenerate the %s example of docs/usage.md:\n%s" % (fmt, rendered)


def test_the_docker_run_line_starts_the_primed_argv_with_every_cache_variable_and_mount(run):
    spec = example_spec(run)
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


def test_the_compose_service_is_the_same_server(run):
    spec = example_spec(run)
    service = json.loads(serve.render(spec, "compose"))["services"][serve.SERVICE_NAME]
    assert service["entrypoint"] + service["command"] == spec["argv"]
    assert service["environment"] == spec["env"]


def test_an_unknown_format_is_refused(run):
    with pytest.raises(ValueError):
        serve.render(example_spec(run), "helm")

"""Filter sglang.prep.container_env: the prime container's environment, named as the container's init reads it."""

import json

from ansible_collections.sglang.prep.plugins.filter.container_env import container_env
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract


def settings(**extra):
    base = {"uid": 1000, "gid": "1000", "dirs": {"telemetry": "/h/telemetry", "profiles": "/h/profiles", "models": "/h/models",
                                                 "huggingface": "/h/huggingface"},
            "image": "img:1", "listen": "127.0.0.1", "server_port": 30000, "keep_runs": 10,
            "services": ["prometheus", "node_exporter"], "ports": {"prometheus": 9090, "node_exporter": 9100},
            "git_revision": "", "extra_env": {"HF_HUB_OFFLINE": 1}}
    base.update(extra)
    return base


def test_each_setting_is_the_variable_init_reads_and_a_string():
    env = container_env(settings())
    assert env[contract.ENV_UID] == "1000" and env[contract.ENV_GID] == "1000"
    assert env[contract.ENV_HOST_ROOTS["profiles"]] == "/h/profiles"
    assert env[contract.ENV_SERVER_PORT] == "30000" and env[contract.ENV_TELEMETRY_KEEP_RUNS] == "10"
    assert env[contract.ENV_TELEMETRY_SERVICES] == "prometheus,node_exporter"
    assert json.loads(env[contract.ENV_TELEMETRY_PORTS]) == {"prometheus": 9090, "node_exporter": 9100}
    assert contract.ENV_GIT_REVISION not in env
    assert env["HF_HUB_OFFLINE"] == "1"
    assert all(isinstance(value, str) for value in env.values())


def test_no_service_is_none_and_a_git_revision_is_passed():
    env = container_env(settings(services=[], git_revision="abc123"))
    assert env[contract.ENV_TELEMETRY_SERVICES] == "none" and env[contract.ENV_GIT_REVISION] == "abc123"

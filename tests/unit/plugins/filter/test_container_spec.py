"""Filter sglang.prep.container_spec: the prime container's settings and the digest it carries as a label.

The digest is what a re-prime compares with the running container's label: when it changes for the same settings,
every primed container is recreated on the next prime. The expected digests below were computed by the role's former
Jinja template (templates/container_spec.yml.j2 | from_yaml | to_json(sort_keys=true), a space, the env file's digest,
hash('sha256')), which this filter replaces: an upgrade must not restart containers whose settings did not change."""

from ansible_collections.sglang.prep.plugins.filter.container_spec import container_spec
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract

ROOT = "/home/u/sglang-observability"


def settings(**extra):
    """The role's defaults (defaults/main.yml) on a host root of /home/u, uid 1000, gid 1001."""
    base = {"image": "sglang-prep:latest", "root": ROOT, "uid": 1000, "gid": 1001,
            "dirs": dict((name, ROOT + "/" + name) for name in contract.HOST_SUBDIRS), "runtime_dir": ROOT + "/runtime",
            "env_file": "", "env_file_digest": "abc", "network_mode": "host", "ipc_mode": "host", "shm_size": "",
            "cap_add": ["SYS_ADMIN"], "stop_timeout": 30, "published_ports": [], "listen": "127.0.0.1",
            "server_port": 30000, "keep_runs": 10, "services": list(contract.TELEMETRY_SERVICES),
            "ports": dict(contract.SERVICE_PORTS), "git_revision": "", "extra_env": {}, "textfile_dir": "", "gpus": "all"}
    base.update(extra)
    return base


def test_the_defaults_keep_the_digest_the_template_gave():
    out = container_spec(settings())
    assert out["digest"] == "afd9c2c20ec37d556a62c4bc540c41b816b2ebb2d9cb9eb660ddfc7e6beab59b"
    spec = out["spec"]
    assert spec["entrypoint"] == list(contract.RUNTIME_ENTRY_POINT) + ["init"]
    assert spec["published_ports"] is None and spec["shm_size"] is None and spec["env_file"] is None
    assert spec["mounts"][-1] == {"type": "bind", "source": ROOT + "/runtime", "target": contract.RUNTIME_MOUNT,
                                  "read_only": True}
    assert spec["labels"] == {"sglang.prep.role": "prime", "sglang.prep.host_root": ROOT}


def test_every_optional_setting_keeps_the_digest_the_template_gave():
    ports = dict(contract.SERVICE_PORTS, prometheus=19090)
    out = container_spec(settings(
        network_mode="bridge", ipc_mode="", shm_size="8g", gpus="0,1", published_ports=["8080:80"],
        extra_env={"A": "1", "B": 2}, textfile_dir="/var/lib/tf", git_revision="deadbeef", env_file="/etc/e.env",
        services=["prometheus"], stop_timeout="45", image="reg.example/x:1", ports=ports))
    assert out["digest"] == "cd2f7ee97e77f28cca027ca2141cf29aaad9aa93ba136ddc08779609bd1508db"
    spec = out["spec"]
    assert spec["shm_size"] == "8g" and spec["ipc_mode"] is None and spec["stop_timeout"] == 45
    assert spec["mounts"][-1]["target"] == contract.TEXTFILE_MOUNT
    assert spec["device_requests"][0]["device_ids"] == ["0", "1"]


def test_a_setting_or_the_env_file_content_changes_the_digest():
    first = container_spec(settings())["digest"]
    assert container_spec(settings(server_port=30001))["digest"] != first
    assert container_spec(settings(env_file_digest="other"))["digest"] != first
    assert container_spec(settings(extra_env={"HF_HUB_OFFLINE": "1"}))["digest"] != first


def test_shared_memory_is_left_to_the_host_with_host_ipc():
    assert container_spec(settings(shm_size="16g"))["spec"]["shm_size"] is None
    assert container_spec(settings(shm_size="16g", ipc_mode=""))["spec"]["shm_size"] == "16g"

"""scripts/fleet_hosts.py without root: the hosts it describes, its sshd config and its inventory."""

import os

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fleet_hosts


def test_hosts_are_distinct_users_on_distinct_loopback_addresses():
    hosts = fleet_hosts.hosts(3)
    for key in ("user", "uid", "home", "address", "container", "name"):
        assert len({h[key] for h in hosts}) == 3, key
    assert all(h["uid"] != 1000 and h["uid"] >= 47001 for h in hosts)
    assert all(h["address"].startswith("127.0.0.") for h in hosts)
    gpus = [(h["gpu"]["SGLANG_STANDIN_GPU_NAME"], h["gpu"]["SGLANG_STANDIN_COMPUTE_CAP"]) for h in hosts]
    assert len(set(gpus)) == 2  # two H100 hosts share a signature group, the A100 host does not


def test_sshd_accepts_public_keys_only_on_the_fleet_addresses():
    paths = fleet_hosts.paths()
    config = fleet_hosts.sshd_config(paths, fleet_hosts.hosts(3)).splitlines()
    assert "PasswordAuthentication no" in config and "KbdInteractiveAuthentication no" in config
    # root logs in by key only (a fleet whose inventory says ansible_user: root with prime_host_user), never by password
    assert "PubkeyAuthentication yes" in config and "PermitRootLogin prohibit-password" in config
    assert [line for line in config if line.startswith("ListenAddress")] == [
        "ListenAddress 127.0.0.11", "ListenAddress 127.0.0.12", "ListenAddress 127.0.0.13"]
    assert "PidFile " + paths["pid"] in config and "HostKey " + paths["host_key"] in config
    assert "AllowUsers sgfleet1 sgfleet2 sgfleet3 root" in config


def test_inventory_reaches_each_host_as_its_own_user_over_ssh():
    paths = fleet_hosts.paths()
    inventory = yaml.safe_load(fleet_hosts.inventory_text(paths, fleet_hosts.hosts(3), image="img:tag"))
    group = inventory["all"]["children"]["sglang_nodes"]
    assert group["vars"]["ansible_connection"] == "ssh"
    assert group["vars"]["ansible_ssh_private_key_file"] == paths["client_key"]
    assert "StrictHostKeyChecking=yes" in group["vars"]["ansible_ssh_common_args"]
    assert group["vars"]["prime_image"] == "img:tag" and group["vars"]["prime_network_mode"] == "bridge"
    for host in fleet_hosts.hosts(3):
        entry = group["hosts"][host["name"]]
        assert entry["ansible_host"] == host["address"] and entry["ansible_user"] == host["user"]
        assert entry["prime_container_name"] == host["container"]
        assert entry["prime_extra_env"]["SGLANG_STANDIN_GPU_NAME"] == host["gpu"]["SGLANG_STANDIN_GPU_NAME"]
        assert all(isinstance(v, str) for v in entry["prime_extra_env"].values())  # container env must be strings

"""What an operator hands the prime role, end to end on this machine's Docker engine:

- sglang.prep.preflight checks every prerequisite without changing anything: on a ready host every row is ok;
  on one without the model, the image or the GPU stack every miss is a row with its fix, and the run fails.
- prime_env_file_src: the controller's env file reaches the host as the host user's, mode 0600, reaches the
  container, and its content is in no output (-v).
- prime_registry_login: the credentials are in no output, also when the login fails (image_unavailable).
"""

import os
import stat

import pytest

import role_harness as rh
from docker_util import docker

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates a host user and runs Docker as root, like molecule")

HOST_USER = "sglang-inputs-it"
HOST_UID = 48351
SECRET = "hf_s3cr3t-token-never-shown"
PASSWORD = "registry-pa55word-never-shown"


@pytest.fixture(scope="module")
def host():
    host = rh.RoleHost(HOST_USER, HOST_UID, "sglang-prep-inputs-it")
    try:
        yield host
    finally:
        host.remove()


def tree(root):
    return sorted((top, tuple(sorted(dirs)), tuple(sorted(files))) for top, dirs, files in os.walk(root))


def test_preflight_on_a_ready_host_is_all_ok_and_changes_nothing(host):
    before = tree(host.base)
    play = host.playbook("preflight.yml")
    assert play.rc == 0 and play.recap["changed"] == 0, play
    for check in ("Host user " + HOST_USER, "NVIDIA driver and GPUs", "NVIDIA Container Toolkit", "Docker for root",
                  "python3-requests", "Free disk for the caches", "Model " + rh.MODEL, "Image "):
        assert "ok %s" % check in play.text, (check, play)
    assert "MISS" not in play.text, play
    assert tree(host.base) == before, "preflight changed the host"
    assert host.container_state() is None


def test_preflight_lists_every_miss_with_its_fix(host):
    play = host.playbook("preflight.yml", "-e", "model=/models/absent", "-e", "prime_image=sglang-prep/standin:absent",
                         "-e", "prime_gpus=all", "-e", "prime_preflight_min_free_gb=1000000")
    assert play.rc != 0 and play.recap["failed"] == 1, play
    for check, fix in (("NVIDIA driver and GPUs", "role nvidia.nvidia_driver"),
                       ("NVIDIA Container Toolkit", "sudo nvidia-ctk runtime configure --runtime=docker"),
                       ("Free disk for the caches", "lower prime_preflight_min_free_gb"),
                       ("Model /models/absent", "copy the model"),
                       ("Image sglang-prep/standin:absent", "prime_registry_login")):
        assert "MISS %s" % check in play.text and fix in play.text, (check, play)
    assert "5 prerequisite(s) missing on localhost" in play.text, play


def test_the_env_file_from_the_controller_is_the_host_users_0600_and_never_shown(host, tmp_path):
    source = tmp_path / "container.env"
    source.write_text("HF_TOKEN=%s\n" % SECRET)
    play = host.prime("-v", prime_env_file_src=str(source))
    assert play.rc == 0 and play.recap["failed"] == 0, play
    assert SECRET not in play.output, "the env file's content reached the output"
    copy = host.path("runtime", "container.env")
    info = os.stat(copy)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (HOST_UID, 0o600)
    env = docker("exec", host.container, "printenv", "HF_TOKEN").stdout.strip()
    assert env == SECRET
    again = host.prime(prime_env_file_src=str(source))
    assert again.rc == 0 and again.recap["changed"] == 0, again


def test_registry_credentials_are_never_shown(host):
    login = {"registry": "127.0.0.1:1", "username": "robot", "password": PASSWORD}
    play = host.prime("-vvv", prime_registry_login=login, prime_image="127.0.0.1:1/sglang-prep:absent",
                      prime_image_pull="missing")
    assert play.rc != 0 and "status: failed (image_unavailable)" in play.text, play
    assert "the login to 127.0.0.1:1 as robot (prime_registry_login) failed" in play.text, play
    assert PASSWORD not in play.output, "the registry password reached the output"

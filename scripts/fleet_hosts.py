#!/usr/bin/env python3
"""SSH test hosts for the fleet tests and the fleet benchmark, all on this machine (run as root).

Each host is a distinct local user (sgfleet<N>, UID 4700<N>, its own $HOME) reached over real SSH on
its own loopback address (127.0.0.1<N>) through a dedicated sshd (own config, host key, pid file
and port, public keys only), and allowed to use the local Docker engine (member of the group that
owns the Docker socket). Every host user has its own key (~/.ssh/id_ed25519) that the other hosts
accept, so hosts reach each other over SSH as in a fleet whose hosts copy files host to host (rsync
is installed for that). The Ansible inventory for them is written next to the keys.

    scripts/fleet_hosts.py up [--hosts N] [--clean] [--model DIR]
                                                      create or repair the hosts, start sshd, write the inventory
    scripts/fleet_hosts.py status                     print the hosts as JSON
    scripts/fleet_hosts.py down [--remove-users] [--purge]
                                                      stop sshd, remove the hosts' containers (and users / state)

Idempotent: `up` only creates what is missing and keeps keys, so re-runs are quick.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

STATE_DIR = os.environ.get("SGLANG_PREP_FLEET_STATE", "/var/lib/sglang-prep-fleet")
SSH_PORT = int(os.environ.get("SGLANG_PREP_FLEET_SSH_PORT", "47022"))
SSHD = "/usr/sbin/sshd"
FIRST_UID = 47001
MAX_HOSTS = 9
# the stand-in image: SGLANG_PREP_TEST_IMAGE (the tag this checkout's tests build), else SGLANG_PREP_IMAGE
IMAGE = os.environ.get("SGLANG_PREP_TEST_IMAGE") or os.environ.get("SGLANG_PREP_IMAGE") or "sglang-prep/standin:test"
DOCKER_SOCKET = "/var/run/docker.sock"

# GPU stand-ins given to the hosts' containers, in turn: two H100 hosts share a signature group,
# the A100 host is in another one.
GPUS = (
    {"SGLANG_STANDIN_GPU_NAME": "NVIDIA H100 80GB HBM3", "SGLANG_STANDIN_COMPUTE_CAP": "9.0",
     "SGLANG_STANDIN_DRIVER": "570.148.08", "SGLANG_STANDIN_CUDA": "12.8", "SGLANG_STANDIN_GPU_MEM_MIB": "81559"},
    {"SGLANG_STANDIN_GPU_NAME": "NVIDIA H100 80GB HBM3", "SGLANG_STANDIN_COMPUTE_CAP": "9.0",
     "SGLANG_STANDIN_DRIVER": "570.148.08", "SGLANG_STANDIN_CUDA": "12.8", "SGLANG_STANDIN_GPU_MEM_MIB": "81559"},
    {"SGLANG_STANDIN_GPU_NAME": "NVIDIA A100-SXM4-80GB", "SGLANG_STANDIN_COMPUTE_CAP": "8.0",
     "SGLANG_STANDIN_DRIVER": "570.148.08", "SGLANG_STANDIN_CUDA": "12.8", "SGLANG_STANDIN_GPU_MEM_MIB": "81920"},
)
# Short stand-in delays keep the fleet tier fast.
STANDIN_TIMING = {"SGLANG_STANDIN_START_DELAY_S": "0.2", "SGLANG_STANDIN_WARMUP_S": "0.2"}


class FleetError(Exception):
    pass


def log(message):
    print("fleet_hosts: " + message, file=sys.stderr, flush=True)


def run(argv, check=True, **kwargs):
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.run(argv, text=True, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise FleetError("%s failed (exit %d): %s" % (" ".join(argv), proc.returncode, (proc.stderr or proc.stdout or "").strip()))
    return proc


# ---------------------------------------------------------------- the hosts

def hosts(count=3):
    if not 1 <= count <= MAX_HOSTS:
        raise FleetError("--hosts must be between 1 and %d" % MAX_HOSTS)
    out = []
    for i in range(1, count + 1):
        user = "sgfleet%d" % i
        out.append({
            "name": "fleet%d" % i,
            "user": user,
            "uid": FIRST_UID + i - 1,
            "home": "/home/" + user,
            "address": "127.0.0.%d" % (10 + i),
            "container": "sglang-prep-fleet%d" % i,
            "gpu": dict(GPUS[(i - 1) % len(GPUS)]),
        })
    return out


def paths():
    return {
        "state": STATE_DIR,
        "config": os.path.join(STATE_DIR, "sshd_config"),
        "pid": os.path.join(STATE_DIR, "sshd.pid"),
        "log": os.path.join(STATE_DIR, "sshd.log"),
        "host_key": os.path.join(STATE_DIR, "ssh_host_ed25519_key"),
        "client_key": os.path.join(STATE_DIR, "id_ed25519"),
        "authorized": os.path.join(STATE_DIR, "authorized_keys"),
        "known_hosts": os.path.join(STATE_DIR, "known_hosts"),
        "inventory": os.path.join(STATE_DIR, "inventory.yml"),
    }


# ---------------------------------------------------------------- prerequisites

def require_root():
    if os.geteuid() != 0:
        raise FleetError("run as root: creating users and starting sshd needs it (the hosts themselves are unprivileged)")


def ensure_packages():
    """openssh-server for sshd, rsync for host-to-host copies, python3-requests for community.docker on the
    hosts' /usr/bin/python3."""
    need = []
    if not os.path.exists(SSHD):
        need.append("openssh-server")
    if not shutil.which("rsync"):
        need.append("rsync")
    if run(["/usr/bin/python3", "-c", "import requests"], check=False).returncode != 0:
        need.append("python3-requests")
    if not need:
        return
    if not os.path.exists("/etc/debian_version"):
        raise FleetError("install %s (needed by the fleet test hosts)" % " and ".join(need))
    log("installing %s (Debian packages) ..." % " ".join(need))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq"] + need, env=env)


def docker_group():
    """The group that owns the Docker socket; the host users join it to use the engine."""
    try:
        st = os.stat(DOCKER_SOCKET)
    except OSError as exc:
        raise FleetError("no Docker socket at %s (%s): start the engine first (scripts/ensure-docker.sh)" % (DOCKER_SOCKET, exc.strerror))
    if st.st_gid == 0:
        raise FleetError(
            "%s is owned by group root, so unprivileged users cannot use Docker without joining group root. "
            "Start dockerd with its socket group set to 'docker' (create the group: groupadd docker; then restart "
            "dockerd, or pass --group docker / \"group\": \"docker\" in daemon.json)." % DOCKER_SOCKET)
    if not st.st_mode & stat.S_IWGRP:
        raise FleetError("%s is not group-writable (mode %o); members of its group cannot use Docker" % (DOCKER_SOCKET, stat.S_IMODE(st.st_mode)))
    return grp.getgrgid(st.st_gid).gr_name


def ensure_user(host, docker_group_name):
    try:
        pw = pwd.getpwnam(host["user"])
    except KeyError:
        pw = None
    if pw is None:
        try:
            grp.getgrnam(host["user"])
        except KeyError:
            run(["groupadd", "-g", str(host["uid"]), host["user"]])
        # password '*': no password login, but not "locked" ('!'), which sshd refuses without PAM
        run(["useradd", "-m", "-u", str(host["uid"]), "-g", host["user"], "-G", docker_group_name,
             "-s", "/bin/bash", "-p", "*", host["user"]])
        log("created user %s (uid %d)" % (host["user"], host["uid"]))
        return
    if pw.pw_uid != host["uid"]:
        raise FleetError("user %s exists with uid %d, expected %d; remove it (userdel -r %s) and re-run"
                         % (host["user"], pw.pw_uid, host["uid"], host["user"]))
    if host["user"] not in grp.getgrnam(docker_group_name).gr_mem:
        run(["usermod", "-aG", docker_group_name, host["user"]])
    shadow = run(["getent", "shadow", host["user"]], check=False).stdout.split(":")
    if len(shadow) > 1 and shadow[1].startswith("!"):
        run(["usermod", "-p", "*", host["user"]])


def remove_user(host):
    if run(["getent", "passwd", host["user"]], check=False).returncode == 0:
        run(["userdel", "-r", host["user"]], check=False)
    if run(["getent", "group", host["user"]], check=False).returncode == 0:
        run(["groupdel", host["user"]], check=False)


def as_user(host, argv):
    return run(["runuser", "-u", host["user"], "--"] + argv, check=False, cwd="/")


# ---------------------------------------------------------------- keys and sshd

def write_file(path, text, mode=0o644):
    """Create (or replace) a root-owned file; its mode comes from creation, never from chmod."""
    tmp = path + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def ensure_keys(p):
    os.makedirs(p["state"], mode=0o755, exist_ok=True)
    os.makedirs(p["authorized"], mode=0o755, exist_ok=True)
    for key in (p["host_key"], p["client_key"]):
        if not os.path.exists(key):
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sglang-prep-fleet", "-f", key])


def ensure_host_key(host):
    """The host user's own SSH key (~/.ssh/id_ed25519, made by that user); returns its public half."""
    ssh_dir = os.path.join(host["home"], ".ssh")
    key = os.path.join(ssh_dir, "id_ed25519")
    if not os.path.exists(key):
        for argv in (["mkdir", "-p", "-m", "0700", ssh_dir],
                     ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "%s@fleet" % host["user"], "-f", key]):
            proc = as_user(host, argv)
            if proc.returncode != 0:
                raise FleetError("%s as %s failed: %s" % (" ".join(argv), host["user"], proc.stderr.strip()))
    return public_key(key)


def public_key(key):
    with open(key + ".pub") as handle:
        return handle.read().strip()


def sshd_config(p, fleet):
    users = " ".join(h["user"] for h in fleet)
    lines = ["# sshd for the sglang.prep fleet test hosts (generated by scripts/fleet_hosts.py)",
             "Port %d" % SSH_PORT]
    lines += ["ListenAddress %s" % h["address"] for h in fleet]
    lines += [
        "HostKey " + p["host_key"],
        "PidFile " + p["pid"],
        "AuthorizedKeysFile %s/%%u" % p["authorized"],
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # root may log in (keys only) on these loopback addresses: a fleet whose inventory says ansible_user: root
        # with prime_host_user (the shape docs/fleet.md shows) is tested too
        "PermitRootLogin prohibit-password",
        "AllowUsers %s root" % users,
        "StrictModes yes",
        "X11Forwarding no",
        "PrintMotd no",
        "Subsystem sftp internal-sftp",
        "MaxStartups 100:30:200",
        "MaxSessions 100",
        "LogLevel VERBOSE",
    ]
    return "\n".join(lines) + "\n"


def sshd_pid(p):
    """pid of the fleet sshd if it runs (checked against its command line), else None."""
    try:
        with open(p["pid"]) as handle:
            pid = int(handle.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            cmdline = handle.read()  # sshd rewrites its title: "sshd: /usr/sbin/sshd -f <config> ... [listener] ..."
    except (OSError, ValueError):
        return None
    return pid if p["config"].encode() in cmdline else None


def stop_sshd(p):
    pid = sshd_pid(p)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists("/proc/%d" % pid):
        time.sleep(0.05)
    if os.path.exists("/proc/%d" % pid):
        os.kill(pid, signal.SIGKILL)
    log("stopped sshd (pid %d)" % pid)
    return True


def wait_for_port(address, port, deadline_s=10.0):
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise FleetError("sshd does not answer on %s:%d (%s); see %s" % (address, port, exc, paths()["log"]))
            time.sleep(0.05)


def ensure_sshd(p, fleet):
    config = sshd_config(p, fleet)
    try:
        with open(p["config"]) as handle:
            same = handle.read() == config
    except OSError:
        same = False
    if sshd_pid(p) is not None and same:
        return
    stop_sshd(p)
    write_file(p["config"], config)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    run([SSHD, "-t", "-f", p["config"]])
    run([SSHD, "-f", p["config"], "-E", p["log"]])
    for host in fleet:
        wait_for_port(host["address"], SSH_PORT)
    log("sshd listening on %s port %d (pid %s)" % (", ".join(h["address"] for h in fleet), SSH_PORT, sshd_pid(p)))


def ssh_argv(p, host, command):
    return ["ssh", "-i", p["client_key"], "-p", str(SSH_PORT), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "UserKnownHostsFile=" + p["known_hosts"], "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=5", "%s@%s" % (host["user"], host["address"])] + command


# ---------------------------------------------------------------- inventory

def _yaml_str(value):
    return json.dumps(str(value))


def inventory_text(p, fleet, image=IMAGE):
    lines = [
        "# Ansible inventory of the fleet test hosts (generated by scripts/fleet_hosts.py; do not edit).",
        "# Every host is a local user reached over real SSH on its own loopback address; its container",
        "# gets a GPU stand-in through prime_extra_env.",
        "all:",
        "  children:",
        "    sglang_nodes:",
        "      vars:",
        "        ansible_connection: ssh",
        "        ansible_port: %d" % SSH_PORT,
        "        ansible_ssh_private_key_file: %s" % _yaml_str(p["client_key"]),
        "        ansible_ssh_common_args: %s" % _yaml_str(
            "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes" % p["known_hosts"]),
        "        ansible_python_interpreter: /usr/bin/python3",
        "        prime_image: %s" % _yaml_str(image),
        "        prime_network_mode: bridge",
        "        prime_gpus: none",
        "      hosts:",
    ]
    for host in fleet:
        lines += [
            "        %s:" % host["name"],
            "          ansible_host: %s" % host["address"],
            "          ansible_user: %s" % host["user"],
            "          prime_container_name: %s" % host["container"],
            "          prime_extra_env:",
        ]
        env = dict(host["gpu"], **STANDIN_TIMING)
        lines += ["            %s: %s" % (k, _yaml_str(v)) for k, v in sorted(env.items())]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- commands

@contextlib.contextmanager
def session(what, timeout_s=3600.0):
    """Hold the fleet for one user of it (the fleet tests, the fleet bench): a second one waits its turn.

    An flock on a file in the state directory, so a killed holder never leaves it locked.
    """
    os.makedirs(STATE_DIR, mode=0o755, exist_ok=True)
    with open(os.path.join(STATE_DIR, "session.lock"), "a+") as handle:
        deadline = time.monotonic() + timeout_s
        next_note = 0.0
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now > deadline:
                    raise FleetError("the fleet test hosts stayed busy for %d s (%s); is another run stuck?" % (timeout_s, _holder(handle)))
                if now >= next_note:
                    log("waiting for the fleet test hosts (busy: %s) ..." % _holder(handle))
                    next_note = now + 30
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write("%s, pid %d\n" % (what, os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _holder(handle):
    handle.seek(0)
    return handle.read().strip() or "unknown"


def pinned_image(image=IMAGE):
    """The image's content-hash tag from scripts/build-images.sh (same image, a name no rebuild moves), else the image."""
    proc = run(["docker", "image", "inspect", "--format", "{{json .RepoTags}}", image], check=False)
    repo = image.rsplit(":", 1)[0]
    tags = sorted(t for t in json.loads(proc.stdout or "[]") if t.startswith(repo + ":") and t != image) if proc.returncode == 0 else []
    return tags[0] if tags else image


def clean_host(host):
    """Remove the host's container and its $HOME/sglang-observability (a fresh host)."""
    run(["docker", "rm", "-f", host["container"]], check=False)
    root = os.path.join(host["home"], "sglang-observability")
    if os.path.lexists(root):
        shutil.rmtree(root)


def copy_tree_as(user, source, target):
    """Copy the directory source into target (created if missing): read by this process's user, written by
    user (None: this user too). The source may lie where the other user cannot enter (a checkout under /root
    or in a mktemp -d directory), so it is packed here and unpacked by that user from a pipe."""
    if not (os.path.isdir(source) and os.access(source, os.R_OK | os.X_OK)):
        raise FleetError("cannot read the directory %s as %s" % (source, pwd.getpwuid(os.geteuid()).pw_name))
    prefix = ["runuser", "-u", user, "--"] if user else []
    proc = run(prefix + ["mkdir", "-p", target], check=False, cwd="/")
    if proc.returncode == 0:
        with subprocess.Popen(["tar", "-C", source, "-cf", "-", "."], stdout=subprocess.PIPE) as pack:
            proc = subprocess.run(prefix + ["tar", "-C", target, "-xf", "-", "--no-same-owner"], stdin=pack.stdout,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False, cwd="/")
            pack.stdout.close()
        if proc.returncode == 0 and pack.returncode != 0:
            proc = subprocess.CompletedProcess(pack.args, pack.returncode, "", "tar could not pack %s" % source)
    if proc.returncode != 0:
        raise FleetError("copying %s to %s as %s failed: %s" % (source, target, user or "this user", proc.stderr.strip()))
    return target


def stage_model(host, model_dir):
    """Copy a model directory to <home>/sglang-observability/models/<name> as the host user (an operator's step)."""
    models = os.path.join(host["home"], "sglang-observability", "models")
    target = os.path.join(models, os.path.basename(model_dir.rstrip("/")))
    if os.path.exists(os.path.join(target, "config.json")):
        return target
    return copy_tree_as(host["user"], os.path.abspath(model_dir), target)


def up(count=3, clean=False, model_dir=None, image=IMAGE):
    require_root()
    p = paths()
    fleet = hosts(count)
    ensure_packages()
    group = docker_group()
    for host in fleet:
        ensure_user(host, group)
    ensure_keys(p)
    client = public_key(p["client_key"])
    # the controller's key, and every host's own key: each host accepts the controller and its peers
    peers = [ensure_host_key(host) for host in fleet]
    for user in [host["user"] for host in fleet] + ["root"]:
        write_file(os.path.join(p["authorized"], user), "\n".join([client] + peers) + "\n")
    host_key = public_key(p["host_key"]).split()
    write_file(p["known_hosts"], "".join("[%s]:%d %s %s\n" % (h["address"], SSH_PORT, host_key[0], host_key[1]) for h in fleet))
    ensure_sshd(p, fleet)
    for host in fleet:
        if clean:
            clean_host(host)
        probe = as_user(host, ["docker", "ps", "-q"])
        if probe.returncode != 0:
            raise FleetError("user %s cannot use Docker (%s): it should be a member of group %s"
                             % (host["user"], probe.stderr.strip(), group))
        probe = run(ssh_argv(p, host, ["id", "-u"]), check=False)
        if probe.returncode != 0 or probe.stdout.strip() != str(host["uid"]):
            raise FleetError("SSH to %s@%s:%d does not work: %s (sshd log: %s)"
                             % (host["user"], host["address"], SSH_PORT, (probe.stderr or probe.stdout).strip(), p["log"]))
        if model_dir:
            stage_model(host, model_dir)
    write_file(p["inventory"], inventory_text(p, fleet, image))
    return status(count)


def status(count=3):
    p = paths()
    return {"inventory": p["inventory"], "state_dir": p["state"], "ssh_port": SSH_PORT, "sshd_pid": sshd_pid(p),
            "client_key": p["client_key"], "known_hosts": p["known_hosts"], "hosts": hosts(count)}


def down(count=MAX_HOSTS, remove_users=False, purge=False):
    require_root()
    p = paths()
    stop_sshd(p)
    for host in hosts(count):
        run(["docker", "rm", "-f", host["container"]], check=False)
        if remove_users:
            remove_user(host)
    if purge and os.path.isdir(p["state"]):
        shutil.rmtree(p["state"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="create or repair the hosts, start sshd, write the inventory")
    p_up.add_argument("--hosts", type=int, default=3, help="number of hosts (1-%d, default 3)" % MAX_HOSTS)
    p_up.add_argument("--clean", action="store_true", help="remove the hosts' containers and sglang-observability dirs first")
    p_up.add_argument("--image", default=IMAGE, help="prime_image of the hosts (default %(default)s)")
    p_up.add_argument("--model", metavar="DIR", help="copy this model directory into every host's models/ (as the host user)")
    p_st = sub.add_parser("status", help="print the hosts as JSON")
    p_st.add_argument("--hosts", type=int, default=3)
    p_down = sub.add_parser("down", help="stop sshd and remove the hosts' containers")
    p_down.add_argument("--remove-users", action="store_true", help="also delete the users and their homes")
    p_down.add_argument("--purge", action="store_true", help="also delete the keys, sshd config and inventory")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            print(json.dumps(up(args.hosts, args.clean, args.model, args.image), indent=2))
        elif args.command == "status":
            print(json.dumps(status(args.hosts), indent=2))
        else:
            down(remove_users=args.remove_users, purge=args.purge)
    except FleetError as exc:
        print("fleet_hosts: error: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

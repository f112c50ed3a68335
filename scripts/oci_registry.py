#!/usr/bin/env python3
"""A real OCI registry on this machine for the fleet tests and the bench (run as root).

The Distribution registry (Debian's docker-registry package, installed here when missing) serves
https://<address>:<port> with a certificate of its own test CA and htpasswd (bcrypt) auth. The address is the
Docker bridge's gateway (docker0, 172.17.0.1 by default), not loopback: the engine treats 127.0.0.0/8 as an
insecure registry and would not verify the certificate there. The engine trusts the CA through
/etc/docker/certs.d/<address>:<port>/ca.crt (read per connection, no restart), written here for the fleet hosts, which
are unprivileged users; tests/fleet/test_registry.py removes it to prove that prime_bundle_registry_ca installs it.
Port 47443 (SGLANG_PREP_REGISTRY_PORT) is this collection's test registry port.

    scripts/oci_registry.py up       start it (idempotent), print its facts as JSON
    scripts/oci_registry.py down     stop it and remove its state and the engine's trust of its CA
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

PORT = int(os.environ.get("SGLANG_PREP_REGISTRY_PORT", "47443"))
STATE = os.environ.get("SGLANG_PREP_REGISTRY_STATE", "/var/lib/sglang-prep-registry")
REGISTRY = "/usr/bin/docker-registry"
HTPASSWD = "/usr/bin/htpasswd"
USER = "sgprep"
REPOSITORY_PATH = "sglang-prep-caches"


class RegistryError(Exception):
    pass


def run(argv, **kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise RegistryError("%s failed (exit %d): %s" % (" ".join(argv[:3]), proc.returncode, proc.stderr.strip()))
    return proc


def ensure_packages():
    # skopeo: the prune playbook's registry client on the controller
    need = [pkg for path, pkg in ((REGISTRY, "docker-registry"), (HTPASSWD, "apache2-utils"), ("/usr/bin/skopeo", "skopeo"))
            if not os.path.exists(path)]
    if not need:
        return
    if os.geteuid() != 0 or not os.path.exists("/etc/debian_version"):
        raise RegistryError("install %s (the test registry)" % " and ".join(need))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + need, env=env)


@functools.lru_cache(maxsize=None)
def address():
    """The Docker bridge's gateway address (what the engine reaches without treating it as insecure)."""
    proc = subprocess.run(["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    try:
        for item in json.loads(proc.stdout) or []:
            if item.get("Gateway"):
                return item["Gateway"]
    except ValueError:
        pass
    raise RegistryError("the Docker engine has no bridge network with a gateway: %s" % (proc.stderr.strip() or proc.stdout.strip()))


def paths(port=PORT):
    return {"dir": STATE, "ca": os.path.join(STATE, "ca.crt"), "ca_key": os.path.join(STATE, "ca.key"),
            "cert": os.path.join(STATE, "server.crt"), "key": os.path.join(STATE, "server.key"),
            "htpasswd": os.path.join(STATE, "htpasswd"), "password": os.path.join(STATE, "password"),
            "config": os.path.join(STATE, "config.yml"), "data": os.path.join(STATE, "data"),
            "pid": os.path.join(STATE, "registry.pid"), "log": os.path.join(STATE, "registry.log"),
            "engine_ca": "/etc/docker/certs.d/%s:%d/ca.crt" % (address(), port)}


def make_certs(p):
    if os.path.exists(p["cert"]):
        return
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=sglang-prep test CA",
         "-keyout", p["ca_key"], "-out", p["ca"]])
    csr = os.path.join(STATE, "server.csr")
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % address(), "-keyout", p["key"], "-out", csr])
    ext = os.path.join(STATE, "san.ext")
    with open(ext, "w") as handle:
        handle.write("subjectAltName=IP:%s,IP:127.0.0.1\n" % address())
    run(["openssl", "x509", "-req", "-in", csr, "-CA", p["ca"], "-CAkey", p["ca_key"], "-CAcreateserial", "-days", "30",
         "-extfile", ext, "-out", p["cert"]])


def answers(port, timeout=0.5):
    try:
        with socket.create_connection((address(), port), timeout=timeout):
            return True
    except OSError:
        return False


def running_pid(p):
    try:
        pid = int(open(p["pid"]).read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def up(port=PORT):
    ensure_packages()
    p = paths(port)
    os.makedirs(p["data"], 0o700, exist_ok=True)
    make_certs(p)
    if not os.path.exists(p["password"]):
        with open(p["password"], "w") as handle:
            handle.write(os.urandom(12).hex())
    password = open(p["password"]).read().strip()
    run([HTPASSWD, "-Bbc", p["htpasswd"], USER, password])
    with open(p["config"], "w") as handle:
        handle.write("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n"
                     "http:\n  addr: %s:%d\n  tls:\n    certificate: %s\n    key: %s\n"
                     "auth:\n  htpasswd:\n    realm: sglang-prep-test\n    path: %s\n"
                     % (p["data"], address(), port, p["cert"], p["key"], p["htpasswd"]))
    os.makedirs(os.path.dirname(p["engine_ca"]), 0o755, exist_ok=True)
    shutil.copyfile(p["ca"], p["engine_ca"])
    if running_pid(p) is None:
        if answers(port):
            raise RegistryError("port %d is taken by another program (SGLANG_PREP_REGISTRY_PORT picks another)" % port)
        log = open(p["log"], "ab")
        proc = subprocess.Popen([REGISTRY, "serve", p["config"]], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        with open(p["pid"], "w") as handle:
            handle.write(str(proc.pid))
        deadline = time.monotonic() + 30
        while not answers(port, timeout=0.2):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RegistryError("the registry did not start: see %s" % p["log"])
            time.sleep(0.05)
    return status(port)


def status(port=PORT):
    p = paths(port)
    host = "%s:%d" % (address(), port)
    return {"host": host, "repository": "%s/%s" % (host, REPOSITORY_PATH), "username": USER,
            "password": open(p["password"]).read().strip() if os.path.exists(p["password"]) else None,
            "ca": p["ca"], "pid": running_pid(p), "data": p["data"], "port": port}


def stop(port=PORT):
    """Stop the registry process (its state stays)."""
    p = paths(port)
    pid = running_pid(p)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while running_pid(p) is not None and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
    return pid


def down(port=PORT):
    stop(port)
    p = paths(port)
    shutil.rmtree(STATE, ignore_errors=True)
    shutil.rmtree(os.path.dirname(p["engine_ca"]), ignore_errors=True)


def main(argv):
    if len(argv) != 2 or argv[1] not in ("up", "down", "status"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[1] == "up":
            print(json.dumps(dict(up(), password="(in %s)" % paths()["password"])))
        elif argv[1] == "status":
            print(json.dumps(dict(status(), password="(in %s)" % paths()["password"])))
        else:
            down()
    except RegistryError as exc:
        print("oci_registry: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The telemetry services the container init starts: specs, start, readiness, versions, stop.

Every service runs in its own session (process group) so PID 1 can signal it as a whole.
Services that write under /telemetry run as devuser: the child drops privileges first, then
opens the session log for appending and makes it its stdout/stderr, then execs. Only
nv-hostengine (DCGM) runs as root, with its files in /tmp (not a bind mount).
"""

from __future__ import annotations

import collections
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import time

from .. import contract
from . import identity, jaeger_config
from ..errors import PrepError
from .prometheus_config import host_port, local_address

ROOT_SERVICE_DIR = "/tmp"  # root-only services keep their files here, never under a bind mount

# port_key: the contract.SERVICE_PORTS key of the port the readiness probe asks (contract.service_ports() says
# which port that is in this container: ENV_TELEMETRY_PORTS may move it)
Spec = collections.namedtuple("Spec", "name binaries optional as_root port_key probe missing_warning")

SPECS = (
    Spec("prometheus", ("prometheus",), False, False, "prometheus",
         ("http", "/-/ready"),
         "prometheus is not installed in the image: no metrics are stored for this run "
         "(images/Dockerfile installs the Debian/Ubuntu 'prometheus' package)"),
    Spec("node_exporter", ("prometheus-node-exporter", "node_exporter"), False, False,
         "node_exporter", ("http", "/"),
         "node_exporter is not installed in the image: no host metrics for this run "
         "(images/Dockerfile installs the 'prometheus-node-exporter' package)"),
    Spec("dcgm_exporter", ("dcgm-exporter",), True, False, "dcgm_exporter",
         ("http", "/metrics"),
         "dcgm-exporter is not installed in the image: no GPU metrics for this run "
         "(bake it in through images/optional/, see docs/container-init.md)"),
    Spec("jaeger", ("jaeger", "jaeger-all-in-one"), True, False, "jaeger_ui",
         ("http", "/"),
         "jaeger is not installed in the image: traces are not collected for this run "
         "(bake a Jaeger v2 binary in through images/optional/, see docs/container-init.md)"),
    Spec("nv_hostengine", ("nv-hostengine",), True, True, "nv_hostengine", ("tcp", None), None),
)
SPEC_BY_NAME = {spec.name: spec for spec in SPECS}
EXPORTERS = ("node_exporter", "dcgm_exporter")


def port(spec):
    """The port ``spec``'s readiness probe asks in this container (contract.service_ports())."""
    return contract.service_ports()[spec.port_key]


def discover(path_env=None, chosen=None):
    """{service name: absolute binary path or None} for every spec, from PATH; a service not ``chosen`` (a list
    of names, None for all) is not looked for (None)."""
    found = {}
    for spec in SPECS:
        found[spec.name] = None
        if chosen is not None and spec.name not in chosen:
            continue
        for binary in spec.binaries:
            where = shutil.which(binary, path=path_env)
            if where:
                found[spec.name] = where
                break
    return found


def storage(run_id, telemetry_root=contract.TELEMETRY_ROOT):
    """Per-run service paths under telemetry/ (container side)."""
    prom = "%s/prometheus/%s" % (telemetry_root, run_id)
    jaeger = "%s/jaeger/%s" % (telemetry_root, run_id)
    return {
        "prometheus_dir": prom,
        "prometheus_config": prom + "/prometheus.yml",
        "prometheus_tsdb": prom + "/tsdb",
        "jaeger_dir": jaeger,
        "jaeger_config": jaeger + "/config.yaml",
    }


def ports(name):
    """The ports a service listens on (jaeger has several)."""
    if name == "jaeger":
        return {key[len("jaeger_"):]: number for key, number in contract.service_ports().items() if key.startswith("jaeger_")}
    return {"http" if name != "nv_hostengine" else "tcp": port(SPEC_BY_NAME[name])}


def command(name, binary, run_id, listen, telemetry_root=contract.TELEMETRY_ROOT):
    """(argv, extra env) that starts service ``name`` from ``binary`` for this run."""
    paths = storage(run_id, telemetry_root)
    spec = SPEC_BY_NAME[name]
    if name == "prometheus":
        return [binary, "--config.file=" + paths["prometheus_config"],
                "--storage.tsdb.path=" + paths["prometheus_tsdb"],
                "--web.listen-address=" + host_port(listen, port(spec)), "--log.level=warn"], {}
    if name == "node_exporter":
        # systemd needs D-Bus, which containers lack (Debian enables the collector): it would log an
        # error into the session log at every scrape.
        # the textfile collector reads the priming state's metrics (container/metrics.py) from a directory
        # devuser writes: the image's default (/var/lib/prometheus/node-exporter) is root's
        return [binary, "--web.listen-address=" + host_port(listen, port(spec)), "--log.level=warn",
                "--no-collector.systemd",
                "--collector.textfile.directory=" + os.path.dirname(contract.metrics_path(telemetry_root))], {}
    if name == "dcgm_exporter":
        return [binary, "-a", host_port(listen, port(spec))], {}
    if name == "jaeger":
        if os.path.basename(binary) == "jaeger-all-in-one":
            args, env = jaeger_config.v1_args_env(paths["jaeger_dir"], listen)
            return [binary] + args, env
        return [binary, "--config", paths["jaeger_config"]], {}
    if name == "nv_hostengine":
        return [binary, "-n", "-b", local_address(listen), "--port", str(port(spec)), "--pid", ROOT_SERVICE_DIR + "/nv-hostengine.pid",
                "-f", ROOT_SERVICE_DIR + "/nv-hostengine.log"], {}
    raise ValueError("unknown service %r" % name)


def root_output_path(name):
    return "%s/%s.out" % (ROOT_SERVICE_DIR, name.replace("_", "-"))


class Service:
    """One started service: its process and what init learned about it."""

    def __init__(self, name, binary, argv, pid, output):
        self.name = name
        self.binary = binary
        self.argv = argv
        self.pid = pid
        self.output = output
        self.started = time.monotonic()
        self.status = "starting"
        self.ready_s = None
        self.error = None
        self.exit_code = None

    @property
    def alive(self):
        return self.exit_code is None and self.status in ("starting", "running")


def spawn(argv, user, output_path, env, as_root=False, cwd="/"):
    """Fork and exec ``argv`` in a new session; output appended to ``output_path``.

    As devuser unless ``as_root``: privileges are dropped before the output file is opened,
    so the file is always authored by the user the service runs as. Returns the pid; raises
    PrepError(internal_error) if the exec itself fails.
    """
    read_fd, write_fd = os.pipe()  # close-on-exec: EOF on a successful exec
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_fd)
            identity.reset_child_signals()
            os.setsid()
            if not as_root:
                identity.drop_privileges(user)
            out = os.open(output_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        except BaseException as exc:  # pylint: disable=broad-except
            try:
                os.write(write_fd, ("%s: %s" % (type(exc).__name__, exc)).encode("utf-8", "replace")[:2000])
            finally:
                os._exit(127)  # pylint: disable=protected-access
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        failure = reader.read()
    if failure:
        os.waitpid(pid, 0)
        raise PrepError("internal_error", "cannot start %s: %s" % (argv[0], failure.decode("utf-8", "replace")))
    return pid


def start(name, binary, run_id, listen, user, log_file, base_env, telemetry_root=contract.TELEMETRY_ROOT):
    """Start one service; a failure to exec is returned as a failed Service, never raised."""
    spec = SPEC_BY_NAME[name]
    argv, extra_env = command(name, binary, run_id, listen, telemetry_root)
    env = dict(base_env) if spec.as_root else identity.child_env(user, base_env)
    env.update(extra_env)
    output = root_output_path(name) if spec.as_root else log_file
    try:
        pid = spawn(argv, user, output, env, as_root=spec.as_root)
    except PrepError as exc:
        svc = Service(name, binary, argv, None, output)
        svc.status, svc.error = "failed", exc.message
        return svc
    return Service(name, binary, argv, pid, output)


def probe(spec, listen, timeout=0.3):
    """True once the service answers its readiness probe."""
    host = local_address(listen)
    kind, path = spec.probe
    try:
        if kind == "tcp":
            with socket.create_connection((host, port(spec)), timeout=timeout):
                return True
        conn = http.client.HTTPConnection(host, port(spec), timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()  # read it all: a probe that hangs up early makes exporters log broken pipes
            return resp.status == 200
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return False


def probe_url(spec, listen):
    kind, path = spec.probe
    address = host_port(local_address(listen), port(spec))
    return address if kind == "tcp" else "http://%s%s" % (address, path)


def _exit_code(wait_status):
    return os.waitstatus_to_exitcode(wait_status)


def describe_exit(code):
    """'code 1' or 'signal SIGTERM' for an exit code from os.waitstatus_to_exitcode."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return "signal " + signal.Signals(-code).name
        except ValueError:
            return "signal %d" % -code
    return "code %d" % code


def reap(svc):
    """Record the exit of ``svc`` if it has exited (non-blocking)."""
    if svc.pid is None or svc.exit_code is not None:
        return
    try:
        pid, wait_status = os.waitpid(svc.pid, os.WNOHANG)
    except ChildProcessError:
        svc.exit_code = -1
        return
    if pid:
        svc.exit_code = _exit_code(wait_status)


def wait_ready(started, listen, timeout_s, should_stop=lambda: False, poll_s=0.05):
    """Poll every starting service until it answers, exits or the deadline passes.

    A service that exits is ``failed`` with its exit code; one that does not answer in time is
    stopped and ``failed``. Returns early (leaving ``starting``) when ``should_stop()``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        pending = [svc for svc in started if svc.status == "starting"]
        if not pending or should_stop():
            return
        for svc in pending:
            spec = SPEC_BY_NAME[svc.name]
            reap(svc)
            if svc.exit_code is not None:
                svc.status = "failed"
                svc.error = "exited with %s during start-up (its output is in %s)" % (describe_exit(svc.exit_code), svc.output)
            elif probe(spec, listen):
                svc.status = "running"
                svc.ready_s = round(time.monotonic() - svc.started, 3)
        if time.monotonic() >= deadline:
            for svc in started:
                if svc.status == "starting":
                    svc.status = "failed"
                    svc.error = "did not answer %s within %gs; stopped it (its output is in %s)" % (
                        probe_url(SPEC_BY_NAME[svc.name], listen), timeout_s, svc.output)
                    stop([svc], signal.SIGTERM, grace_s=1.0)
            return
        time.sleep(poll_s)


def signal_group(svc, sig):
    if svc.pid is None or svc.exit_code is not None:
        return
    try:
        os.killpg(svc.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(svc.pid, sig)


def stop(services, sig=signal.SIGTERM, grace_s=3.0, poll_s=0.02):
    """Signal every service's process group, wait up to ``grace_s``, then SIGKILL the rest."""
    for svc in services:
        signal_group(svc, sig)
    deadline = time.monotonic() + grace_s
    while True:
        for svc in services:
            reap(svc)
        alive = [svc for svc in services if svc.pid is not None and svc.exit_code is None]
        if not alive:
            return []
        if time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    for svc in alive:
        signal_group(svc, signal.SIGKILL)
    for svc in alive:
        try:
            _pid, wait_status = os.waitpid(svc.pid, 0)
            svc.exit_code = _exit_code(wait_status)
        except ChildProcessError:
            svc.exit_code = -1
    return [svc.name for svc in alive]


VERSION_RE = re.compile(r"\bversion[:\s]+v?(\d[^\s,()]*)", re.IGNORECASE)


def parse_version(text):
    """The version number in ``<binary> --version`` output, else its first line, else None."""
    first = next((line.strip() for line in (text or "").splitlines() if line.strip()), "")
    match = VERSION_RE.search(text or "")
    if match:
        return match.group(1)
    return first or None


def start_version_probes(found, user, base_env):
    """Run ``<binary> --version`` for every present service at once (as devuser, nothing written)."""
    probes = {}
    env = identity.child_env(user, base_env)
    kwargs = {}
    if os.geteuid() == 0:
        kwargs = {"user": user.uid, "group": user.gid, "extra_groups": []}
    for name, binary in found.items():
        if not binary:
            continue
        try:
            # The container runtime is not an Ansible module: run_command is not available here.
            probes[name] = subprocess.Popen(  # pylint: disable=ansible-bad-function
                [binary, "--version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=env, cwd="/", **kwargs)
        except OSError:
            continue
    return probes


def collect_versions(probes, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    versions = {}
    for name, proc in probes.items():
        try:
            out, _err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            versions[name] = parse_version(out.decode("utf-8", "replace"))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            versions[name] = None
    return versions


def record(name, found, svc, version, listen, chosen=True):
    """The manifest entry of one service (status running|missing|failed, or disabled when not ``chosen``:
    contract.ENV_TELEMETRY_SERVICES left it out, e.g. because the host runs its own)."""
    spec = SPEC_BY_NAME[name]
    entry = {
        "status": "missing", "binary": found.get(name), "pid": None, "port": port(spec), "ports": ports(name),
        "listen": listen, "version": version, "user": "root" if spec.as_root else contract.DEVUSER,
        "optional": spec.optional, "ready_s": None, "output": None, "error": None, "warnings": [],
    }
    if not chosen:
        entry["status"] = "disabled"
        return entry
    if svc is None:
        if spec.missing_warning:
            entry["warnings"].append(spec.missing_warning)
        return entry
    entry.update({"status": "running" if svc.status == "running" else "failed", "pid": svc.pid,
                  "ready_s": svc.ready_s, "output": svc.output, "error": svc.error})
    if entry["status"] == "failed":
        entry["warnings"].append("%s failed to start: %s" % (name, svc.error))
    return entry

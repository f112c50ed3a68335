# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container init (PID 1): devuser, run layout, telemetry services, manifest, pointer.

Order of a start (docs/container-init.md):
  1. root: devuser passwd/group entries for SGLANG_PREP_UID:GID (nothing else as root).
  2. devuser: /telemetry and /profiles writable (else a message naming path, owner seen and
     owner expected, exit 1, nothing written), stale pointer removed, run directories, the
     session log telemetry/logs/<run_id>.log, the per-run Prometheus (and Jaeger) config.
  3. services started at once (devuser; nv-hostengine as root), readiness polled every 50 ms.
  4. devuser: manifest written atomically, then the pointer (.tmp, rename).
  5. PID 1 waits for signals: reaps children, forwards SIGTERM/SIGINT, exits promptly.

Run by hand for debugging: ``python3 -m sglang_prep init --check`` (preflight only, writes
nothing) or ``python3 -m sglang_prep init`` in a ``docker run --entrypoint bash`` shell.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time

from .. import __version__, caches, contract, jsonio, manifest, pointer
from . import bundle, identity, jaeger_config, metrics, pid1
from . import prometheus_config, retention, runid, services, sessionlog, state
from ..errors import PrepError
from .permissions import require_writable

SOURCE = "init"
DEFAULT_SERVICE_TIMEOUT_S = 30.0
DEFAULT_STOP_GRACE_S = 3.0


# ---------------------------------------------------------------- progress lines
class Reporter:
    """Init's progress: always on stderr (docker logs); in the session log once it exists.

    Session-log lines are appended by a forked devuser process, never by root.
    """

    def __init__(self, user=None):
        self.user = user
        self.log_file = None

    def __call__(self, *messages):
        for message in messages:
            sys.stderr.write("%s [%s] %s\n" % (sessionlog.stamp(), SOURCE, message))
        sys.stderr.flush()
        if self.log_file and self.user and messages:
            try:
                identity.run_as(self.user, _append_lines, self.log_file, list(messages))
            except PrepError as exc:
                sys.stderr.write("%s [%s] cannot append to %s: %s\n" % (sessionlog.stamp(), SOURCE, self.log_file,
                                                                        exc.message))


def _append_lines(log_file, messages):
    for message in messages:
        sessionlog.log(log_file, SOURCE, message)


# ---------------------------------------------------------------- devuser steps (run in forked children)
def host_roots_from_env(env):
    return {name: (env.get(var) or None) for name, var in contract.ENV_HOST_ROOTS.items()}


def preflight(user, host_roots, telemetry_root=contract.TELEMETRY_ROOT, profiles_root=contract.PROFILES_ROOT,
              hf_root=contract.HF_ROOT, remove_stale_pointer=False):
    """As devuser: telemetry/ and profiles/ must be writable. Returns {warnings, stale_pointer}.

    With ``remove_stale_pointer`` the previous run's pointer goes as soon as telemetry/ is known
    to be writable, so nobody reads it while this run starts (or after it failed).
    """
    out = {"warnings": [], "stale_pointer": None}
    require_writable(telemetry_root, user.uid, user.gid, host_roots.get("telemetry"), what="telemetry directory")
    if remove_stale_pointer:
        out["stale_pointer"] = _remove_stale_pointer(contract.pointer_path(telemetry_root))
    require_writable(profiles_root, user.uid, user.gid, host_roots.get("profiles"), what="profiles directory")
    if os.path.isdir(hf_root):
        try:
            require_writable(hf_root, user.uid, user.gid, host_roots.get("huggingface"), what="Hugging Face cache")
        except PrepError as exc:
            out["warnings"].append(exc.message + " (model downloads into the cache will fail)")
    return out


def _remove_stale_pointer(path):
    """Delete the previous run's pointer; returns the manifest it named (or None if there was none)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    try:
        named = pointer.parse_pointer(text, path)["container"]
    except PrepError:
        named = "unreadable pointer"
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return named


def prepare_run(run_id, user, host_roots, found, listen, started_at, image, telemetry_root=contract.TELEMETRY_ROOT,
                profiles_root=contract.PROFILES_ROOT, hf_root=contract.HF_ROOT, port=contract.SERVER_PORT,
                keep_runs=contract.TELEMETRY_KEEP_RUNS):
    """As devuser: preflight, run directories, the session log, per-run service configs (scraping ``port``),
    then the per-run telemetry data of all but the newest ``keep_runs`` runs pruned (retention.py)."""
    out = preflight(user, host_roots, telemetry_root, profiles_root, hf_root, remove_stale_pointer=True)
    paths = services.storage(run_id, telemetry_root)
    log_file = contract.session_log_path(run_id, telemetry_root)
    metrics_file = contract.metrics_path(telemetry_root)
    for directory in (os.path.dirname(log_file), contract.models_dir(run_id, telemetry_root),
                      paths["prometheus_dir"], os.path.dirname(metrics_file)):
        os.makedirs(directory, exist_ok=True)
    try:  # the previous run's metrics: node_exporter must never show them as this run's
        os.unlink(metrics_file)
    except FileNotFoundError:
        pass
    sessionlog.log(log_file, SOURCE, "run %s started at %s: devuser %d:%d, image %s" % (
        run_id, started_at, user.uid, user.gid, image or "(not given)"))
    exporters = [name for name in services.EXPORTERS if found.get(name)]
    jsonio.write_text_atomic(paths["prometheus_config"], prometheus_config.render(run_id, listen, exporters, port))
    if found.get("jaeger"):
        os.makedirs(paths["jaeger_dir"], exist_ok=True)
        if os.path.basename(found["jaeger"]) != "jaeger-all-in-one":
            jsonio.write_text_atomic(paths["jaeger_config"], jaeger_config.render_v2(paths["jaeger_dir"], listen))
    pruned = retention.prune(telemetry_root, run_id, keep_runs)
    out["warnings"].extend(pruned["warnings"])
    # what a killed bundle install left: rolled back or dropped, each outcome in the session log (bundle.clear_stale)
    bundle.clear_stale(profiles_root, lambda message: sessionlog.log(log_file, SOURCE, "bundle staging: " + message))
    out.update({"log_file": log_file, "storage": paths, "pruned": pruned["pruned"], "keep_runs": keep_runs})
    return out


def publish(data, host_manifest, telemetry_root=contract.TELEMETRY_ROOT, profiles_root=contract.PROFILES_ROOT):
    """As devuser: cache snapshot into the manifest, manifest (atomic), the pointer (atomic), then the metrics.

    Returns {pointer, metrics_warning}: metrics that cannot be written are a warning, never a failure.
    """
    host_profiles = data["paths"]["host"].get("profiles_root")
    data["profile_cache"]["start"] = caches.snapshot(profiles_root, host_profiles_root=host_profiles)
    path = data["paths"]["container"]["manifest"]
    jsonio.write_json_atomic(path, data)
    manifest.read_manifest(path)  # the pointer only ever names a complete, valid manifest
    pointer_file = pointer.write_pointer(path, host_manifest, telemetry_root)
    try:
        view = state.RunView(loaded=({"container": path, "host": host_manifest}, data),
                             snapshot=data["profile_cache"]["start"])
        warning = metrics.publish(view)
    except Exception as exc:  # metrics never fail the init
        warning = "the metrics textfile could not be written: %s" % exc
    return {"pointer": pointer_file, "metrics_warning": warning}


# ---------------------------------------------------------------- the run
def _listen(env):
    return (env.get(contract.ENV_LISTEN) or "").strip() or contract.DEFAULT_LISTEN


def server_port(env):
    """The stage servers' port: contract.ENV_SERVER_PORT, else contract.SERVER_PORT; PrepError(bad_input)."""
    text = (env.get(contract.ENV_SERVER_PORT) or "").strip()
    if not text:
        return contract.SERVER_PORT
    port = int(text) if text.isdigit() else 0
    if not 1 <= port <= 65535:
        raise PrepError("bad_input", "%s=%r is not a TCP port (1 to 65535); set it to the port the stage servers "
                        "listen on (the prime role's server port, default %d) or leave it unset"
                        % (contract.ENV_SERVER_PORT, text, contract.SERVER_PORT), value=text)
    return port


def _setup_identity(env, report):
    user = identity.from_env(env)
    if os.geteuid() == 0:
        changes = identity.ensure_entries(user)
        report("devuser %d:%d (passwd entry %s, group entry %s)"
               % (user.uid, user.gid, changes["passwd"], changes["group"]))
        return user, changes
    if os.geteuid() != user.uid:
        raise PrepError("permissions_unexpected",
                        "init runs as uid %d, neither root nor %s=%d: start the container without --user so init "
                        "can create devuser" % (os.geteuid(), contract.ENV_UID, user.uid))
    return user, {"passwd": "skipped (not root)", "group": "skipped (not root)"}


def run(options, env=None):
    """Start the run and supervise it; returns the exit code."""
    env = dict(os.environ if env is None else env)
    t0 = time.time()
    mono0 = time.monotonic()
    flag = pid1.StopFlag().install()
    report = Reporter()
    try:
        user, entries = _setup_identity(env, report)
    except PrepError as exc:
        report("error (%s): %s" % (exc.error_type, exc.message))
        return 1
    report.user = user
    if options.check:
        return check(user, env, report)

    try:
        port = server_port(env)
        chosen = contract.telemetry_services(env)
        service_ports = contract.service_ports(env)
    except PrepError as exc:
        report("error (%s): %s" % (exc.error_type, exc.message), "no run was published (no pointer); init exits")
        return 1
    run_id = runid.new_run_id(t0)
    started_at = runid.iso_utc(t0)
    listen = _listen(env)
    keep_runs, keep_warning = retention.keep_runs(env)
    host_roots = host_roots_from_env(env)
    found = services.discover(env.get("PATH"), chosen)
    versions_pending = services.start_version_probes(found, user, env)
    try:
        layout = identity.run_as(user, prepare_run, run_id, user, host_roots, found, listen, started_at,
                                 env.get(contract.ENV_IMAGE), port=port, keep_runs=keep_runs)
    except PrepError as exc:
        services.collect_versions(versions_pending, timeout_s=1.0)
        report("error (%s): %s" % (exc.error_type, exc.message), "no run was published (no pointer); init exits")
        return 1
    report.log_file = layout["log_file"]
    report("run %s: session log %s; stage servers on port %d; telemetry ports %s" % (
        run_id, layout["log_file"], port, ", ".join("%s %d" % item for item in sorted(service_ports.items()))))
    if layout["stale_pointer"]:
        report("removed the previous run's pointer (%s)" % layout["stale_pointer"])
    if keep_warning:
        layout["warnings"].append(keep_warning)
    if layout["pruned"]:
        report("pruned the telemetry data of %d older run(s), keeping the newest %d: %s"
               % (len(layout["pruned"]), keep_runs, ", ".join(layout["pruned"])))
    started = []
    for name, binary in found.items():
        if binary:
            started.append(services.start(name, binary, run_id, listen, user, layout["log_file"], env))
    services.wait_ready(started, listen, options.service_timeout, should_stop=flag)
    versions = services.collect_versions(versions_pending)
    by_name = {svc.name: svc for svc in started}
    entries_by_service = {}
    warnings = list(layout["warnings"])
    for name in found:
        entry = services.record(name, found, by_name.get(name), versions.get(name), listen, chosen=name in chosen)
        entries_by_service[name] = entry
        warnings.extend(entry["warnings"])
        report(_service_line(name, entry))
    for warning in warnings:
        report("warning: " + warning)

    supervisor = pid1.Supervisor(started, flag, report, grace_s=options.stop_grace)
    if flag():
        supervisor.shutdown(flag.signum)
        return 0

    data = manifest.build_manifest(
        run_id, started_at, env.get(contract.ENV_IMAGE), env.get(contract.ENV_GIT_REVISION), socket.gethostname(),
        {"name": user.name, "uid": user.uid, "gid": user.gid, "home": user.home},
        entries_by_service, listen, prometheus_config.local_address(listen), host_roots, None, layout["storage"],
        warnings=warnings,
        init_info={"pid": os.getpid(), "runtime_version": __version__, "passwd_entry": entries["passwd"],
                   "group_entry": entries["group"], "ready_s": round(time.monotonic() - mono0, 3),
                   "published_at": runid.iso_utc(time.time()),
                   "telemetry_retention": {"keep_runs": keep_runs, "pruned": layout["pruned"]}},
        server_port=port)
    host_manifest = data["paths"]["host"]["manifest"]
    try:
        published = identity.run_as(user, publish, data, host_manifest)
    except PrepError as exc:
        report("error (%s): %s" % (exc.error_type, exc.message), "no pointer published; stopping services")
        supervisor.shutdown(signal.SIGTERM)
        return 1
    report("manifest %s complete; pointer %s published %.2fs after start%s" % (
        data["paths"]["container"]["manifest"], published["pointer"], time.monotonic() - mono0,
        " (host: %s)" % host_manifest if host_manifest else ""))
    if published["metrics_warning"]:
        report("warning: " + published["metrics_warning"])
    signum = supervisor.serve()
    supervisor.shutdown(signum)
    return 0


def _service_line(name, entry):
    if entry["status"] == "disabled":
        return "service %s: not started (%s leaves it out)" % (name, contract.ENV_TELEMETRY_SERVICES)
    if entry["status"] == "missing":
        return "service %s: missing" % name
    if entry["status"] == "failed":
        return "service %s: failed: %s" % (name, entry["error"])
    return "service %s: running (pid %s, %s port %s, version %s, ready in %ss)" % (
        name, entry["pid"], entry["listen"], entry["port"], entry["version"], entry["ready_s"])


def check(user, env, report):
    """Preflight only (``init --check``): writability as devuser and the services found. Writes nothing."""
    host_roots = host_roots_from_env(env)
    found = services.discover(env.get("PATH"))
    versions = services.collect_versions(services.start_version_probes(found, user, env))
    result = {"devuser": {"name": user.name, "uid": user.uid, "gid": user.gid}, "listen": _listen(env),
              "host_roots": host_roots, "services": {name: {"binary": found[name], "version": versions.get(name)}
                                                     for name in found}}
    code = 0
    keep, keep_warning = retention.keep_runs(env)
    result["telemetry_keep_runs"] = keep
    if keep_warning:
        report("warning: " + keep_warning)
    try:
        result["server_port"] = server_port(env)
    except PrepError as exc:
        result.update({"server_port": None, "error_type": exc.error_type, "message": exc.message})
        report("error (%s): %s" % (exc.error_type, exc.message))
        code = 1
    try:
        pre = identity.run_as(user, preflight, user, host_roots)
        result.update({"writable": True, "warnings": pre["warnings"]})
        report("telemetry and profiles are writable by devuser %d:%d" % (user.uid, user.gid))
        for warning in pre["warnings"]:
            report("warning: " + warning)
    except PrepError as exc:
        result.update({"writable": False, "error_type": exc.error_type, "message": exc.message})
        report("error (%s): %s" % (exc.error_type, exc.message))
        code = 1
    for name, info in result["services"].items():
        report("service %s: %s" % (name, "%s (%s)" % (info["binary"], info["version"]) if info["binary"] else "missing"))
    sys.stdout.write("RESULT %s\n" % json.dumps(result, sort_keys=True))
    sys.stdout.flush()
    return code


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python3 -m sglang_prep init",
        description="Container init (PID 1): creates devuser, starts the telemetry services, writes the run "
                    "manifest and publishes the pointer, then supervises until docker stop.")
    parser.add_argument("--check", action="store_true",
                        help="preflight only: devuser, writability of /telemetry and /profiles, services found; "
                             "publishes nothing (safe inside a running container)")
    parser.add_argument("--service-timeout", type=float, default=DEFAULT_SERVICE_TIMEOUT_S, metavar="S",
                        help="seconds each service may take to answer its readiness probe (default %(default)s)")
    parser.add_argument("--stop-grace", type=float, default=DEFAULT_STOP_GRACE_S, metavar="S",
                        help="seconds between forwarding SIGTERM and SIGKILL at shutdown (default %(default)s)")
    return parser.parse_args(argv)


def main(argv=None):
    """Entry point of ``python3 -m sglang_prep init`` (cli.py) and ``python3 -m sglang_prep.init``.

    Returns init's exit code. Without ``argv`` the options come from the command line, after
    the ``init`` subcommand word when there is one.
    """
    if argv is None:
        argv = sys.argv[1:]
        if argv and argv[0] == "init":
            argv = argv[1:]
    return run(parse_args(list(argv)))


if __name__ == "__main__":
    raise SystemExit(main())

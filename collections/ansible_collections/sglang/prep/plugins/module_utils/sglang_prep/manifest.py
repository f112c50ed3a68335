# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run manifest telemetry/container_runs/<run_id>.json: schema, reading, path mapping.

Written once by the container init (as devuser) before the pointer is published, never
mutated afterwards. Everything that needs a path of the current run reads it from here.
"""

from __future__ import annotations

import json
import os

from . import contract, pointer
from .errors import PrepError

# Top-level fields every manifest carries (docs/container-init.md).
REQUIRED_FIELDS = (
    "schema_version", "container_run_id", "started_at", "image", "git_revision",
    "services", "telemetry_surfaces", "storage", "paths", "caches", "profile_cache",
)
REQUIRED_CONTAINER_PATHS = ("telemetry_root", "profiles_root", "models_root", "log_file", "manifest", "run_dir")


def read_manifest(path):
    """Load and check a manifest; PrepError(bad_manifest) says what is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise PrepError("bad_manifest", "manifest %s named by the pointer does not exist; the pointer is "
                        "stale (restart the container so init publishes a new run)" % path, path=path)
    except (OSError, ValueError) as exc:
        raise PrepError("bad_manifest", "manifest %s is unreadable or not JSON: %s" % (path, exc), path=path)
    if not isinstance(data, dict):
        raise PrepError("bad_manifest", "manifest %s is not a JSON object" % path, path=path)
    missing = [f for f in REQUIRED_FIELDS if f not in data]
    cpaths = data.get("paths", {}).get("container", {}) if isinstance(data.get("paths"), dict) else {}
    missing += ["paths.container." + p for p in REQUIRED_CONTAINER_PATHS if p not in cpaths]
    if missing:
        raise PrepError("bad_manifest", "manifest %s lacks %s; it was not written by this version of the "
                        "container init (restart the container)" % (path, ", ".join(missing)), path=path)
    return data


def load_current(pointer_file=None):
    """(pointer dict, manifest dict) of the current run, read inside the container."""
    ptr = pointer.read_pointer(pointer_file or contract.pointer_path())
    return ptr, read_manifest(ptr["container"])


def host_path(manifest, container_path):
    """Map a container path under a bind mount to the host path, from manifest paths.host."""
    if not container_path:
        return None
    host = manifest.get("paths", {}).get("host", {}) or {}
    for key, root in (("telemetry_root", contract.TELEMETRY_ROOT), ("profiles_root", contract.PROFILES_ROOT),
                      ("models_root", contract.MODELS_ROOT), ("hf_root", contract.HF_ROOT)):
        if host.get(key) and (container_path == root or container_path.startswith(root + "/")):
            rel = os.path.relpath(container_path, root)
            return host[key] if rel == "." else os.path.join(host[key], rel)
    return None


# ---------------------------------------------------------------- building (container init only)
HOST_ROOT_KEYS = {"telemetry": "telemetry_root", "profiles": "profiles_root", "models": "models_root",
                  "huggingface": "hf_root"}


def container_paths(run_id, telemetry_root=contract.TELEMETRY_ROOT):
    """paths.container of a run."""
    return {
        "telemetry_root": telemetry_root,
        "profiles_root": contract.PROFILES_ROOT,
        "models_root": contract.MODELS_ROOT,
        "hf_root": contract.HF_ROOT,
        "log_file": contract.session_log_path(run_id, telemetry_root),
        "manifest": contract.manifest_path(run_id, telemetry_root),
        "run_dir": contract.run_dir(run_id, telemetry_root),
        "pointer": contract.pointer_path(telemetry_root),
    }


def host_paths(cpaths, host_roots):
    """paths.host: every container path mapped through the host roots the role passed (None if not given)."""
    roots = {HOST_ROOT_KEYS[name]: (value or None) for name, value in (host_roots or {}).items() if name in HOST_ROOT_KEYS}
    view = {"paths": {"host": roots}}
    return {key: host_path(view, value) for key, value in cpaths.items()}


def telemetry_surfaces(services, listen_host, server_port=contract.SERVER_PORT):
    """Where each telemetry surface answers inside the container; None when its service is not running."""
    def up(name):
        return (services.get(name) or {}).get("status") == "running"

    def url(scheme, port, path=""):
        return "%s%s:%d%s" % (scheme, listen_host, port, path)

    ports = contract.service_ports()
    return {
        "prometheus": url("http://", ports["prometheus"]) if up("prometheus") else None,
        "node_exporter": url("http://", ports["node_exporter"], "/metrics") if up("node_exporter") else None,
        "dcgm_exporter": url("http://", ports["dcgm_exporter"], "/metrics") if up("dcgm_exporter") else None,
        "jaeger_otlp_grpc": url("", ports["jaeger_otlp_grpc"]) if up("jaeger") else None,
        "jaeger_otlp_http": url("http://", ports["jaeger_otlp_http"]) if up("jaeger") else None,
        "jaeger_ui": url("http://", ports["jaeger_ui"]) if up("jaeger") else None,
        # Answers only while a warm-up stage server runs (metrics on, the run's server port).
        "sglang_metrics": "http://127.0.0.1:%d/metrics" % int(server_port),
    }


def build_manifest(run_id, started_at, image, git_revision, hostname, devuser, services, listen, listen_host,
                   host_roots, profile_cache_start, storage_paths, warnings=(), init_info=None,
                   telemetry_root=contract.TELEMETRY_ROOT, server_port=contract.SERVER_PORT):
    """The manifest of one container run (docs/container-init.md).

    ``services`` maps service name to its entry (status running|missing|failed, port, pid,
    version, listen, warnings); ``host_roots`` maps telemetry/profiles/models/huggingface to the
    host paths the role passed (None where not given); ``storage_paths`` holds the per-run
    service paths (prometheus_tsdb, prometheus_config, jaeger_dir); ``server_port`` is the stage
    servers' port (contract.ENV_SERVER_PORT), which Prometheus scrapes and stage runs default to.
    """
    cpaths = container_paths(run_id, telemetry_root)
    hpaths = host_paths(cpaths, host_roots)
    host_view = {"paths": {"host": hpaths}}
    run_dir = cpaths["run_dir"]
    jaeger_present = (services.get("jaeger") or {}).get("status") != "missing"
    data = {
        "schema_version": contract.SCHEMA_VERSION,
        "container_run_id": run_id,
        "started_at": started_at,
        "image": image or None,
        "git_revision": git_revision or None,
        "hostname": hostname,
        "devuser": dict(devuser),
        "listen": listen,
        "server_port": int(server_port),
        "services": services,
        "telemetry_surfaces": telemetry_surfaces(services, listen_host, server_port),
        "storage": {
            "log_file": cpaths["log_file"],
            "prometheus_config": storage_paths["prometheus_config"],
            "prometheus_tsdb": storage_paths["prometheus_tsdb"],
            "jaeger_storage": storage_paths["jaeger_dir"] if jaeger_present else None,
            "models_dir": contract.models_dir(run_id, telemetry_root),  # <model_key>/stages/, one per model
            "prep_result": contract.prep_result_path(run_id, telemetry_root),
        },
        "paths": {"container": cpaths, "host": hpaths},
        "caches": {name: {"path": path, "env": env, "host_path": host_path(host_view, path)}
                   for name, (path, env) in sorted(contract.CACHES.items())},
        "profile_cache": {"start": profile_cache_start},
        "init": dict(init_info or {}),
        "warnings": list(warnings),
    }
    missing = [f for f in REQUIRED_FIELDS if f not in data]
    if missing:  # REQUIRED_FIELDS is the schema; a builder that misses one is a bug here
        raise ValueError("build_manifest misses %s" % ", ".join(missing))
    return data

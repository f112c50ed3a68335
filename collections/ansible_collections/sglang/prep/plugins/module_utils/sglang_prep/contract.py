# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one home of every sglang.prep contract: paths, names, settings, stage order.

Stdlib only. Imported by the container runtime and by the host modules alike;
nothing else may restate these values. The stages themselves (order, caches, switches,
signature fields) are rows of registry.py; the names below are derived from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath

from . import registry
from .errors import ERROR_TYPES as _ERROR_TYPES, PrepError

SCHEMA_VERSION = "1"

# ---------------------------------------------------------------- container paths
TELEMETRY_ROOT = "/telemetry"
PROFILES_ROOT = "/profiles"
MODELS_ROOT = "/models"
HF_ROOT = "/home/devuser/.cache/huggingface"
DEVUSER = "devuser"
DEVUSER_HOME = "/home/devuser"
RUNTIME_MOUNT = "/opt/sglang-prep"  # parent of the read-only sglang_prep package
# The runtime: the package the role deploys and the container mounts, and how every layer starts it (the
# container's entrypoint with "init", the host modules' docker exec with a subcommand, the CLI's own name).
RUNTIME_PACKAGE = "sglang_prep"
RUNTIME_ENTRY_POINT = ("python3", "-m", RUNTIME_PACKAGE)

POINTER_NAME = "container_run_meta.env"
# The label on the prime container carrying the digest of all its settings (the role's container spec): a
# running container with the wanted digest, on the wanted image, needs no closer look.
CONTAINER_SPEC_LABEL = "sglang.prep.spec"
POINTER_KEY = "CONTAINER_RUN_META_JSON"
POINTER_HOST_KEY = "CONTAINER_RUN_META_JSON_HOST"

# Host directories under the host root ($HOME/sglang-observability), and their mounts.
HOST_SUBDIRS = {
    "telemetry": TELEMETRY_ROOT,
    "profiles": PROFILES_ROOT,
    "models": MODELS_ROOT,
    "huggingface": HF_ROOT,
}

# ---------------------------------------------------------------- container env (role -> init)
ENV_UID = "SGLANG_PREP_UID"
ENV_GID = "SGLANG_PREP_GID"
ENV_HOST_ROOTS = {
    "telemetry": "SGLANG_PREP_HOST_TELEMETRY_ROOT",
    "profiles": "SGLANG_PREP_HOST_PROFILES_ROOT",
    "models": "SGLANG_PREP_HOST_MODELS_ROOT",
    "huggingface": "SGLANG_PREP_HOST_HF_ROOT",
}
ENV_IMAGE = "SGLANG_PREP_IMAGE"
ENV_GIT_REVISION = "SGLANG_PREP_GIT_REVISION"
ENV_LISTEN = "SGLANG_PREP_TELEMETRY_LISTEN"  # address telemetry listeners bind to
DEFAULT_LISTEN = "127.0.0.1"
# The stage servers' port: init writes it into the Prometheus scrape config and the manifest
# (server_port), and stage runs use the manifest's value unless --port says otherwise.
ENV_SERVER_PORT = "SGLANG_PREP_SERVER_PORT"
# Extra server arguments that carry a secret (--api-key ...) reach the runtime in this variable (a JSON list of
# strings, taken after any --extra-server-arg), never on a command line: the host passes `docker exec -e NAME`
# and the value through the docker CLI's environment. The runtime removes it from its own environment at once.
ENV_EXTRA_SERVER_ARGS = "SGLANG_PREP_EXTRA_SERVER_ARGS"
# How many runs keep their per-run telemetry data (telemetry/prometheus/<run_id>/, telemetry/jaeger/<run_id>/):
# init prunes the older ones at start; 0 keeps every run's.
ENV_TELEMETRY_KEEP_RUNS = "SGLANG_PREP_TELEMETRY_KEEP_RUNS"
TELEMETRY_KEEP_RUNS = 10  # default of ENV_TELEMETRY_KEEP_RUNS

# Telemetry service ports (inside the container's network namespace): the defaults; ENV_TELEMETRY_PORTS
# overrides any of them (service_ports()), so the container's services never collide with a host's own exporters.
SERVICE_PORTS = {
    "prometheus": 9090,
    "node_exporter": 9100,
    "dcgm_exporter": 9400,
    "jaeger_otlp_grpc": 4317,
    "jaeger_otlp_http": 4318,
    "jaeger_ui": 16686,
    "jaeger_admin": 14269,
    "nv_hostengine": 5555,
}
# The telemetry services init may start, in start order; ENV_TELEMETRY_SERVICES (comma-separated) chooses
# some of them (unset: every one the image has). Each service's ports are the SERVICE_PORTS keys it owns.
TELEMETRY_SERVICES = ("prometheus", "node_exporter", "dcgm_exporter", "jaeger", "nv_hostengine")
SERVICE_PORT_KEYS = {
    "prometheus": ("prometheus",),
    "node_exporter": ("node_exporter",),
    "dcgm_exporter": ("dcgm_exporter",),
    "jaeger": ("jaeger_otlp_grpc", "jaeger_otlp_http", "jaeger_ui", "jaeger_admin"),
    "nv_hostengine": ("nv_hostengine",),
}
ENV_TELEMETRY_SERVICES = "SGLANG_PREP_TELEMETRY_SERVICES"
ENV_TELEMETRY_PORTS = "SGLANG_PREP_TELEMETRY_PORTS"  # JSON object {SERVICE_PORTS key: port}
# Where the role mounts the host's node_exporter textfile directory (prime_metrics_textfile_dir): when it is
# mounted, the metrics textfile is written there too, for the host's own node_exporter.
TEXTFILE_MOUNT = "/textfile_collector"

# ---------------------------------------------------------------- stages (rows of registry.py)
STAGE_ORDER = registry.ORDER
MODES = ("ensure", "rebuild", "check")
# installed: the stage's caches came from a bundle built on an identical host (container/bundle.py)
STATUSES = ("ok", "error", "noop", "skipped", "would_run", "installed")
SERVER_PORT = 30000  # default of ENV_SERVER_PORT

# The canonical priming settings (hard policy, docs/runtime.md). Every stage
# server gets them as explicit CLI flags, built in argv.py and nowhere else.
# --max-mamba-cache-size is not among them: at 1 a hybrid (mamba/linear-attention) model has no request slot
# (max_mamba_cache_size // 3 with the radix cache, sglang-facts.md 10) and fails to start, so SGLang sizes
# the state cache from GPU memory as it does in serving (an extra server arg may still set it).
CANONICAL_SETTINGS = {
    "mem_fraction_static": 0.94,
    "kv_cache_dtype": "fp8_e4m3",
    "chunked_prefill_size": 4096,
    "context_length": 272000,
    "max_prefill_tokens": 272000,
    "disable_cuda_graph": False,
}
EXPECTED_KV_TORCH_DTYPES = ("torch.float8_e4m3fn", "torch.float8_e4m3fnuz")

# ---------------------------------------------------------------- caches (real names, sglang-facts.md 6)
# How a cache bundle (container/bundle.py) installs a cache's entries on a receiver that has caches of its own:
# BUNDLE_MERGE  the names are keys of what they hold (a hash of the compiled source and its inputs, a MoE shape):
#               entries are added one by one, an equal one is kept, one that differs refuses the bundle; the
#               bundled model's own subtree (<cache>/<model_key>/) is swapped whole
# BUNDLE_MODEL  the cache holds nothing but per-model subtrees: only the bundled model's subtree travels, swapped whole
BUNDLE_MERGE = "merge"
BUNDLE_MODEL = "model"


class Cache(tuple):
    """One cache: ``(container directory, environment variable)`` as a pair, and ``bundle`` (BUNDLE_MERGE or BUNDLE_MODEL)."""

    def __new__(cls, path, env, bundle):
        if bundle not in (BUNDLE_MERGE, BUNDLE_MODEL):
            raise ValueError("cache %s: bundle must be %r or %r" % (path, BUNDLE_MERGE, BUNDLE_MODEL))
        self = tuple.__new__(cls, (path, env))
        self.bundle = bundle
        return self


# name -> Cache(container directory, environment variable that points SGLang at it, how a bundle installs it)
CACHES = {
    "sglang": Cache(PROFILES_ROOT + "/sglang", "SGLANG_CACHE_DIR", BUNDLE_MERGE),
    "sglang_jit": Cache(PROFILES_ROOT + "/sglang_jit", "SGLANG_JIT_CACHE_DIR", BUNDLE_MERGE),
    "deep_gemm": Cache(PROFILES_ROOT + "/deep_gemm", "SGLANG_DG_CACHE_DIR", BUNDLE_MERGE),
    # configs/triton_<ver>/E=..,N=..,device_name=...json: one file per MoE shape, shared by the models of that shape
    "moe_configs": Cache(PROFILES_ROOT + "/moe_configs", "SGLANG_MOE_CONFIG_DIR", BUNDLE_MERGE),
    "flashinfer": Cache(PROFILES_ROOT + "/flashinfer", "FLASHINFER_WORKSPACE_BASE", BUNDLE_MERGE),
    "torchinductor": Cache(PROFILES_ROOT + "/torchinductor", "TORCHINDUCTOR_CACHE_DIR", BUNDLE_MERGE),
    "triton": Cache(PROFILES_ROOT + "/triton", "TRITON_CACHE_DIR", BUNDLE_MERGE),
    "cuda": Cache(PROFILES_ROOT + "/nv", "CUDA_CACHE_PATH", BUNDLE_MERGE),
    # CuTe DSL (nvidia-cutlass-dsl: FA4, cutedsl MLA/MoE kernels) keeps its compiled MLIR here, one file per kernel
    # named by the hash of its content (<dsl>_<hash>.mlir, published from a tmp.pid_<pid>_<uuid>/ directory with
    # os.replace; base_dsl/cache_helpers.py): a content-addressed cache. Unset, it is $TMPDIR/<user>/cutlass_python_cache,
    # outside /profiles and lost with the container.
    "cute_dsl": Cache(PROFILES_ROOT + "/cute_dsl", "CUTE_DSL_CACHE_DIR", BUNDLE_MERGE),
}


def cache_bundle_mode(name):
    """How a bundle installs cache ``name``: its ``bundle`` field (BUNDLE_MERGE for a plain pair, which never removes)."""
    return getattr(CACHES[name], "bundle", BUNDLE_MERGE)


# The zero-JIT switches (sglang-facts.md 12), one home for their names. Every server stage persists Triton's
# @triton.autotune results (triton/runtime/autotuner.py check_disk_cache: <hash>/<kernel>.autotune.json in
# TRITON_CACHE_DIR); without it every process benchmarks its autotuned kernels again and nothing is kept.
ENV_TRITON_CACHE_AUTOTUNING = "TRITON_CACHE_AUTOTUNING"
# The serve check's server: Triton prints "Triton autotuning for function <name>," for every benchmark it runs (a
# disk-cache hit prints nothing), and SGLang raises instead of compiling on a miss of its JIT-kernel cache
# (sglang/kernels/jit/utils/compile/loader.py load_jit: RuntimeError "JIT module '<name>' has no usable cached build
# under <dir>, and SGLANG_CRASH_ON_JIT_COMPILE forbids compiling at runtime. ..."). The switch covers only
# sglang.kernels.jit (SGLANG_JIT_CACHE_DIR): not Triton, DeepGEMM, FlashInfer, Inductor or CuTe DSL.
ENV_TRITON_PRINT_AUTOTUNING = "TRITON_PRINT_AUTOTUNING"
ENV_CRASH_ON_JIT_COMPILE = "SGLANG_CRASH_ON_JIT_COMPILE"
SERVE_CHECK_ENV = {ENV_CRASH_ON_JIT_COMPILE: "1", ENV_TRITON_PRINT_AUTOTUNING: "1"}
SERVER_ENV = {ENV_TRITON_CACHE_AUTOTUNING: "1"}
# Inductor's static CUDA launcher: "0" turns it off (torch/_inductor/config.py static_cuda_launcher_default). Set on
# every server stage when the inductor stage's probe finds that the image's torch needs it (container/inductor.py).
ENV_STATIC_CUDA_LAUNCHER = "TORCHINDUCTOR_USE_STATIC_CUDA_LAUNCHER"
# The inductor stage restarts its compiled server until a start adds no cache file, at most this many starts.
INDUCTOR_MAX_STARTS = 4

# The stack the fidelity tables (sglang-facts.md, the MoE names, the log lines the runtime reads) were checked
# against: SGLang 0.5.23 and its pins (its wheel's METADATA: torch==2.14.1, flashinfer_python==0.7.2,
# sgl-deep-gemm==0.2.3.post2; torch 2.14 pairs with Triton 3.8.0). The plan names every probed version that differs;
# prime_require_pinned_stack makes that a refusal (stack_unpinned). The image recipe's default base is this release.
FIDELITY_STACK = {
    "sglang": "0.5.23",
    "torch": "2.14.1",
    "triton": "3.8.0",
    "flashinfer": "0.7.2",
    "deep_gemm": "0.2.3.post2",
}
SGLANG_BASE_IMAGE = "lmsysorg/sglang:v%s-cu130" % FIDELITY_STACK["sglang"]

# The image puts the runtime on Python's path (images/Dockerfile: ENV PYTHONPATH=RUNTIME_MOUNT): the container's
# init and every stage import sglang_prep from there.
ENV_PYTHONPATH = "PYTHONPATH"
# What every stage server gets from the runtime besides the caches (container/argv.py server_env): the canonical
# context length is above most models' maximum, which SGLang refuses without it.
ENV_LONGER_CONTEXT = "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN"
# Environment the role, the image and the runtime set themselves: prime_extra_env and prime_stage_env may not
# override it (a container started as another UID, without its runtime on the path, or caches pointed elsewhere
# would break the run; devuser's HOME, USER and LOGNAME come from its passwd entry).
RESERVED_ENV = tuple(
    [ENV_UID, ENV_GID] + sorted(ENV_HOST_ROOTS.values())
    + [ENV_IMAGE, ENV_GIT_REVISION, ENV_LISTEN, ENV_SERVER_PORT, ENV_TELEMETRY_KEEP_RUNS, "HOME", "USER", "LOGNAME",
       ENV_PYTHONPATH, ENV_LONGER_CONTEXT]
    + [ENV_TELEMETRY_SERVICES, ENV_TELEMETRY_PORTS]
    + sorted(var for _path, var in CACHES.values()) + ["DG_JIT_CACHE_DIR"]
    + sorted(set(SERVE_CHECK_ENV) | set(SERVER_ENV) | {ENV_STATIC_CUDA_LAUNCHER}))
# Which cache holds a stage's output (None: the stage leaves nothing on disk), and where its per-model records
# (signature.json, compile.log) live: two columns of the registry, declared apart.
STAGE_CACHE = dict((stage.name, stage.cache) for stage in registry.STAGES)
STAGE_RECORDS = dict((stage.name, stage.records) for stage in registry.STAGES)
LOCKS_DIR = PROFILES_ROOT + "/.locks"

# The priming state as Prometheus metrics (container/metrics.py): node_exporter's textfile directory.
METRICS_DIR = TELEMETRY_ROOT + "/metrics"
METRICS_NAME = "sglang_prep.prom"
IN_PROGRESS_DIR = PROFILES_ROOT + "/.in_progress"

# The classified failures (stage JSON error_type): their home is errors.py, which imports nothing of the package.
ERROR_TYPES = _ERROR_TYPES


# The runtime CLI's machine-readable answer: the last stdout line that starts with this prefix,
# followed by one line of JSON. Host modules parse it; nothing else on stdout is a contract.
RESULT_PREFIX = "RESULT "

# The options a stage run, a plan and a bundle install share, as the host modules name them and as the runtime CLI
# takes them (one table: _docker_exec.stage_options_argv writes the command line from it, and a unit test holds the
# runtime's parser to it). form: "value" (--flag V, when set), "values" (--flag V V ..., when not empty), "switch"
# (the bare flag, when true), "repeat" (--flag=V for each; the extra server args, which travel in the environment
# instead when one of them is a secret).
STAGE_OPTION_FLAGS = (
    ("model", "--model", "value"),
    ("tp", "--tp", "value"),
    ("port", "--port", "value"),
    ("lock_timeout", "--lock-timeout", "value"),
    ("ready_timeout", "--ready-timeout", "value"),
    ("disk_headroom_mb", "--disk-headroom-mb", "value"),
    ("moe_dtype", "--moe-dtype", "value"),
    ("pointer", "--pointer", "value"),
    ("extra_server_args", "--extra-server-arg", "repeat"),
    ("serve_max_prompt_tokens", "--serve-max-prompt-tokens", "value"),
    ("require_pinned_stack", "--require-pinned-stack", "switch"),
    ("moe_batch_sizes", "--moe-batch-sizes", "values"),
)


def cache_env():
    """Environment that points every SGLang cache at /profiles."""
    env = {var: path for path, var in CACHES.values()}
    env["HOME"] = DEVUSER_HOME
    return env


def pointer_path(telemetry_root=TELEMETRY_ROOT):
    return telemetry_root + "/" + POINTER_NAME


def manifest_path(run_id, telemetry_root=TELEMETRY_ROOT):
    return "%s/container_runs/%s.json" % (telemetry_root, run_id)


def run_dir(run_id, telemetry_root=TELEMETRY_ROOT):
    return "%s/container_runs/%s" % (telemetry_root, run_id)


def model_path(text, models_root=MODELS_ROOT):
    """A model's container path as every layer takes it (the one home of this check and of its message).

    Trailing slashes are dropped (/models/m/ is /models/m). With ``models_root`` (the default), it must name a
    directory under the models root (/models/<name>, no '..'), else PrepError(model_not_found); ``models_root=None``
    only normalises (the runtime CLI, which is also run on paths of a test's own tree).
    """
    path = (text or "").rstrip("/") or (text or "")
    if models_root is None:
        return path
    rest = path[len(models_root) + 1:] if path.startswith(models_root + "/") else ""
    if not rest or ".." in rest.split("/") or rest.startswith("/"):
        raise PrepError("model_not_found", "model %r is not under %s: give the model's path inside the container, "
                        "e.g. %s/<name> for <host root>/models/<name> on the host"
                        % (text, models_root, models_root), model=text)
    return path


def model_key(model_path):
    """The model's identity in every per-model path (records and caches): never shared by two model paths.

    Its path under /models made one file name ('/' as '--'), plus a digest of the whole normalised path:
    /models/orgA/m -> orgA--m-<8 hex>, /models/orgB/m -> orgB--m-<other 8 hex>; /models/m/ is /models/m.
    """
    norm = posixpath.normpath(model_path or "/")
    rel = norm[len(MODELS_ROOT) + 1:] if norm.startswith(MODELS_ROOT + "/") else norm.lstrip("/")
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in rel.replace("/", "--"))[:80] or "model"
    return "%s-%s" % (name, hashlib.sha256(norm.encode("utf-8")).hexdigest()[:8])


def model_run_dir(run_id, model_path, telemetry_root=TELEMETRY_ROOT):
    """container_runs/<run_id>/models/<model_key>/: one model's records in one run."""
    return "%s/models/%s" % (run_dir(run_id, telemetry_root), model_key(model_path))


def models_dir(run_id, telemetry_root=TELEMETRY_ROOT):
    return run_dir(run_id, telemetry_root) + "/models"


def stage_json_path(run_id, stage, model_path, telemetry_root=TELEMETRY_ROOT):
    """The stage's last attempt for one model in one run (ok or error)."""
    return "%s/stages/%s.json" % (model_run_dir(run_id, model_path, telemetry_root), stage)


def stage_last_ok_path(run_id, stage, model_path, telemetry_root=TELEMETRY_ROOT):
    """The stage's last success for one model in one run: a later failure (rebuild, broken cache) never touches it."""
    return "%s/stages/%s.last_ok.json" % (model_run_dir(run_id, model_path, telemetry_root), stage)


def model_prep_result_path(run_id, model_path, telemetry_root=TELEMETRY_ROOT):
    """One model's aggregate in one run, rebuilt from its stage files."""
    return model_run_dir(run_id, model_path, telemetry_root) + "/prep_result.json"


def prep_result_path(run_id, telemetry_root=TELEMETRY_ROOT):
    """The run's aggregate: the latest model's prep_result plus an index of every model the run primed."""
    return run_dir(run_id, telemetry_root) + "/prep_result.json"


def progress_path(run_id, telemetry_root=TELEMETRY_ROOT):
    """The progress file of the run's prime job, rewritten at every change while it runs."""
    return run_dir(run_id, telemetry_root) + "/progress.json"


def metrics_path(telemetry_root=TELEMETRY_ROOT):
    """The node_exporter textfile of the priming state, rewritten at init and after every stage."""
    return telemetry_root + METRICS_DIR[len(TELEMETRY_ROOT):] + "/" + METRICS_NAME


def telemetry_services(env=None):
    """The telemetry services chosen by ENV_TELEMETRY_SERVICES (unset: all); PrepError(bad_input) for an unknown one."""
    text = ((os.environ if env is None else env).get(ENV_TELEMETRY_SERVICES) or "").strip()
    if not text:
        return TELEMETRY_SERVICES
    if text == "none":
        return ()
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in TELEMETRY_SERVICES]
    if unknown:
        raise PrepError("bad_input", "%s=%r names %s, which is not a telemetry service: choose from %s (or 'none')"
                        % (ENV_TELEMETRY_SERVICES, text, ", ".join(unknown), ", ".join(TELEMETRY_SERVICES)),
                        value=text)
    return tuple(name for name in TELEMETRY_SERVICES if name in names)


def service_ports(env=None):
    """SERVICE_PORTS with the overrides of ENV_TELEMETRY_PORTS; PrepError(bad_input) for a bad one."""
    text = ((os.environ if env is None else env).get(ENV_TELEMETRY_PORTS) or "").strip()
    ports = dict(SERVICE_PORTS)
    if not text:
        return ports
    try:
        given = json.loads(text)
    except ValueError:
        given = None
    if not isinstance(given, dict):
        raise PrepError("bad_input", "%s=%r is not a JSON object of ports ({\"node_exporter\": 9101})"
                        % (ENV_TELEMETRY_PORTS, text), value=text)
    for key, value in given.items():
        if key not in SERVICE_PORTS:
            raise PrepError("bad_input", "%s names %r, which is not a telemetry port: choose from %s"
                            % (ENV_TELEMETRY_PORTS, key, ", ".join(SERVICE_PORTS)), value=text)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise PrepError("bad_input", "%s gives %s=%r, which is not a TCP port (1 to 65535)"
                            % (ENV_TELEMETRY_PORTS, key, value), value=text)
        ports[key] = value
    return ports


def textfile_path(mount=TEXTFILE_MOUNT):
    """The metrics textfile in the host's node_exporter textfile directory (mounted at TEXTFILE_MOUNT)."""
    return mount + "/" + METRICS_NAME


def session_log_path(run_id, telemetry_root=TELEMETRY_ROOT):
    return "%s/logs/%s.log" % (telemetry_root, run_id)


def lock_path(stage):
    return "%s/%s.lock" % (LOCKS_DIR, stage)


# Host-wide: every stage server of every run on this host binds the one server port, so two primes of one host
# (two jobs, or two containers sharing the profiles tree) take this lock around every server stage.
SERVER_PORT_LOCK = "server_port"


def server_lock_path():
    return "%s/%s.lock" % (LOCKS_DIR, SERVER_PORT_LOCK)


def marker_path(stage):
    return "%s/%s.json" % (IN_PROGRESS_DIR, stage)


def stage_cache_dir(stage):
    """The directory of the cache a stage fills, or None for a stage without an on-disk cache."""
    name = STAGE_CACHE[stage]
    return CACHES[name][0] if name else None


def stage_records_dir(stage):
    """profiles/<records>/: the directory of a stage's per-model records (its cache's directory by default)."""
    name = STAGE_RECORDS[stage]
    return CACHES[name][0] if name in CACHES else PROFILES_ROOT + "/" + name


def model_slug(model_path):
    """Display name of a model path: /models/Foo-7B/ -> Foo-7B (not unique: paths use model_key)."""
    name = model_path.rstrip("/").rsplit("/", 1)[-1] or "model"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def stage_model_dir(stage, model_path):
    """profiles/<records>/<model_key>/: the stage's signature.json (and compile.log for deep_gemm)."""
    return "%s/%s" % (stage_records_dir(stage), model_key(model_path))


def signature_path(stage, model_path):
    return stage_model_dir(stage, model_path) + "/signature.json"

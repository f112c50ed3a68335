# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command line of the container runtime: python3 -m sglang_prep <subcommand> ...

Human progress goes to stderr (and the run's session log). The machine-readable answer is the
last stdout line: ``RESULT <json>``. This is the only module of the package that prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap

from . import argv as argv_mod
from .. import contract, registry
from ..errors import PrepError
from .moe import TUNER_DTYPES as MOE_TUNER_DTYPES

EXIT_OK, EXIT_ERROR = 0, 1  # argparse exits 2 on a usage error

EPILOG_EXIT = """exit codes:
  0  ok, noop, would_run or skipped
  1  the stage (or prime, report, aggregate) failed: see error_type and message in the RESULT line
  2  usage error (bad arguments)"""


def stage_list(indent=2, width=100):
    """The registry's stages, one summary each, for the help texts."""
    lines = []
    name_width = max(len(name) for name in registry.ORDER) + 2
    for stage in registry.STAGES:
        lines.append(textwrap.fill(stage.summary, width=width, initial_indent=" " * indent + stage.name.ljust(name_width),
                                   subsequent_indent=" " * (indent + name_width)))
    return "\n".join(lines)


MAIN_DESCRIPTION = """\
sglang_prep: the container side of the sglang.prep collection. Primes SGLang's kernel caches
under /profiles and records every result under /telemetry, for the run named by the pointer
/telemetry/container_run_meta.env (written by the container init).

Run it as the unprivileged container user, e.g.:
  docker exec -u devuser <container> python3 -m sglang_prep stage deep_gemm --model /models/<M>

Stages, in their canonical order:
%s

One stage: 'stage'. Several, as one job with a progress file: 'prime' (and 'plan' to ask first,
'report' to read back what a run recorded).
""" % stage_list()

STAGE_DESCRIPTION = """\
Prime one stage's cache for a model, under a per-stage lock, with the canonical settings
(mem_fraction_static 0.94, kv_cache_dtype fp8_e4m3, chunked_prefill_size 4096,
context_length and max_prefill_tokens 272000, CUDA graph on) passed as
explicit flags to a real `python3 -m sglang.launch_server` (the MoE tuner for moe_tune).

%s

Modes: ensure (default) does nothing when the stage's recorded signature
(/profiles/<cache>/<model_key>/signature.json; model_key: the model's path under /models plus
a digest, so /models/orgA/m and /models/orgB/m never share one) matches and no in-progress marker is left;
rebuild runs regardless; check reports whether ensure would run and why, and writes nothing.

Writes: /telemetry/container_runs/<run_id>/models/<model_key>/stages/<stage>.json (the last
attempt, atomic) and, on success, <stage>.last_ok.json next to it (a later failure never touches
it); then rebuilds the model's prep_result.json and the run's; appends progress and the server's output to the session log.
The last stdout line is RESULT <stage JSON> (plus stage_json, stage_json_host and reason, one line
of text that says what happened and why).""" % stage_list()


PLAN_DESCRIPTION = """\
Ask, in one call, what ensure (or rebuild, for the stages given with --rebuild) would do for each
of the given stages and why: every stage is checked as `stage --mode check` would check it (one
toolchain probe for all of them) and compared with what the current run has recorded for it.
Writes nothing and launches nothing.

Per stage: status (noop, would_run, skipped or error), reprime_reasons, signature and
previous_signature, and an action: run (it would run), record (primed, but the current run has no
matching stage JSON yet, so an ensure would record a noop) or none. Also: the run (ids and host
paths), to_run (the stages whose action is not none, in order), prep_result (as recorded) and
caches (a snapshot). The plan is a priming state (the same object prime and report return, with
the check answers as rows; docs/runtime.md). The last stdout line is RESULT <plan>."""

SERVE_DESCRIPTION = """\
Serve the model from the primed caches with a long-lived SGLang server on the run's server port: the serve check's
own configuration (canonical settings, metrics on, the extra server args, every cache variable), as devuser.
First every stage is planned against these settings: one that would run is refused with not_primed, naming the
stage and the field (tp: 1 -> 2), unless --prime primes first. A server already running with the same settings
digest is left alone (noop); other settings restart it. Once ready, the serve check's shapes are driven against
it with a snapshot of every cache before its start and after, and its log is scanned for JIT lines: the verdict
(zero_jit) goes into the serve record (container_runs/<run_id>/models/<model_key>/stages/serve.json), then the
aggregate and the metrics. A failing check leaves the server running unless --stop-on-jit. The last stdout
line is RESULT <json>."""

PRIME_DESCRIPTION = """\
Prime several stages as one job: plan (as `plan` does), then run, in order, every stage whose action
is not none (rebuild for the stages given with --rebuild, else ensure; a stage that only needs its
record is an ensure that records a noop without launching anything). Stops at the first stage that
fails: the stages after it are not_run. Then rebuilds prep_result.json and snapshots the caches.

Before the first stage starts, names the session log on stderr and in the log, and writes the
progress file /telemetry/container_runs/<run_id>/progress.json (state running|done|failed, the
current stage and its step, e.g. the MoE batch size, elapsed and estimated seconds left). It is
rewritten at every change. SIGTERM stops the job: the running stage records `interrupted`, its
server is torn down, and the progress file says failed.

The last stdout line is RESULT <priming state>: status ok|changed|error, and on error error_type,
message and failed_stage of the first stage that failed (exit code 1)."""

BUNDLES_DIR_TEXT = ".bundles"  # bundle.BUNDLES_DIR (kept out of the import-light help path)

BUNDLE_DESCRIPTION = """\
Seed identical hosts from one builder instead of compiling on each (docs/fleet.md).

create: check every priming stage as ensure would; the model's caches of the primed ones (noop) are
packed into /profiles/.bundles/<sha256>.tar.gz (never another model's subtree, never a signature file)
with a manifest (format 3: group key, each stage's signature as a digest plus its non-secret fields,
caches, entry and file counts, total bytes, source host, creation time, collection version; each file's
sha256 in its PAX header) and a sidecar <sha256>.json.
Refused (bundle_unavailable) while a stage would still run.

install: check the manifest as a schema (bundle_corrupt, bundle_unsafe, naming the field) and the same
stages on this host; a signature that differs from the bundle's refuses it (bundle_mismatch, with each
differing field). Otherwise, under one lock for the whole install: disk headroom check, unpack into
/profiles/.bundle-staging/ (an index of the entries on disk beside it), verify every member and its
sha256, the totals, and resolve every link (bundle_unsafe, bundle_corrupt; a format-2 bundle: re-publish it),
merge: add each entry this host lacks, keep an equal one, refuse one with other bytes (bundle_conflict),
swap the model's own subtrees in whole; nothing of another model is removed. Each stage's signature is
written as if primed here and its stage JSON recorded with status installed (source host, bundle digest).
A failed install is rolled back; a killed one is rolled back (or dropped, once a later prime superseded
it) by the next container start, stage run or install. The last stdout line is RESULT <outcome>."""

REPORT_DESCRIPTION = """\
Return the priming state of the current run from what it has recorded: one row per stage from its
stage JSON (not_run for a stage without one, or recorded for another --model), prep_result.json,
the cache snapshot and the progress file of the run's last prime job. No checks, no probes; writes
nothing. The last stdout line is RESULT <priming state>. Exit code 0 whenever it could answer
(read status)."""

STAGE_OPTIONS = ("tp", "port", "lock_timeout", "ready_timeout", "disk_headroom_mb", "moe_batch_sizes", "moe_dtype",
                 "extra_server_args", "telemetry_timeout", "serve_max_prompt_tokens", "require_pinned_stack", "pointer")


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer, got %s" % text)
    return value


def _port(text):
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a TCP port, 1 to 65535, got %s" % text)
    return value


def _model_path(text):
    """The model directory as given, without trailing slashes (/models/m/ is /models/m): contract.model_path."""
    return contract.model_path(text, models_root=None)


def _positive_float(text):
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive, got %s" % text)
    return value


def _stage_options(parser):
    """The options a stage run and a plan share (the plan asks with exactly what the runs will use)."""
    from .moe_tune import DEFAULT_MOE_BATCH_SIZES, MOE_DTYPES
    parser.add_argument("--model", required=True, type=_model_path,
                        help="model directory inside the container, e.g. /models/<name>")
    parser.add_argument("--tp", type=_positive_int, default=1, help="tensor parallel size (default 1)")
    parser.add_argument("--port", type=_port, default=None,
                        help="server port (default: the run's server port from its manifest, %s at container start, "
                        "else %d; strict: a busy port fails with port_busy, never falls back)"
                        % (contract.ENV_SERVER_PORT, contract.SERVER_PORT))
    parser.add_argument("--lock-timeout", type=_positive_float, default=600.0, metavar="S",
                        help="seconds to wait for another run of this stage (default 600), then lock_timeout")
    parser.add_argument("--ready-timeout", type=_positive_float, default=3600.0, metavar="S",
                        help="seconds for the server to become ready (and for each MoE tuner run; default 3600)")
    parser.add_argument("--disk-headroom-mb", type=int, default=1024, metavar="MB",
                        help="free space required on /profiles before starting (default 1024), else insufficient_disk")
    parser.add_argument("--moe-batch-sizes", type=_positive_int, nargs="+", default=list(DEFAULT_MOE_BATCH_SIZES),
                        metavar="B", help="moe_tune: batch sizes, one tuner run each (default %s)"
                        % " ".join(str(b) for b in DEFAULT_MOE_BATCH_SIZES))
    parser.add_argument("--moe-dtype", choices=MOE_DTYPES, default="auto",
                        help="moe_tune: the tuner --dtype (default auto: the dtype the checkpoint makes SGLang look up; "
                        "another value must agree with it)")
    parser.add_argument("--extra-server-arg", action="append", default=[], metavar="ARG", dest="extra_server_args",
                        help="one more SGLang server argument (repeatable; write --extra-server-arg=--flag for flags); "
                        "may not restate a flag the priming policy sets")
    parser.add_argument("--telemetry-timeout", type=float, default=20.0, metavar="S",
                        help="warm-ups: seconds to wait for Prometheus to scrape the run's token counter (default 20)")
    parser.add_argument("--serve-max-prompt-tokens", type=_positive_int, default=None, metavar="N",
                        help="serve_check: the longest prompt it sends (default: the server's chunked-prefill size; "
                        "longer prompts are sent in chunks and prove longer contexts)")
    parser.add_argument("--require-pinned-stack", action="store_true",
                        help="plan and prime: refuse (stack_unpinned) when the container's sglang, torch, triton, "
                        "flashinfer or deep_gemm differs from the versions the priming tables were checked against "
                        "(SGLang %s and its pins); without it each difference is a warning" % contract.FIDELITY_STACK["sglang"])
    _pointer_option(parser)


def _pointer_option(parser):
    parser.add_argument("--pointer", default=None, help="pointer file (default %s)" % contract.pointer_path())


def _stages_option(parser):
    parser.add_argument("--stages", choices=contract.STAGE_ORDER, nargs="+", default=list(contract.STAGE_ORDER),
                        metavar="STAGE", help="the stages, in the order they run (default: %s)" % " ".join(contract.STAGE_ORDER))


def build_parser():
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog=" ".join(contract.RUNTIME_ENTRY_POINT), description=MAIN_DESCRIPTION,
                                     epilog=EPILOG_EXIT, formatter_class=formatter)
    sub = parser.add_subparsers(dest="command", metavar="{stage,plan,prime,serve,serve-stop,serve-spec,container-mode,bundle,report,aggregate,argv,init}")
    sub.required = True

    def command(name, help_text, description=None):
        return sub.add_parser(name, help=help_text, description=description, epilog=EPILOG_EXIT, formatter_class=formatter)

    stage = command("stage", "prime one stage (ensure, rebuild or check)", STAGE_DESCRIPTION)
    stage.add_argument("stage", choices=contract.STAGE_ORDER, help="which cache to prime")
    stage.add_argument("--mode", choices=contract.MODES, default="ensure", help="ensure (default), rebuild or check")
    _stage_options(stage)

    for name, help_text, description in (
            ("plan", "what ensure (or rebuild) would do for several stages, and why (reads only)", PLAN_DESCRIPTION),
            ("prime", "plan, then run every stage that needs it, in order, as one job with a progress file",
             PRIME_DESCRIPTION)):
        several = command(name, help_text, description)
        _stages_option(several)
        several.add_argument("--rebuild", choices=contract.STAGE_ORDER, action="append", default=[], metavar="STAGE",
                             help="a stage that will run in rebuild mode (repeatable); the others are planned for ensure")
        _stage_options(several)

    report = command("report", "the priming state of the current run, as recorded (reads only)", REPORT_DESCRIPTION)
    _stages_option(report)
    report.add_argument("--model", default=None, type=_model_path,
                        help="the model the rows must be recorded for (a stage recorded for another one is not_run)")
    _pointer_option(report)

    agg = command("aggregate", "rebuild prep_result.json from the run's stage files",
                  "Rebuild every model's /telemetry/container_runs/<run_id>/models/<model_key>/prep_result.json "
                  "and the run's prep_result.json (the latest model's, plus an index of every model) from the "
                  "stage JSONs present (stage files are only read). The last stdout line is RESULT <prep_result>.")
    _pointer_option(agg)
    agg.add_argument("--model", default=None, type=_model_path,
                     help="the model the run's prep_result.json leads with (default: the model the run recorded last)")

    show = command("argv", "print the exact server (or MoE tuner) argv of a stage as a JSON list",
                   "Print, as one JSON list on stdout, the exact command line the stage would start "
                   "its SGLang server with (%s), or for moe_tune the fused-MoE tuner's command line for one "
                   "batch size (B stands for it), with --dtype, --per-channel-quant, --ep-size and "
                   "--disable-shared-experts-fusion as the checkpoint (<model>/config.json, "
                   "hf_quant_config.json) and the extra server args make SGLang look the config up. "
                   "Runs nothing." % ", ".join(argv_mod.SERVER_STAGES))
    show.add_argument("stage", choices=argv_mod.SERVER_STAGES + ("moe_tune",))
    show.add_argument("--model", required=True, type=_model_path)
    show.add_argument("--tp", type=_positive_int, default=1)
    show.add_argument("--port", type=_port, default=contract.SERVER_PORT)
    show.add_argument("--moe-dtype", choices=MOE_TUNER_DTYPES, default="auto",
                      help="moe_tune: the tuner dtype (default auto: the one the checkpoint makes SGLang look up)")
    show.add_argument("--extra-server-arg", action="append", default=[], metavar="ARG", dest="extra_server_args")
    show.add_argument("--device-name", default=None, metavar="NAME",
                      help="moe_tune: the GPU name SGLang's lookup puts in the file name (e.g. 'NVIDIA H200')")

    decide = command("decide", "print what the runtime plans for a checkpoint and serving args, as JSON",
                     "Print, as one JSON object, the decisions the runtime takes for the model "
                     "directory and the extra server args, without a container or a GPU: the fused-MoE lookup "
                     "SGLang will do (E, N, dtype, block shape, per-channel flag, up and down file names, or why "
                     "it does none) and moe_tune's tuner argv or skip reason; whether SGLang runs DeepGEMM "
                     "(deep_gemm stage); the --max-mamba-cache-size the stage servers get. Runs nothing.")
    decide.add_argument("--model", required=True, type=_model_path)
    decide.add_argument("--tp", type=_positive_int, default=1)
    decide.add_argument("--device-name", default="NVIDIA H200", metavar="NAME",
                        help="the GPU name SGLang's lookup puts in the file name (default 'NVIDIA H200')")
    decide.add_argument("--triton-kernels", action="store_true",
                        help="the serving python imports triton_kernels (GPT-OSS's MXFP4 runner on Hopper)")
    decide.add_argument("--extra-server-arg", action="append", default=[], metavar="ARG", dest="extra_server_args")

    seed = command("bundle", "pack this host's primed caches into a bundle, or install one from an identical host",
                   BUNDLE_DESCRIPTION)
    seed.add_argument("action", choices=("create", "install"),
                      help="create: bundle every primed stage (refused while a stage would run); install: check this "
                      "host's signatures against the bundle's, then install it atomically")
    seed.add_argument("--bundle", default=None, metavar="PATH",
                      help="install: the bundle (<sha256>.tar.gz) inside the container, e.g. under /profiles/%s" % BUNDLES_DIR_TEXT)
    seed.add_argument("--sha256", default=None, metavar="HEX", help="install: the digest the bundle must have")
    seed.add_argument("--out", default=None, metavar="DIR",
                      help="create: where the bundle goes (default /profiles/%s)" % BUNDLES_DIR_TEXT)
    seed.add_argument("--source-host", default=None, metavar="NAME",
                      help="create: the builder's name in the bundle's manifest (default the container's hostname)")
    seed.add_argument("--stages", choices=registry.priming_stages(), nargs="+", default=list(registry.priming_stages()),
                      metavar="STAGE", help="create: the stages to bundle (default: %s)" % " ".join(registry.priming_stages()))
    _stage_options(seed)

    serve = command("serve", "start the long-lived serving server from the primed caches and prove zero JIT",
                    SERVE_DESCRIPTION)
    _stage_options(serve)
    serve.add_argument("--prime", action="store_true",
                       help="prime every stage that the serving settings would run first, instead of refusing (not_primed)")
    serve.add_argument("--check", action="store_true", help="say what serve would do and why; start and write nothing")
    serve.add_argument("--stop-on-jit", action="store_true",
                       help="stop the server when the live zero-JIT check fails (default: it keeps serving)")
    _pointer_option(command("serve-stop", "stop the current run's serving server and prove its port free"))
    spec = command("serve-spec", "print the argv, environment, mounts and image of a server that reads the "
                   "primed caches, as JSON (reads only)",
                   "Print, as one JSON object, what a server started by other means (docker run, "
                   "compose, systemd, Kubernetes) needs to read this host's primed caches: the exact argv "
                   "(the serve check's: canonical settings, metrics on, the extra server args; secrets masked), "
                   "the environment (every cache variable), the bind mounts (host path -> container path), "
                   "the image, the user and the settings digest. Runs nothing.")
    _stage_options(spec)
    spec.add_argument("--format", choices=("json", "docker-run", "compose", "systemd"), default="json",
                      help="json (default, the RESULT line), or the same as one docker run line, a compose service "
                      "or a systemd unit, printed as text")

    verify = command("serve-verify", "the live zero-JIT check against a server of one's own (started from serve-spec); "
                     "reads only",
                     "Drive the serve check's shapes against a server started by other means from "
                     "serve-spec's settings (the same options: --model, --tp, --extra-server-arg), snapshot "
                     "every cache under /profiles before and after the requests, scan the server's log and "
                     "judge as serve does. Run it once the server is started: it waits for it to be ready. "
                     "Writes nothing; exit 1 when the server compiled.")
    _stage_options(verify)
    verify.add_argument("--url", default=None, help="the server's base URL (default: http://<host>:<port> of the "
                        "serving settings)")
    verify.add_argument("--log", default=None, help="a file holding the server's output from its start (e.g. "
                        "'docker logs -f <name>' written under %s), scanned for JIT lines" % contract.TELEMETRY_ROOT)

    mode = command("container-mode", "switch the current run between caching and serving mode "
                   "(whether Prometheus scrapes the SGLang servers)",
                   "Rewrite the run's Prometheus configuration for the container mode and make the "
                   "running Prometheus reload it (SIGHUP; its data stays), then wait until its loaded "
                   "configuration shows the SGLang servers' job present (serving) or absent (caching). A run "
                   "already in the mode changes nothing. The last stdout line is RESULT <outcome>.")
    mode.add_argument("--mode", required=True, choices=("caching", "serving"),
                      help="caching: Prometheus scrapes only the exporters; serving: the SGLang servers too")
    mode.add_argument("--check", action="store_true", help="say whether the mode would change; write nothing")
    _pointer_option(mode)

    sub.add_parser("init", help="container entrypoint (PID 1): start telemetry, write manifest and pointer",
                   description="The container's PID 1: create the devuser entry, start the telemetry services, "
                   "write the run manifest and publish the pointer. Its own options: 'init --help' "
                   "(e.g. 'init --check' to try the preflight by hand without publishing a run).",
                   add_help=False)
    return parser


def emit(payload):
    sys.stdout.write(contract.RESULT_PREFIX + json.dumps(payload, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def _error_payload(exc, **extra):
    payload = {"status": "error", "status_code": EXIT_ERROR, "error_type": exc.error_type, "message": exc.message}
    payload.update(extra)
    return payload


def _tuner_argv(ns):
    """moe_tune's tuner argv for the model directory (ValueError when its MoE dtype cannot be told)."""
    from . import moe, moe_tune
    config = moe.model_config(ns.model)
    if config is None:
        raise ValueError("%s/config.json is missing or unreadable: the tuner's --dtype follows the checkpoint's "
                         "quantization_config" % ns.model)
    argv_mod.check_extra_args(ns.extra_server_args)
    plan = moe.tuner_plan(ns.model, config, ns.extra_server_args, ns.moe_dtype, tp=ns.tp, device_name=ns.device_name)
    if plan["skip_reason"]:
        raise ValueError("moe_tune is skipped for this checkpoint and these serving args: " + plan["skip_reason"])
    return moe.tuner_argv("python3", moe_tune.tuner_location(os.environ), ns.model, ns.tp, plan)


def decide(model, tp=1, extra_args=(), device_name="NVIDIA H200", triton_kernels=False):
    """The runtime's decisions for a model directory and serving args (the ``decide`` command's JSON)."""
    from . import deepgemm, moe, moe_tune
    extra = list(extra_args)
    argv_mod.check_extra_args(extra)
    config = moe.model_config(model)
    out = {"model": model, "tp": tp, "extra_server_args": extra}
    try:
        plan = moe.tuner_plan(model, config, extra, tp=tp, device_name=device_name, triton_kernels=triton_kernels)
    except ValueError as exc:
        out["moe_tune"] = {"error": "bad_input", "message": str(exc)}
    else:
        out["moe_tune"] = plan
        if not plan["skip_reason"]:
            out["moe_tune"]["tuner_argv"] = moe.tuner_argv("python3", moe_tune.tuner_location({}), model, tp, plan)
    used, why = deepgemm.usage(model, config, extra)
    out["deep_gemm"] = {"uses_deep_gemm": used, "why": why}
    out["mamba_cache"] = argv_mod.mamba_policy(model, extra)
    return out


def carried_extra_args(environ):
    """The extra server arguments the host passed in contract.ENV_EXTRA_SERVER_ARGS (removed from ``environ``, so no
    server or tool started from here inherits them): a list of strings, or the problem as a string."""
    text = environ.pop(contract.ENV_EXTRA_SERVER_ARGS, None)
    if text is None:
        return []
    try:
        carried = json.loads(text)
    except ValueError:
        carried = None
    if not isinstance(carried, list) or not all(isinstance(arg, str) for arg in carried):
        return "%s must hold a JSON list of strings (extra server arguments)" % contract.ENV_EXTRA_SERVER_ARGS
    return carried


def _print_offline(ns, parser):
    """``decide`` and ``argv``: answers from the model directory alone, printed as one JSON line (no RESULT prefix)."""
    try:
        if ns.command == "decide":
            out = decide(ns.model, ns.tp, ns.extra_server_args, ns.device_name, ns.triton_kernels)
        elif ns.stage == "moe_tune":
            out = _tuner_argv(ns)
        else:
            out = argv_mod.server_argv(ns.stage, ns.model, tp=ns.tp, port=ns.port, extra_args=ns.extra_server_args)
    except (argv_mod.ArgvError, ValueError) as exc:
        if ns.command == "decide" and not isinstance(exc, argv_mod.ArgvError):
            raise
        parser.error(str(exc))
    sys.stdout.write(json.dumps(out, sort_keys=ns.command == "decide") + "\n")
    return EXIT_OK


def _plan(ns, options):
    from . import plan
    return _with_serving(plan.plan(ns.stages, ns.model, options, rebuild=ns.rebuild), ns, options)


def _prime(ns, options):
    from . import prime
    return _with_serving(prime.prime(ns.stages, ns.model, options, rebuild=ns.rebuild), ns, options)


def _with_serving(state, ns, options):
    """The state with the container mode and the serve-spec hand-off (serve.serving_keys: one home for both)."""
    from . import serve
    try:
        state.update(serve.serving_keys(ns.model, options, ns.pointer))
    except PrepError as exc:
        state.update(container_mode=None, serving=None, serving_problem=exc.message)
    return state


def _bundle(ns, options):
    from . import seeding
    if ns.action == "create":
        return seeding.create(ns.model, options, stages=ns.stages, source_host=ns.source_host, out_dir=ns.out,
                              stream=sys.stderr)
    if not ns.bundle:
        raise PrepError("bad_input", "bundle install needs --bundle <path of the bundle inside the container>")
    return seeding.install(ns.model, ns.bundle, options, expected_sha256=ns.sha256, stream=sys.stderr)


def _serve(ns, options):
    from . import serve
    return serve.serve(ns.model, options, prime=ns.prime, check=ns.check, stop_on_jit=ns.stop_on_jit)


def _serve_stop(ns, _options):
    from . import serve
    return serve.stop_serving(ns.pointer)


def _serve_spec(ns, options):
    from . import serve
    return serve.spec(ns.model, options)


def _serve_verify(ns, options):
    from . import serve
    return serve.verify(ns.model, url=ns.url, log=ns.log, options=options)


def _container_mode(ns, _options):
    from . import container_mode
    return container_mode.switch(ns.mode, ns.pointer, check=ns.check)


def _report(ns, _options):
    from . import state
    return state.report(ns.stages, ns.model, ns.pointer)


def _aggregate(ns, _options):
    from . import engine
    return engine.aggregate(ns.pointer, ns.model)


# The subcommands that answer with a RESULT line, and whether a payload with status error exits 1.
COMMANDS = {"plan": (_plan, False), "prime": (_prime, True), "serve": (_serve, True), "serve-stop": (_serve_stop, False),
            "container-mode": (_container_mode, True), "serve-spec": (_serve_spec, False),
            "serve-verify": (_serve_verify, True), "bundle": (_bundle, False), "report": (_report, False),
            "aggregate": (_aggregate, False)}


def _run_stage(ns, options):
    from . import engine, state
    result = engine.run_stage(ns.stage, ns.model, dict(options, mode=ns.mode))
    result["reason"] = state.reason(ns.stage, result)
    emit(result)
    return EXIT_ERROR if result["status"] == "error" else EXIT_OK


def main(args=None):
    args = sys.argv[1:] if args is None else list(args)
    if args[:1] == ["init"]:
        from . import init  # PID 1 has options of its own
        return init.main(args[1:])
    parser = build_parser()
    ns = parser.parse_args(args)
    carried = carried_extra_args(os.environ)
    if hasattr(ns, "extra_server_args"):
        if isinstance(carried, str):
            parser.error(carried)
        ns.extra_server_args = list(ns.extra_server_args) + carried
    if ns.command in ("decide", "argv"):
        return _print_offline(ns, parser)
    options = None
    if ns.command in ("stage", "plan", "prime", "bundle", "serve", "serve-spec", "serve-verify"):
        try:
            argv_mod.check_extra_args(ns.extra_server_args)
        except argv_mod.ArgvError as exc:
            parser.error(str(exc))
        options = dict((key, getattr(ns, key)) for key in STAGE_OPTIONS)
    if ns.command == "stage":
        return _run_stage(ns, options)
    command, status_exits = COMMANDS[ns.command]
    try:
        payload = command(ns, options)
        if ns.command == "serve-spec" and ns.format != "json":
            from . import serve
            sys.stdout.write(serve.render(payload, ns.format) + "\n")
            return EXIT_OK
    except PrepError as exc:
        # a bundle refusal carries its field-level reasons (and paths) for the caller
        extra = dict(exc.details) if ns.command in ("bundle", "serve") else {}
        emit(_error_payload(exc, command=ns.command, **extra))
        return EXIT_ERROR
    emit(payload)
    return EXIT_ERROR if status_exits and payload["status"] == "error" else EXIT_OK

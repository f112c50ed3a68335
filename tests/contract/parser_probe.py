"""Runs an SGLang argument parser on a corpus of argv and prints what it made of each, as JSON.

Not a test module: tests/contract/test_real_parser.py runs it as a subprocess, in two ways:

  <contract venv python> parser_probe.py parse|resolve    the real sglang 0.5.23 parser
  <contract venv python> -S parser_probe.py parse          with PYTHONPATH=tests/standins/python:
                                                           the stand-in parser (-S keeps the real
                                                           sglang in site-packages out of reach)

stdin: a JSON list of corpus items, each an argv list or {"argv": [...], "env": {...}} (env is set
for that item only). stdout: one line, RESULT_MARK + JSON {"results": [...], "options": {...}}:
per item {"exit": 0 or the SystemExit code, "stderr": what was printed, "values": raw fields},
plus with `resolve` the effective values after ServerArgs.resolve_once() read through
resolving_view (sglang-facts.md 2), or "resolve_error". "options" describes every option of the
parser (arity, choices, default, type), for comparing the stand-in's flags with the real ones.
"""

import argparse
import contextlib
import io
import json
import logging
import os
import sys

RESULT_MARK = "PARSER-PROBE-RESULT "
FIELDS = (
    "model_path", "host", "port", "tp_size", "kv_cache_dtype", "mem_fraction_static", "chunked_prefill_size",
    "max_mamba_cache_size", "context_length", "max_prefill_tokens", "disable_cuda_graph",
    "cuda_graph_backend_decode", "cuda_graph_backend_prefill", "disable_decode_cuda_graph",
    "disable_prefill_cuda_graph", "enable_metrics", "enable_trace", "enable_torch_compile", "load_format",
    "skip_tokenizer_init", "device", "ep_size", "attention_backend", "moe_runner_backend",
    "torch_compile_max_bs", "watchdog_timeout", "log_level", "skip_server_warmup", "trust_remote_code",
    "served_model_name", "enable_metrics_for_all_schedulers", "otlp_traces_endpoint", "trace_modules",
)


def _plain(value):
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


@contextlib.contextmanager
def _env(overrides):
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _resolve(args):
    args.resolve_once()
    from sglang.srt.arg_groups.overrides import resolving_view
    from sglang.srt.model_executor.cuda_graph_config import default_prefill_backend

    view = resolving_view(args)
    resolved = {f: _plain(getattr(view, f, "<absent>")) for f in FIELDS}
    resolved["decode_cuda_graph_backend"] = str(view.cuda_graph_config.decode.backend)
    resolved["prefill_cuda_graph_backend"] = str(view.cuda_graph_config.prefill.backend)
    resolved["platform_default_prefill_backend"] = str(default_prefill_backend())
    return resolved


def run_item(item, resolve):
    from sglang.srt.server_args import prepare_server_args

    argv, env = (item["argv"], item.get("env", {})) if isinstance(item, dict) else (item, {})
    logging.root.handlers.clear()  # so warnings printed before basicConfig reach *this* stderr
    err = io.StringIO()
    result = {"exit": 0, "values": None}
    with _env(env), contextlib.redirect_stderr(err):
        try:
            args = prepare_server_args(argv)
        except SystemExit as e:
            result["exit"] = e.code if isinstance(e.code, int) else 1
        else:
            result["values"] = {f: _plain(getattr(args, f, "<absent>")) for f in FIELDS}
            if resolve:
                try:
                    result["resolved"] = _resolve(args)
                except Exception as e:  # reported, so a test can assert on the refusal itself
                    result["resolve_error"] = "%s: %s" % (type(e).__name__, e)
    result["stderr"] = err.getvalue()
    return result


def describe_options():
    """Every option of the parser prepare_server_args builds, caught as it parses."""
    from sglang.srt.server_args import prepare_server_args

    parsers = []
    original = argparse.ArgumentParser.parse_args

    def spy(self, *args, **kwargs):
        parsers.append(self)
        return original(self, *args, **kwargs)

    argparse.ArgumentParser.parse_args = spy
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            prepare_server_args(["--model-path", "probe"])
    finally:
        argparse.ArgumentParser.parse_args = original
    options = {}
    for action in parsers[0]._actions:
        for name in action.option_strings:
            options[name] = {
                "dest": action.dest,
                "nargs": action.nargs,
                "required": action.required,
                "choices": list(action.choices) if action.choices else None,
                "default": repr(action.default),
                "type": getattr(action.type, "__name__", None),
            }
    return options


def main():
    mode = sys.argv[1]
    corpus = json.load(sys.stdin)
    results = [run_item(item, resolve=(mode == "resolve")) for item in corpus]
    payload = {"results": results, "options": describe_options() if mode == "parse" else None}
    sys.stdout.write(RESULT_MARK + json.dumps(payload) + "\n")


if __name__ == "__main__":
    main()

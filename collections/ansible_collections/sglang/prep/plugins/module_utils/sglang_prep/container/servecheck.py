# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zero-JIT proof of the serve_check stage: cache snapshots, their diff, the shapes to drive, the verdict.

Everything here is pure (no server, no HTTP): the runner in servecheck_stage.py takes a snapshot of every cache
under /profiles before its server starts, drives the shapes ``shapes()`` plans, takes a second snapshot
after the teardown, and asks ``verdict()`` what the difference and the server's log lines mean.

A snapshot is {path relative to the profiles root: (size, mtime_ns)} of every file, walked with
os.scandir (about 0.3 s for 100,000 files). Bookkeeping that is not a kernel is left out of the
verdict: lock files, log files, staging directories (``tmp``, ``locks``), the runtime's own locks and
markers (top-level dot directories), the MoE tuner's scratch and every stage's signature.json.
"""

from __future__ import annotations

import os
import time

from .. import contract, registry, server_flags
from ..errors import PrepError

# Top-level directories under /profiles -> the cache they are (contract.CACHES), e.g. nv -> cuda.
CACHE_BY_DIR = dict((os.path.basename(path), name) for name, (path, _env) in contract.CACHES.items())
NOISE_SUFFIXES = (".lock", ".log")
NOISE_DIRS = ("locks", "tmp")
# Staging directories that are renamed into place when complete: CuTe DSL's tmp.pid_<pid>_<uuid>/ and SGLang's JIT
# .staging-<uuid>/ (their published files are what counts)
NOISE_DIR_PREFIXES = ("tmp.pid_", ".staging-")
SKIPPED = ("moe_configs/.work",)
SAMPLE = 5
# Which priming stage should have left what a cache gained (or what a log line says is missing).
OWNER_OF_CACHE = dict((stage.cache, stage.name) for stage in registry.PRIMING_STAGES if stage.cache)
# Triton autotuning and SGLang's JIT kernels are primed by whichever server stage runs those kernels.
SERVER_PRIMING_STAGES = ", ".join(s for s in registry.server_stages() if s in registry.priming_stages())
OWNER_OF_LINE = {
    "deep_gemm_session": "deep_gemm", "deep_gemm_compile": "deep_gemm", "flashinfer_build": "flashinfer",
    "moe_default": "moe_tune", "moe_down_fallback": "moe_tune",
    "triton_autotune": SERVER_PRIMING_STAGES, "sglang_jit_crash": SERVER_PRIMING_STAGES,
}
# Log lines that prove a compile (or a missing tuned config) by themselves. Real SGLang logs the DeepGEMM
# lines in every server that warms up, cached kernels included (sglang-facts.md 3), so those count only
# with new DeepGEMM kernels in the cache.
DEFINITE_LINES = ("flashinfer_build", "moe_default", "moe_down_fallback", "triton_autotune", "sglang_jit_crash")
# Lines whose evidence names the kernels (the autotuned function, the SGLang JIT module)
NAMED_LINES = ("triton_autotune", "sglang_jit_crash")
LINE_WORDS = {
    "deep_gemm_session": "DeepGEMM JIT pre-compile session",
    "deep_gemm_compile": "DeepGEMM JIT compile",
    "flashinfer_build": "FlashInfer JIT build",
    "moe_default": "default MoE kernel config (no tuned config found)",
    "moe_down_fallback": "down-projection MoE config missing (tuned up-projection config reused)",
    "triton_autotune": "Triton autotune benchmark (no persisted result)",
    "sglang_jit_crash": "SGLang JIT kernel missing from its cache: the server refused to compile it "
                        "(SGLANG_CRASH_ON_JIT_COMPILE=1) and exited",
}
# What the check cannot see: compiles that leave no file in a watched cache.
NOT_MEASURED = (
    "CUDA graph capture (never cached: every start captures again)",
    "in-memory compilation that writes no file (dynamo tracing at every start; CuTe DSL lowers its cached MLIR to "
    "a cubin in every process)",
    "caches outside /profiles (a compiler whose cache variable is not set by the runtime)",
)
STARTUP = "server start-up (weights, CUDA graph capture, built-in warm-up)"
TEARDOWN = "teardown"
DECODE_FALLBACK_MAX_BS = 32
DECODE_PROMPT_TOKENS = 4


# ---------------------------------------------------------------- snapshots
def cache_of(rel):
    """The cache a path (relative to the profiles root) belongs to: its contract name, else its top directory."""
    top = rel.split("/", 1)[0]
    if "/" not in rel:
        return "(profiles root)"
    return CACHE_BY_DIR.get(top, top)


def skipped(rel):
    """Paths the walk does not enter: the runtime's own locks and markers, the tuner's scratch."""
    return rel.startswith(".") or rel in SKIPPED


def is_noise(rel):
    """Files that change without any compile: locks, logs, staging, stage signatures."""
    parts = rel.split("/")
    name = parts[-1]
    if name.endswith(NOISE_SUFFIXES) or name.startswith(".tmp"):
        return True
    if any(part in NOISE_DIRS or part.startswith(NOISE_DIR_PREFIXES) for part in parts[:-1]):
        return True
    return len(parts) == 3 and name == "signature.json"


def snapshot(root):
    """{relative path: (size, mtime_ns)} of every file under ``root`` (no symlinks followed)."""
    files = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            handle = os.scandir(os.path.join(root, rel) if rel else root)
        except OSError:
            continue
        with handle:
            for entry in handle:
                sub = rel + "/" + entry.name if rel else entry.name
                if skipped(sub):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(sub)
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                files[sub] = (st.st_size, st.st_mtime_ns)
    return files


def summary(files):
    """{files, bytes} of a snapshot."""
    return {"files": len(files), "bytes": sum(size for size, _mtime in files.values())}


def diff(before, after):
    """{cache: {added, modified, removed, noise}}: lists of relative paths; caches without a change left out."""
    out = {}

    def slot(rel):
        return out.setdefault(cache_of(rel), {"added": [], "modified": [], "removed": [], "noise": []})

    for rel, stat in after.items():
        old = before.get(rel)
        if old == stat:
            continue
        if is_noise(rel):
            slot(rel)["noise"].append(rel)
        else:
            slot(rel)["added" if old is None else "modified"].append(rel)
    for rel in before:
        if rel not in after and not is_noise(rel):
            slot(rel)["removed"].append(rel)
    for entry in out.values():
        for key in entry:
            entry[key].sort()
    return out


def describe_files(cache, paths):
    """What a cache gained, in words: 'deep_gemm: 3 new kernels sm90_fp8_gemm_1d2d.*', 'triton: 12 files (...)'."""
    if cache == "deep_gemm":
        kernels = {}
        for rel in paths:  # <root>/cache/<tag>.<digest>/...
            parts = rel.split("/")
            if len(parts) >= 4 and parts[1] == "cache" and "." in parts[2]:
                tag = parts[2].split(".", 1)[0]
                kernels.setdefault(tag, set()).add(parts[2])
        if kernels:
            return "deep_gemm: " + ", ".join("%d new kernel%s %s.*" % (len(dirs), "" if len(dirs) == 1 else "s", tag)
                                             for tag, dirs in sorted(kernels.items()))
    names = set()
    if cache == "triton":
        for rel in paths:
            name = rel.rsplit("/", 1)[-1]
            stem, _dot, ext = name.rpartition(".")
            if ext in ("cubin", "hsaco") and stem:
                names.add(stem)
    elif cache == "flashinfer":
        for rel in paths:
            parts = rel.split("/")
            if "cached_ops" in parts and parts.index("cached_ops") + 1 < len(parts) - 1:
                names.add(parts[parts.index("cached_ops") + 1])
    text = "%s: %d file%s" % (cache, len(paths), "" if len(paths) == 1 else "s")
    if names:
        shown = sorted(names)
        text += " (%s%s)" % (", ".join(shown[:4]), ", ..." if len(shown) > 4 else "")
    return text


# ---------------------------------------------------------------- the shapes serving meets
def _powers_up_to(limit, start=1):
    out = []
    value = start
    while value < limit:
        out.append(value)
        value *= 2
    out.append(limit)
    return out


def decode_plan(server_info, capture_bs):
    """(decode batch sizes, where they come from): every batch size the server captured a decode CUDA graph for."""
    if capture_bs:
        return sorted(set(int(b) for b in capture_bs if int(b) > 0)), "the server's decode CUDA-graph capture line"
    config = ((server_info or {}).get("cuda_graph_config") or {}).get("decode") or {}
    explicit = (server_info or {}).get("cuda_graph_bs_decode")
    if explicit:
        return sorted(set(int(b) for b in explicit)), "/server_info cuda_graph_bs_decode"
    if config.get("backend") == "disabled":
        return [1], "decode CUDA graph disabled: one request"
    if config.get("max_bs"):
        return _powers_up_to(int(config["max_bs"])), "/server_info cuda_graph_config.decode.max_bs (powers of two)"
    return _powers_up_to(DECODE_FALLBACK_MAX_BS), "no capture information from the server: powers of two up to %d" % (
        DECODE_FALLBACK_MAX_BS)


def prompt_plan(chunked_prefill_size, max_prompt_tokens=None):
    """Prompt lengths: powers of two up to the chunked-prefill size (and on to ``max_prompt_tokens`` if longer)."""
    chunk = int(chunked_prefill_size or contract.CANONICAL_SETTINGS["chunked_prefill_size"])
    if chunk < 1:  # chunked prefill disabled: one long prefill of the canonical size
        chunk = contract.CANONICAL_SETTINGS["chunked_prefill_size"]
    lengths = _powers_up_to(chunk)
    if max_prompt_tokens and int(max_prompt_tokens) > chunk:
        lengths += [n for n in _powers_up_to(int(max_prompt_tokens), chunk * 2) if n > chunk]
    elif max_prompt_tokens:
        lengths = [n for n in lengths if n <= int(max_prompt_tokens)]
    return sorted(set(lengths)), chunk


def token_ids(count, offset=0):
    """``count`` token ids that every vocabulary has (3..99), varied so that no prefix is shared by accident."""
    return [3 + (offset * 7 + i) % 97 for i in range(count)]


def requests(decode_sizes, prompt_lengths, chunk):
    """The /generate requests of the check, in order: prompt lengths (prefill), then decode batch sizes."""
    out = []
    for length in prompt_lengths:
        label = "prompt of %d tokens" % length
        if length > chunk:
            label += " (%d chunks of up to %d)" % (-(-length // chunk), chunk)
        out.append({"label": label, "kind": "prefill", "prompt_tokens": length, "batch_size": 1,
                    "body": {"input_ids": token_ids(length, length),
                             "sampling_params": {"max_new_tokens": 2, "temperature": 0, "ignore_eos": True}}})
    for size in decode_sizes:
        label = "decode batch %d" % size + (" (%d concurrent requests in one batch)" % size if size > 1 else "")
        ids = [token_ids(DECODE_PROMPT_TOKENS, size * 1000 + i) for i in range(size)]
        out.append({"label": label, "kind": "decode", "prompt_tokens": DECODE_PROMPT_TOKENS, "batch_size": size,
                    "body": {"input_ids": ids if size > 1 else ids[0],
                             "sampling_params": {"max_new_tokens": 8, "temperature": 0, "ignore_eos": True}}})
    return out


def drive(plan, generate, windows, request_log, progress=None, before_each=None, end_label=TEARDOWN):
    """Send the planned requests in order with ``generate(body, label)``, one phase window per request.

    ``windows`` gets (start_ns, label) per request and finally (now, ``end_label``); ``request_log`` one entry per
    request ({label, kind, prompt_tokens, batch_size, ok, duration_s}). ``before_each()`` runs before each window
    opens and once after the last request (the live server's log is read there, so its lines fall in the phase that
    produced them). A failing ``generate`` raises; the windows and the log then end at the failed request.
    """
    for index, request in enumerate(plan, 1):
        if progress is not None:
            progress(index, len(plan), request["label"])
        if before_each is not None:
            before_each()
        windows.append((time.time_ns(), request["label"]))
        started = time.monotonic()
        entry = {"label": request["label"], "kind": request["kind"], "prompt_tokens": request["prompt_tokens"],
                 "batch_size": request["batch_size"], "ok": False, "duration_s": None}
        request_log.append(entry)
        generate(request["body"], request["label"])
        entry["ok"] = True
        entry["duration_s"] = round(time.monotonic() - started, 3)
    if before_each is not None:
        before_each()
    windows.append((time.time_ns(), end_label))


# ---------------------------------------------------------------- the verdict
def judge(before, after, jit_lines, seen, error):
    """(evidence, the stage's error): the serve check's whole verdict, from what its runner saw.

    ``seen``: windows, extra_server_args, primed_args, shapes, requests, snapshot_s, server_env,
    down_reuse_expected, default_config_expected (servecheck_stage.py). ``error``: the server lifecycle's, or None.
    """
    jit_lines = expected_lines_removed(jit_lines, seen["down_reuse_expected"], seen["default_config_expected"])
    shapes, request_log = seen["shapes"], seen["requests"]
    chunk = (shapes or {}).get("chunked_prefill_size") or contract.CANONICAL_SETTINGS["chunked_prefill_size"]
    serving_args = server_flags.redact_args(seen["extra_server_args"], digest=True)  # as the signatures record them
    evidence = verdict(before, after, jit_lines, seen["windows"], serving_args, seen["primed_args"], chunk,
                       request_log, contract.PROFILES_ROOT)
    evidence.update({"moe_default_config_expected": seen["default_config_expected"], "shapes": shapes,
                     "requests": request_log, "serving_args": server_flags.redact_args(seen["extra_server_args"]),
                     "snapshot": {"before": summary(before), "after": summary(after), "seconds": seen["snapshot_s"]}})
    evidence["measured"] = measured(evidence, before, after, seen["server_env"])
    completed = error is None and shapes is not None and all(r["ok"] for r in request_log)
    if evidence["zero_jit"] and not completed:
        evidence["zero_jit"] = None  # nothing compiled, but the check did not get through: no verdict
    evidence["summary"] = (summary_text(evidence, len(request_log)) if evidence["zero_jit"]
                           else evidence["message"] or "no verdict: the check did not complete")
    return evidence, stage_error(evidence, error)


def expected_lines_removed(jit_lines, down_reuse_expected, default_config_expected):
    """The JIT lines without those this checkpoint always logs: a down config tune_down_moe.py cannot name (SGLang
    reuses the up config), a default config where no tuner can write the name SGLang reads."""
    if down_reuse_expected:
        jit_lines = [line for line in jit_lines if line["kind"] != "moe_down_fallback"]
    if default_config_expected:
        jit_lines = [line for line in jit_lines if line["kind"] not in ("moe_default", "moe_down_fallback")]
    return jit_lines


def stage_error(evidence, error):
    """jit_at_serve_time when the check found a compile (also when the server exited because it refused to compile
    a missing SGLang JIT kernel: that refusal is the finding), else the lifecycle's ``error``."""
    if evidence["zero_jit"] is not False:
        return error
    findings = [dict((k, f[k]) for k in ("evidence", "triggered_by", "should_have_primed"))
                for f in evidence["findings"]]
    crashed = [f for f in evidence["findings"] if f["kind"] == "sglang_jit_crash"]
    if crashed and error is not None:
        return PrepError("jit_at_serve_time", evidence["message"], lifecycle=error.message,
                         kernels=crashed[0].get("kernels"), findings=findings)
    if error is None:
        return PrepError("jit_at_serve_time", evidence["message"], findings=findings)
    return error


def phase_of(moment_ns, windows):
    """The phase (start-up, a request's label, teardown) a moment belongs to; windows are [(start_ns, label)]."""
    label = STARTUP
    for start, name in windows:
        if moment_ns >= start:
            label = name
        else:
            break
    return label


def _count(labels):
    seen = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    return seen


def _triggers(counts, unit):
    return ["%s (%d %s%s)" % (label, n, unit, "" if n == 1 else "s") for label, n in counts.items()]


def _fix(stage, finding, args_differ):
    if finding.get("kind") == "moe_down_fallback":
        return ("re-run moe_tune with mode rebuild (prime_stage_modes: {moe_tune: rebuild}): it tunes the "
                "down-projection config (<name>_down.json) with SGLang's tune_down_moe.py beside the up config")
    if args_differ:
        return "run prime with the serving args as prime_extra_server_args (the stages primed with other args re-run)"
    if finding.get("kind") == "moe_default":
        return "re-run moe_tune with mode rebuild (prime_stage_modes: {moe_tune: rebuild}) so its tuned config exists again"
    if stage in registry.ORDER:
        return "re-prime %s (mode rebuild: prime_stage_modes: {%s: rebuild})" % (stage, stage)
    warmup = [s for s in registry.warmup_stages() if s in registry.priming_stages()][0]
    return ("re-prime %s (mode rebuild: prime_stage_modes: {%s: rebuild}); every server stage compiles the kernels of "
            "the captured shapes at start-up" % (warmup, warmup))


def verdict(before, after, jit_lines, windows, serving_args, primed_args, chunk, request_log, profiles_root="/profiles"):
    """The serve check's evidence: {zero_jit, caches, findings, causes, jit_lines, message}.

    findings (what grew, what the log says) -> causes (why) -> message (what to do). ``windows``: [(start_ns, label)]
    of the phases in time order (the requests, then teardown); a file's mtime and a log line's arrival say which
    phase triggered it. ``primed_args``: {stage: extra_server_args it was primed with} of the priming server stages.
    ``request_log``: the requests as driven ({label, prompt_tokens}).
    """
    caches, findings = cache_findings(diff(before, after), after, windows, profiles_root)
    lines, by_kind = timed_lines(jit_lines, windows)
    deep_gemm_grew = any(f["cache"] == "deep_gemm" for f in findings)
    attach_log_lines(findings, by_kind)
    findings += line_findings(by_kind)
    differing = differing_args(primed_args, serving_args)
    long_prompts = long_prompts_in(request_log, chunk, findings)
    assign_fixes(findings, long_prompts, differing)
    causes = causes_of(findings, differing, serving_args, long_prompts, chunk)
    zero_jit = not findings
    return {
        "zero_jit": zero_jit,
        "caches": caches,
        "findings": findings,
        "causes": causes,
        "jit_lines": lines[:50],
        "jit_line_counts": dict((kind, len(group)) for kind, group in sorted(by_kind.items())),
        "deep_gemm_lines_without_new_kernels": bool(not deep_gemm_grew and (
            by_kind.get("deep_gemm_compile") or by_kind.get("deep_gemm_session"))),
        "message": None if zero_jit else message(findings, causes),
    }


# ---- findings: what grew, what the log says
def cache_findings(changes, after, windows, profiles_root):
    """({cache: counts and sample}, [one finding per cache that gained or rewrote a file])."""
    server_stages = [s for s in registry.server_stages() if s in registry.priming_stages()]
    caches, findings = {}, []
    for cache, entry in sorted(changes.items()):
        grown = entry["added"] + entry["modified"]
        caches[cache] = {"added": len(entry["added"]), "modified": len(entry["modified"]),
                         "removed": len(entry["removed"]), "ignored": len(entry["noise"]),
                         "added_bytes": sum(after[r][0] for r in entry["added"]),
                         "sample": [profiles_root + "/" + r for r in grown[:SAMPLE]]}
        if not grown:
            continue
        text = describe_files(cache, grown)
        if entry["modified"]:
            text += " (%d rewritten)" % len(entry["modified"])
        caches[cache]["evidence"] = text
        triggered = _count(phase_of(after[r][1], windows) for r in grown)
        findings.append({"kind": "cache", "cache": cache, "evidence": text, "files": len(grown),
                         "sample": caches[cache]["sample"], "triggered_by": _triggers(triggered, "file"),
                         "phases": list(triggered), "log_lines": [],
                         "should_have_primed": OWNER_OF_CACHE.get(cache) or ", ".join(server_stages)})
    return caches, findings


def timed_lines(jit_lines, windows):
    """The JIT log lines with the phase each arrived in, and the same grouped by kind."""
    lines, by_kind = [], {}
    for line in jit_lines:
        entry = {"kind": line["kind"], "text": line["text"], "match": line.get("match") or line["text"],
                 "name": line.get("name"), "phase": phase_of(int(line["t"] * 1e9), windows)}
        lines.append(entry)
        by_kind.setdefault(entry["kind"], []).append(entry)
    return lines, by_kind


def attach_log_lines(findings, by_kind):
    """Give each cache finding the (not by themselves conclusive) log lines of the stage that owns that cache."""
    for finding in findings:
        stage = finding["should_have_primed"]
        finding["log_lines"] = [line["match"] for kind, group in sorted(by_kind.items())
                                if OWNER_OF_LINE.get(kind) == stage and kind not in DEFINITE_LINES
                                and kind != "deep_gemm_session" for line in group][:SAMPLE]


def line_findings(by_kind):
    """One finding per kind of log line that proves a compile by itself (DEFINITE_LINES)."""
    findings = []
    for kind in DEFINITE_LINES:
        group = by_kind.get(kind)
        if not group:
            continue
        triggered = _count(line["phase"] for line in group)
        names = sorted(set(line["name"] for line in group if line.get("name"))) if kind in NAMED_LINES else []
        shown = " (%s%s)" % (", ".join(names[:4]), ", ..." if len(names) > 4 else "") if names else ""
        findings.append({"kind": kind, "cache": None, "evidence": "%s: %d log line%s%s" % (
            LINE_WORDS[kind], len(group), "" if len(group) == 1 else "s", shown),
            "kernels": names, "files": 0, "sample": [],
            "triggered_by": _triggers(triggered, "line"), "phases": list(triggered),
            "should_have_primed": OWNER_OF_LINE[kind], "log_lines": [line["text"] for line in group[:SAMPLE]]})
    return findings


# ---- causes: why it compiled
def differing_args(primed_args, serving_args):
    """{stage: its primed extra server args} of the stages primed with other args than serving runs with."""
    return dict((stage, args) for stage, args in sorted((primed_args or {}).items())
                if args is not None and list(args) != list(serving_args))


def long_prompts_in(request_log, chunk, findings):
    """The requests longer than the chunked-prefill size during which something compiled."""
    phases = set(phase for finding in findings for phase in finding["phases"])
    return [r for r in request_log if r.get("prompt_tokens", 0) > chunk and r["label"] in phases]


def assign_fixes(findings, long_prompts, differing):
    """Each finding's ``fix``: the longer-context advice where a long prompt compiled, else _fix's."""
    long_labels = set(r["label"] for r in long_prompts)
    for finding in findings:
        if long_labels & set(finding["phases"]) and not differing:
            longest = max(r["prompt_tokens"] for r in long_prompts)
            finding["fix"] = ("prime and serve with server args whose prefill CUDA graphs cover contexts of %d tokens "
                              "(for example --cuda-graph-prefill-max-context=%d in prime_extra_server_args), or lower "
                              "the check's longest prompt (prime_serve_max_prompt_tokens)" % (longest, longest))
        else:
            finding["fix"] = _fix(finding["should_have_primed"], finding, bool(differing))


def causes_of(findings, differing, serving_args, long_prompts, chunk):
    """[{cause, text}]: other server args than primed, a longer context, request shapes that compiled."""
    causes = []
    if findings and differing:
        causes.append({"cause": "serving_args", "text": "the caches were primed with other extra server args (%s) than "
                       "serving runs with (%s): the serving configuration captures and compiles other shapes; "
                       "re-prime with the same server args" % (
                           "; ".join("%s: %s" % (s, " ".join(a) or "none") for s, a in differing.items()),
                           " ".join(serving_args) or "none")})
    if long_prompts:
        causes.append({"cause": "longer_context", "text": "a longer context: %s compiled at request time; a prompt "
                       "longer than the chunked-prefill size (%d tokens) runs its later chunks with the earlier ones "
                       "as prefix, a context the priming servers did not cover" % (
                           ", ".join(r["label"] for r in long_prompts), chunk)})
    long_labels = set(r["label"] for r in long_prompts)
    at_request = sorted(set(p for f in findings for p in f["phases"] if p not in (STARTUP, TEARDOWN)) - long_labels)
    if at_request:
        causes.append({"cause": "request_shapes", "text": "compiled while serving: %s" % ", ".join(at_request)})
    return causes


# ---- message: what to do
def message(findings, causes):
    """The jit_at_serve_time message: the kernels, what triggered them, the stage that should have primed them."""
    parts = []
    for finding in findings:
        text = finding["evidence"]
        if finding["log_lines"] and finding["kind"] == "cache":
            text += " (log: %s)" % finding["log_lines"][0].strip()
        text += ", triggered by %s; %s should have primed %s" % (
            ", ".join(finding["triggered_by"]), finding["should_have_primed"],
            "them" if finding["kind"] == "cache" else "it")
        parts.append(text)
    fixes = list(dict.fromkeys(f["fix"] for f in findings))
    out = "the serving configuration compiled at serve time, so the caches do not hold what serving needs: %s." % (
        "; ".join(parts))
    if causes:
        out += " Why: %s." % "; ".join(c["text"] for c in causes)
    out += " Fix: %s, then run serve_check again." % "; ".join(fixes)
    return out


def measured(evidence, before, after, server_env):
    """What the check measured, field by field, and what it cannot see: the verdict claims no more than this."""
    counts = evidence.get("jit_line_counts") or {}
    crash = server_env.get(contract.ENV_CRASH_ON_JIT_COMPILE) == "1"
    printing = server_env.get(contract.ENV_TRITON_PRINT_AUTOTUNING) == "1"
    return {
        "caches_unchanged": not any(f["kind"] == "cache" for f in evidence.get("findings") or []),
        "caches_watched": dict((name, path) for name, (path, _env) in sorted(contract.CACHES.items())),
        "files_before": len(before), "files_after": len(after),
        "jit_log_lines": sum(n for kind, n in counts.items() if kind not in ("triton_autotune", "sglang_jit_crash")),
        "jit_line_kinds_scanned": [kind for kind in sorted(LINE_WORDS) if kind not in ("triton_autotune", "sglang_jit_crash")],
        "triton_autotune_benchmarks": counts.get("triton_autotune", 0) if printing else None,
        "crash_on_jit_miss": {"switch": "%s=%s" % (contract.ENV_CRASH_ON_JIT_COMPILE, "1" if crash else "unset"),
                              "covers": "SGLang's own JIT kernels (sglang.kernels.jit, %s)" % contract.CACHES["sglang_jit"][0],
                              "crashed": bool(counts.get("sglang_jit_crash"))},
        "not_measured": list(NOT_MEASURED),
    }


def summary_text(evidence, requests_done):
    """One line for a passing check: what was driven and exactly what was measured (evidence["measured"])."""
    shapes = evidence.get("shapes") or {}
    facts = evidence.get("measured") or {}
    crash = facts.get("crash_on_jit_miss") or {}
    text = "%d requests (%d prompt lengths up to %s tokens, %d decode batch sizes up to %s): %d caches under %s " \
           "unchanged (%d files), no JIT log line" % (
               requests_done, len(shapes.get("prompt_lengths") or []), max(shapes.get("prompt_lengths") or [0]),
               len(shapes.get("decode_batch_sizes") or []), max(shapes.get("decode_batch_sizes") or [0]),
               len(facts.get("caches_watched") or {}), contract.PROFILES_ROOT, facts.get("files_after") or 0)
    if facts.get("triton_autotune_benchmarks") is not None:
        text += ", no Triton autotune benchmark"
    if crash.get("switch", "").endswith("=1"):
        text += ", no crash on a JIT miss (%s: SGLang's own JIT kernels)" % crash["switch"]
    return text

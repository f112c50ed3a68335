# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""The fleet report: one row per host read from its ``prime_report``, the summary, the Markdown, the files.

The module sglang.prep.sglang_fleet_report is its argument spec and a call of :func:`run`.

A host's row and its line in the Markdown table come from one table, :data:`COLUMNS`: each entry names the row key,
where the value is read in a host's ``prime_report`` (the runtime's priming state plus the role's overlay), the
table header (none: JSON only) and how the cell is written. A new fleet column is one new entry.
"""

from __future__ import annotations

import collections
import datetime
import os
import pwd
import re

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, jsonio, wording

HOST_STATUSES = ("ok", "changed", "failed")
ZERO_JIT_CELL = {True: "yes", False: "no"}  # None (no verdict): "-"
LATEST = "fleet-report-latest"
NAME_RE = re.compile(r"^fleet-report-([0-9]{8}T[0-9]{6}Z)(?:-([0-9]+))?$")
FILE_RE = re.compile(r"^(fleet-report-[0-9]{8}T[0-9]{6}Z(?:-[0-9]+)?)\.(?:json|md)$")
GPU_KEYS = ("device_name", "compute_capability", "driver_version", "cuda")
STAGE_KEYS = ("status", "ran", "duration_s", "error_type", "reprime_reasons")


# ---------------------------------------------------------------- reading a prime report

def read(report, paths):
    """The value at the first dotted path of ``paths`` that ``report`` has (null when none has it)."""
    for path in paths:
        value = report
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            return value
    return None


def _gpu(report):
    gpu = report.get("gpu") or {}
    return {key: gpu.get(key) for key in GPU_KEYS}


def _stage_row(stage):
    stage = stage or {}
    row = {key: stage.get(key) for key in STAGE_KEYS}
    row["reprime_reasons"] = list(row["reprime_reasons"] or [])
    if stage.get("source"):  # installed from the registry: which artifact
        row.update(source=stage["source"], digest=stage.get("digest"))
    return row


def _stages(report):
    return {name: _stage_row(stage) for name, stage in (report.get("stages") or {}).items()}


def _reasons(report):
    """Every stage's re-prime reasons, each naming its stage, in priming order."""
    stages = report.get("stages") or {}
    return [dict(reason, stage=name) for name in stage_order(stages) for reason in (stages[name] or {}).get("reprime_reasons") or []]


def _list(paths):
    return lambda report: list(read(report, paths) or [])


# ---------------------------------------------------------------- cells

def _text(value):
    return value


def _gpu_cell(gpu):
    if gpu["device_name"] or gpu["compute_capability"]:
        return "%s (%s)" % (gpu["device_name"] or "?", gpu["compute_capability"] or "?")
    return None


def _stage_cell(stage):
    if stage is None:
        return "-"
    text = stage["status"] or "?"
    if stage["duration_s"] is not None:
        text += " %.1fs" % stage["duration_s"]
    if stage["error_type"]:
        text += " (%s)" % stage["error_type"]
    return text


def _serve_cell(serve):
    """The serving server (serve.yml): its status and the zero-JIT verdict on the live server."""
    if not serve:
        return None
    verdict = {True: "zero JIT", False: "JIT at serve time"}.get(serve.get("zero_jit"), "no verdict")
    return "%s (%s)" % (serve.get("status") or "?", verdict)


def _cache_cell(size):
    return None if size is None else "%s (%d B)" % (human_bytes(size), size)


def human_bytes(value):
    if value is None:
        return None
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return None


def reasons_cell(reasons):
    """'deep_gemm, moe_tune: no previous signature; inductor: driver_version 550 -> 570' (stages with the same text merged)."""
    merged = collections.OrderedDict()
    for reason in reasons:
        stages = merged.setdefault(wording.reprime_text(reason), [])
        if reason.get("stage") not in stages:
            stages.append(reason.get("stage"))
    return "; ".join("%s: %s" % (", ".join(str(s) for s in stages), text) for text, stages in merged.items())


# ---------------------------------------------------------------- the columns

Column = collections.namedtuple("Column", "key source header cell")
Column.__doc__ = """One field of a host's row.

key: the row key (in the JSON report). source: the dotted paths read in the host's prime_report (the first found
wins; a later path reads the shape an older role wrote), or a function of the prime_report. header: the Markdown
table header, None for a field the JSON carries but the table does not show; STAGES stands for one column per stage.
cell: the row value to the cell text (None or empty: '-')."""

STAGES = object()  # the header of the stage columns: one column per stage of the report's stage_order

COLUMNS = (
    Column("host", ("host",), "host", _text),
    Column("status", ("status",), "status", _text),
    Column("signature_group", ("signature_group",), "signature group", _text),
    Column("gpu", _gpu, "GPU", _gpu_cell),
    Column("stages", _stages, STAGES, _stage_cell),
    Column("zero_jit", ("zero_jit",), "zero JIT", ZERO_JIT_CELL.get),
    Column("cache_bytes", ("caches.total_bytes", "cache_bytes"), "cache", _cache_cell),
    Column("reprime_reasons", _reasons, "re-prime reasons", reasons_cell),
    Column("serve", ("serve",), "serving", _serve_cell),
    Column("finished_at", ("finished_at",), "finished", _text),
    Column("error_type", ("error_type",), "error_type", _text),
    Column("run_id", ("run.run_id", "run_id"), None, _text),
    Column("zero_jit_reason", ("zero_jit_reason",), None, _text),
    Column("failed_task", ("failed_task",), None, _text),
    Column("message", ("message",), None, _text),
    Column("prep_result_path", ("prep_result_path",), None, _text),
    Column("prep_result_status", ("aggregate", "prep_result_status"), None, _text),
    Column("log_file", ("run.log_file", "log_file"), None, _text),
    Column("container", ("container",), None, _text),
    Column("changes", _list(("changes",)), None, _text),
    Column("fanout", ("fanout",), None, _text),
    Column("registry", ("registry",), None, _text),
)


def host_row(report):
    """One report row from a host's prime_report (missing keys become null, nothing is invented)."""
    return {column.key: (column.source(report) if callable(column.source) else read(report, column.source))
            for column in COLUMNS}


def headers(stages):
    """The Markdown table's headers, the stage columns spelled out."""
    out = []
    for column in COLUMNS:
        if column.header is STAGES:
            out += list(stages)
        elif column.header is not None:
            out.append(column.header)
    return out


def cells(row, stages):
    """A row's Markdown cells, in the order of :func:`headers`."""
    out = []
    for column in COLUMNS:
        if column.header is STAGES:
            out += [column.cell(row[column.key].get(name)) for name in stages]
        elif column.header is not None:
            out.append(column.cell(row[column.key]))
    return out


# ---------------------------------------------------------------- the report

def _new_fanout_group(builder):
    return {"builder": builder, "receivers": [], "installed_on": [], "primed_itself": [], "bytes_moved": 0,
            "transfer_s": 0.0, "install_s": 0.0, "compiles_avoided": 0, "bundle_digest": None, "transfer": None}


def _count_receiver(group, host, fanout):
    group["receivers"].append(host)
    group["transfer"] = fanout.get("transfer") or group["transfer"]
    installed = list(fanout.get("installed") or [])
    if not installed:
        group["primed_itself"].append(host)
        return
    group["installed_on"].append(host)
    group["compiles_avoided"] += len(installed)
    group["bytes_moved"] += int(fanout.get("bytes_moved") or 0)
    group["transfer_s"] = round(group["transfer_s"] + float(fanout.get("transfer_s") or 0), 3)
    group["install_s"] = round(group["install_s"] + float(fanout.get("install_s") or 0), 3)


def fanout_groups(ordered):
    """Per fan-out group (prime_fanout): builder, receivers, bytes moved, transfer and install time, compiles avoided."""
    groups = {}
    for row in ordered:
        fanout = row.get("fanout") or {}
        if not fanout.get("group"):
            continue
        group = groups.setdefault(fanout["group"], _new_fanout_group(fanout.get("builder")))
        if fanout.get("role") == "builder":
            group["bundle_digest"] = fanout.get("bundle_digest") or group["bundle_digest"]
        elif fanout.get("role") == "receiver":
            _count_receiver(group, row["host"], fanout)
    return groups


def missing_row(host, unreachable):
    """The row of a targeted host that left no report: failed, never dropped."""
    if unreachable:
        error_type = "unreachable"
        message = "Ansible could not reach this host, so it was not primed. Check SSH access (ansible_host, ansible_user, key) and re-run."
    else:
        error_type = "not_run"
        message = ("The host left no prime report: the priming play did not reach it, or did not finish on it (Ansible stops "
                   "the play when max_fail_percentage is exceeded or every host of a serial batch failed). Fix the failed "
                   "hosts and re-run.")
    return host_row({"host": host, "status": "failed", "error_type": error_type, "message": message})


def stage_order(stages):
    """Known stages in priming order, then any other stage names in sorted order."""
    known = [s for s in contract.STAGE_ORDER if s in stages]
    return known + sorted(s for s in stages if s not in contract.STAGE_ORDER)


def _host_key(name):
    """Sort key that puts gpu-2 before gpu-10."""
    return [(0, "", int(part)) if part.isdigit() else (1, part, 0) for part in re.findall(r"[0-9]+|[^0-9]+", name)]


def _rows(reports, hosts, unreachable, warnings):
    rows = {}
    for report in reports:
        if not report.get("host"):
            raise ValueError("a prime report has no 'host' key: %r" % (sorted(report),))
        if report["host"] in rows:
            warnings.append("two prime reports for host %s; the last one is used" % report["host"])
        rows[report["host"]] = host_row(report)
    for host in hosts:
        if host not in rows:
            rows[host] = missing_row(host, host in unreachable)
    ordered = [rows[name] for name in sorted(rows, key=_host_key)]
    for row in ordered:
        if row["status"] not in HOST_STATUSES:
            warnings.append("host %s reported status %r (expected one of %s)" % (row["host"], row["status"], ", ".join(HOST_STATUSES)))
    return ordered


def signature_groups(ordered):
    """Per signature group its hosts and the GPU names and compute capabilities they reported."""
    groups = {}
    for row in ordered:
        if row["signature_group"] is None:
            continue
        group = groups.setdefault(row["signature_group"], {"hosts": [], "device_name": [], "compute_capability": []})
        group["hosts"].append(row["host"])
        for key in ("device_name", "compute_capability"):
            if row["gpu"][key] is not None and row["gpu"][key] not in group[key]:
                group[key].append(row["gpu"][key])
    return groups


def summary(ordered):
    """Host counts per status, the zero-JIT proof count, the signature groups and (with fan-out) the fan-out groups."""
    out = {"hosts": len(ordered), "signature_groups": signature_groups(ordered)}
    fanout = fanout_groups(ordered)
    if fanout:  # a run with -e prime_fanout=true
        out["fanout"] = fanout
    for status in HOST_STATUSES:
        out[status] = sum(1 for row in ordered if row["status"] == status)
    out["other"] = len(ordered) - sum(out[s] for s in HOST_STATUSES)
    primed = [row for row in ordered if row["status"] in ("ok", "changed")]
    out["zero_jit"] = {"proven": sum(1 for row in primed if row["zero_jit"] is True), "primed": len(primed),
                       "jit": sum(1 for row in ordered if row["zero_jit"] is False)}
    return out


def build_report(reports, hosts=(), unreachable=(), context=None, now=None):
    """The fleet report dict, plus warnings about inputs that had to be reconciled."""
    warnings = []
    ordered = _rows(reports, hosts, unreachable, warnings)
    all_stages = {}
    for row in ordered:
        all_stages.update(row["stages"])
    stamp = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = {
        "schema_version": contract.SCHEMA_VERSION,
        "generated_at": stamp,
        "context": dict(context or {}),
        "stage_order": stage_order(all_stages),
        "summary": summary(ordered),
        "hosts": ordered,
    }
    return report, warnings


def compile_seconds(row):
    """Seconds the host's stages spent running this time: the stages that ran (a noop or an install adds nothing)."""
    total = 0.0
    for stage in row["stages"].values():
        duration = stage.get("duration_s")
        if stage.get("ran") and isinstance(duration, (int, float)) and not isinstance(duration, bool):
            total += duration
    return round(total, 3)


def stats(report, json_path=None):
    """The summary for set_stats: per host status, error_type, zero_jit and compile_s; the counts; the report file."""
    summary_ = dict((key, value) for key, value in report["summary"].items() if key not in ("signature_groups", "fanout"))
    return {
        "hosts": dict((row["host"], {"status": row["status"], "error_type": row["error_type"], "zero_jit": row["zero_jit"],
                                     "compile_s": compile_seconds(row)}) for row in report["hosts"]),
        "summary": summary_,
        "report": json_path,
    }


# ---------------------------------------------------------------- markdown

def _cell(value):
    if value is None or value == "" or value == []:
        return "-"
    text = str(value).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return text.strip() or "-"


def _line(values):
    return "| " + " | ".join(_cell(v) for v in values) + " |"


def _table(header, rows):
    return [_line(header), "|" + "---|" * len(header)] + [_line(row) for row in rows]


def _headline(report):
    summary_ = report["summary"]
    line = "Generated %s. %d hosts: %d changed, %d ok, %d failed; %d signature groups." % (
        report["generated_at"], summary_["hosts"], summary_["changed"], summary_["ok"], summary_["failed"],
        len(summary_["signature_groups"]))
    if summary_["other"]:
        line += " %d with an unexpected status." % summary_["other"]
    proof = summary_["zero_jit"]
    line += " Zero JIT proven on %d of %d primed hosts%s." % (
        proof["proven"], proof["primed"], "; JIT at serve time on %d" % proof["jit"] if proof["jit"] else "")
    return [line] + ["- %s: %s" % (key, _cell(report["context"][key])) for key in sorted(report["context"])]


def _groups_section(groups):
    if not groups:
        return []
    rows = [[name, ", ".join(groups[name]["device_name"]), ", ".join(groups[name]["compute_capability"]),
             ", ".join(groups[name]["hosts"])] for name in sorted(groups)]
    return (["", "## Signature groups", "",
             "Hosts in one group have the same GPU and software stack (the hardware and toolchain fields of the stage signature).", ""]
            + _table(["signature group", "GPU", "compute capability", "hosts"], rows))


def _fanout_section(groups):
    if not groups:
        return []
    rows = []
    for name in sorted(groups):
        group = groups[name]
        rows.append([name, group["builder"], ", ".join(group["receivers"]), ", ".join(group["installed_on"]),
                     ", ".join(group["primed_itself"]), _cache_cell(group["bytes_moved"]),
                     "%.1fs%s" % (group["transfer_s"], " (%s)" % group["transfer"] if group.get("transfer") else ""),
                     "%.1fs" % group["install_s"], group["compiles_avoided"]])
    return (["", "## Fan-out", "",
             "One builder per group primed; its receivers installed its bundle instead of compiling (compiles avoided: "
             "stages installed), then proved it with the serve check.", ""]
            + _table(["fan-out group", "builder", "receivers", "installed on", "primed itself", "bytes moved", "transfer",
                      "install", "compiles avoided"], rows))


def _short(digest):
    return (digest or "")[:19] or None


def _registry_section(rows):
    """Per host that asked the registry (prime_bundle_transfer=registry): what it installed from which artifact and
    the compile seconds its builder spent (this host saved them), or what it published."""
    table = []
    for row in rows:
        entry = row.get("registry") or {}
        if not entry:
            continue
        published = entry.get("published") or {}
        saved = entry.get("builder_compile_s")
        table.append([row["host"], entry.get("outcome"), ", ".join(entry.get("installed") or []), _short(entry.get("digest")),
                      entry.get("source_host"), None if saved is None else "%.1fs" % saved,
                      _short(published.get("digest")), entry.get("error_type") or published.get("error_type")])
    if not table:
        return []
    return (["", "## Registry", "",
             "Hosts that asked the registry for their signature group's bundle: installed (source: registry, pinned by "
             "digest, then proven by the serve check), or primed themselves and published.", ""]
            + _table(["host", "outcome", "installed", "digest", "builder", "compile saved", "published", "error_type"],
                     table))


def _failures_section(rows):
    failed = [row for row in rows if row["status"] not in ("ok", "changed")]
    if not failed:
        return []
    lines = ["", "## Failures", ""]
    for row in failed:
        where = " in task \"%s\"" % row["failed_task"] if row["failed_task"] else ""
        log = " (session log: %s)" % row["log_file"] if row["log_file"] else ""
        lines.append("- **%s**: %s%s: %s%s" % (row["host"], row["error_type"] or "unclassified", where, _cell(row["message"]), log))
    return lines


def render_markdown(report):
    stages = report["stage_order"]
    lines = ["# sglang.prep fleet report", ""] + _headline(report) + [""]
    lines += _table(headers(stages), [cells(row, stages) for row in report["hosts"]])
    lines += _groups_section(report["summary"]["signature_groups"])
    lines += _fanout_section(report["summary"].get("fanout"))
    lines += _registry_section(report["hosts"])
    lines += _failures_section(report["hosts"])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- files

def _owner(path):
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return "unknown"
    try:
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid


def _me():
    uid = os.geteuid()
    try:
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid


def _existing_parent(path):
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def report_paths(report_dir, now):
    """Time-stamped paths that do not exist yet (a suffix keeps two reports of one second apart)."""
    base = os.path.join(report_dir, "fleet-report-" + now.strftime("%Y%m%dT%H%M%SZ"))
    candidate, n = base, 1
    while os.path.exists(candidate + ".json") or os.path.exists(candidate + ".md"):
        n += 1
        candidate = "%s-%d" % (base, n)
    return candidate + ".json", candidate + ".md"


def write_report(report_dir, json_path, md_path, report, markdown):
    try:
        os.makedirs(report_dir, exist_ok=True)
        jsonio.write_json_atomic(json_path, report)
        jsonio.write_text_atomic(md_path, markdown)
        jsonio.write_json_atomic(os.path.join(report_dir, LATEST + ".json"), report)
        jsonio.write_text_atomic(os.path.join(report_dir, LATEST + ".md"), markdown)
    except OSError as exc:
        where = _existing_parent(report_dir)
        raise OSError("cannot write the fleet report in %s: %s. %s is owned by %s; this runs as %s. "
                      "Give that user write access to it or set another report directory."
                      % (report_dir, exc.strerror or exc, where, _owner(where), _me()))


def _name_key(name):
    """Sort key of a time-stamped report name: its stamp, then its same-second suffix (none is 1)."""
    match = NAME_RE.fullmatch(name)
    return match.group(1), int(match.group(2) or 1)


def prune_reports(report_dir, keep, current):
    """Delete the time-stamped reports in report_dir beyond the newest `keep` (current, the report just written,
    always counts among them). Returns (deleted paths, oldest first; warnings). Only regular files named like a
    time-stamped report are candidates: fleet-report-latest.* and any other file are never touched."""
    if keep <= 0:
        return [], []
    reports = {}
    try:
        entries = list(os.scandir(report_dir))
    except OSError as exc:
        return [], ["could not list %s to remove old fleet reports: %s" % (report_dir, exc.strerror or exc)]
    for entry in entries:
        match = FILE_RE.fullmatch(entry.name)
        if match and entry.is_file(follow_symlinks=False):
            reports.setdefault(match.group(1), []).append(entry.path)
    newest_first = sorted(reports, key=_name_key, reverse=True)
    kept = set([current] + [name for name in newest_first if name != current][:keep - 1])
    deleted, warnings = [], []
    for name in reversed(newest_first):
        if name in kept:
            continue
        for path in sorted(reports[name]):
            try:
                os.remove(path)
            except FileNotFoundError:
                continue  # removed meanwhile (another run pruning the same directory)
            except OSError as exc:
                warnings.append("could not remove the old fleet report %s: %s" % (path, exc.strerror or exc))
                continue
            deleted.append(path)
    return deleted, warnings


class ReportError(Exception):
    """Why the module fails: a message a person can act on, and the result built so far (or none)."""

    def __init__(self, msg, result=None):
        super(ReportError, self).__init__(msg)
        self.msg = msg
        self.result = result or {}


def _paths(report_dir, name, now):
    if not name:
        return report_paths(report_dir, now)
    if not NAME_RE.fullmatch(name):
        raise ReportError("name %r is not the name of a fleet report (fleet-report-<yyyymmddThhmmssZ>[-n])" % name)
    return tuple(os.path.join(report_dir, name + ext) for ext in (".json", ".md"))


def run(params, check_mode, warn, now=None):
    """The module's work: build, render, write and prune. Returns its result; raises ReportError (the message to fail
    with, and the result built so far) on bad input or an unwritable report directory."""
    if params["keep"] < 0:
        raise ReportError("keep must be 0 (keep every report) or a positive number of reports, not %d" % params["keep"])
    now = now or datetime.datetime.now(datetime.timezone.utc)
    try:
        report, warnings = build_report(params["reports"], params["hosts"], params["unreachable"], params["context"], now)
    except ValueError as exc:
        raise ReportError(str(exc))
    markdown = render_markdown(report)
    report_dir = params["report_dir"]
    json_path, md_path = _paths(report_dir, params["name"], now)
    result = dict(
        changed=True,
        report=report,
        table=report["hosts"],
        markdown=markdown,
        json_path=json_path,
        markdown_path=md_path,
        name=os.path.basename(json_path)[:-len(".json")],
        latest_json_path=os.path.join(report_dir, LATEST + ".json"),
        latest_markdown_path=os.path.join(report_dir, LATEST + ".md"),
        written=False,
        pruned=[],
        stats=stats(report, json_path if not check_mode else None),
    )
    for warning in warnings:
        warn(warning)
    if check_mode:
        return result
    try:
        write_report(report_dir, json_path, md_path, report, markdown)
    except OSError as exc:
        raise ReportError(str(exc), result)
    result["written"] = True
    result["pruned"], prune_warnings = prune_reports(report_dir, params["keep"], result["name"])
    for warning in prune_warnings:
        warn(warning)
    return result

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_fleet_report
short_description: Write the fleet report of a priming run on the controller
version_added: 1.0.0
description:
  - Turns the per-host C(prime_report) facts that role C(sglang.prep.prime) sets (on success and on failure)
    into one fleet report, and writes it on the controller as JSON and as a Markdown table.
  - One row per host with its status, signature group, GPU, per-stage status and duration, whether serving was
    proven to compile nothing (C(zero JIT), from the host's serve check), cache bytes, re-prime reasons and
    classified error type. Rows are sorted by host name. The summary counts the hosts proven against the hosts primed.
  - Every host named in O(hosts) gets a row. A host without a report is never dropped; it is reported as
    failed with error type C(unreachable) when it is listed in O(unreachable), else C(not_run)
    (reachable, but the priming play never finished on it, for example because Ansible stopped the play).
  - Writes C(fleet-report-<UTC stamp>.json) and C(fleet-report-<UTC stamp>.md) in O(report_dir), then the same
    content to C(fleet-report-latest.json) and C(fleet-report-latest.md). All writes are atomic (temporary file, then rename).
  - With O(name) it rewrites a report written earlier in the same run (the later batches of a serial play do),
    so one run leaves one time-stamped report, which always lists every host seen so far.
  - With O(keep) it then deletes the older time-stamped reports in O(report_dir) beyond the newest O(keep)
    (the one just written always stays). Only files named like a time-stamped report
    (C(fleet-report-<yyyymmddThhmmssZ>[-n].json) or C(.md)) are ever deleted; C(fleet-report-latest.*) and every other
    file are left alone.
  - The report only restates what the hosts reported; nothing is recomputed here (the signature group comes
    from each host's C(prep_result.json)).
options:
  reports:
    description:
      - The per-host C(prime_report) dictionaries, as set by role M(sglang.prep.prime).
      - Keys used are C(host), C(status) (C(ok), C(changed) or C(failed)), C(failed_task), C(error_type), C(message),
        C(run_id), C(signature_group), C(gpu), C(stages), C(zero_jit), C(zero_jit_reason), C(cache_bytes), C(prep_result_path),
        C(prep_result_status), C(log_file), C(container), C(changes) and C(finished_at) (when the host's priming state
        was built, UTC). Missing keys are reported as null.
    type: list
    elements: dict
    required: true
  hosts:
    description:
      - Every host the priming play targeted. Hosts in this list without an entry in O(reports) are reported as failed.
      - Hosts that have a report but are not in this list are reported too.
    type: list
    elements: str
    default: []
  unreachable:
    description:
      - Hosts among those without a report that could not be reached. Their error type is C(unreachable).
    type: list
    elements: str
    default: []
  report_dir:
    description:
      - Controller directory that receives the report files. Created if missing.
    type: path
    required: true
  name:
    description:
      - Name (without C(.json)/C(.md)) of a report to rewrite, as RV(name) returned it for an earlier batch of the same run.
      - Unset means a new time-stamped name.
    type: str
  context:
    description:
      - Free-form facts about the run (for example the model, the mode or the playbook) stored under C(context) in the JSON report
        and listed at the top of the Markdown report.
    type: dict
    default: {}
  keep:
    description:
      - How many time-stamped reports (each a C(.json) and C(.md) pair) to keep in O(report_dir), the one just written included;
        older ones are deleted after the write. Newest means the latest time stamp in the name.
      - C(0) keeps every report. Role C(sglang.prep.fleet_report) passes C(fleet_report_keep) (default 10).
      - A report that cannot be deleted is left with a warning; it never fails the module.
    type: int
    default: 0
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode the report is built and returned; no file is written and none is deleted (RV(written) is false).
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run it on the controller (a play on C(localhost), or C(delegate_to=localhost)). Role C(sglang.prep.fleet_report) does;
    role C(sglang.prep.prime) includes it once per batch, before it fails a host.
  - An unwritable O(report_dir) fails with the path, the owner seen and the user the module runs as. Nothing is chown-ed or chmod-ed.
seealso:
  - module: sglang.prep.sglang_stage
author:
  - Seed 0be3ddc0 maintainers (@maintainers)
"""

EXAMPLES = r"""
- name: Write the fleet report for every host of group gpu_hosts
  sglang.prep.sglang_fleet_report:
    reports: "{{ groups['gpu_hosts'] | map('extract', hostvars, 'prime_report') | select('defined') | list }}"
    hosts: "{{ groups['gpu_hosts'] }}"
    report_dir: "{{ playbook_dir }}/../reports"
    context:
      model: /models/DeepSeek-V3
  delegate_to: localhost
  run_once: true
  register: fleet

- name: Show the table
  ansible.builtin.debug:
    msg: "{{ fleet.markdown }}"
"""

RETURN = r"""
report:
  description: The whole report, exactly as written to the JSON file.
  returned: always
  type: dict
  contains:
    schema_version:
      description: Report schema version.
      type: str
      sample: "1"
    generated_at:
      description: UTC time the report was built.
      type: str
      sample: "2026-11-29T16:02:11Z"
    stage_order:
      description: The stage columns, in priming order.
      type: list
      elements: str
      sample: [deep_gemm, moe_tune, flashinfer, inductor]
    summary:
      description:
        - Host counts per status, and the hosts of each signature group.
        - C(zero_jit) counts the hosts whose serve check proved that serving compiles nothing (C(proven)) against the
          hosts primed (status ok or changed), and the hosts where it found JIT (C(jit)).
        - C(fanout) (with C(prime_fanout)) has per fan-out group its C(builder), C(receivers), the receivers it was
          C(installed_on) and those that C(primed_itself), how bundles moved (C(transfer), one of ssh, store, url or
          controller), C(bytes_moved), C(transfer_s), C(install_s) (summed over receivers), C(compiles_avoided) (stages
          installed instead of primed) and the C(bundle_digest).
      type: dict
      sample: {"hosts": 3, "ok": 1, "changed": 1, "failed": 1, "zero_jit": {"proven": 2, "primed": 2, "jit": 0},
               "signature_groups": {"3f2a9c1e": {"hosts": ["gpu-a", "gpu-b"]}}}
    hosts:
      description: One row per host; see RV(table).
      type: list
      elements: dict
stats:
  description:
    - The summary a workflow or a notification reads; the fleet report role returns it with M(ansible.builtin.set_stats)
      as C(sglang_prep_fleet).
    - Per host its C(status), C(error_type), C(zero_jit) (true, false or null) and C(compile_s), the seconds its stages
      spent running this time (stages that ran; a no-op or an installed bundle adds nothing); the counts of
      RV(report.summary); and where the report was written (null in check mode).
  returned: always
  type: dict
  sample: {"hosts": {"gpu-a": {"status": "changed", "error_type": null, "zero_jit": true, "compile_s": 41.2}},
           "summary": {"hosts": 1, "ok": 0, "changed": 1, "failed": 0, "zero_jit": {"proven": 1, "primed": 1, "jit": 0}},
           "report": "reports/fleet-report-20261129T160211Z.json"}
table:
  description: One row per host, sorted by host name.
  returned: always
  type: list
  elements: dict
  sample:
    - host: gpu-a
      status: changed
      signature_group: 3f2a9c1e
      gpu: {device_name: NVIDIA H100 80GB HBM3, compute_capability: "9.0"}
      run_id: container-run-20261129T160102Z-1a2b3c4d
      stages: {deep_gemm: {status: ok, ran: true, duration_s: 3.2, error_type: null, reprime_reasons: []}}
      zero_jit: true
      zero_jit_reason: "yes: 49 requests (13 prompt lengths, 36 decode batch sizes): 9 caches under /profiles unchanged (812 files), no JIT log line, ..."
      cache_bytes: 123456
      reprime_reasons: []
      error_type: null
      failed_task: null
      message: null
      prep_result_path: /home/ubuntu/sglang-observability/telemetry/container_runs/container-run-20261129T160102Z-1a2b3c4d/prep_result.json
      prep_result_status: ok
      log_file: /home/ubuntu/sglang-observability/telemetry/logs/container-run-20261129T160102Z-1a2b3c4d.log
      container: sglang-prep
      changes: [container, deep_gemm]
      finished_at: "2026-11-29T16:03:10Z"
markdown:
  description: The Markdown report, exactly as written to the C(.md) file.
  returned: always
  type: str
json_path:
  description: Path of the time-stamped JSON report (not written in check mode).
  returned: always
  type: str
  sample: /srv/reports/fleet-report-20261129T160211Z.json
markdown_path:
  description: Path of the time-stamped Markdown report (not written in check mode).
  returned: always
  type: str
name:
  description: Name of the time-stamped report (its file names without extension); pass it as O(name) to rewrite it.
  returned: always
  type: str
  sample: fleet-report-20261129T160211Z
latest_json_path:
  description: Path of C(fleet-report-latest.json).
  returned: always
  type: str
latest_markdown_path:
  description: Path of C(fleet-report-latest.md).
  returned: always
  type: str
written:
  description: Whether the report files were written (false in check mode).
  returned: always
  type: bool
  sample: true
pruned:
  description: The older time-stamped report files deleted because of O(keep), oldest first (empty in check mode).
  returned: always
  type: list
  elements: str
  sample: [/srv/reports/fleet-report-20261120T101500Z.json, /srv/reports/fleet-report-20261120T101500Z.md]
"""

import datetime
import os
import pwd
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, jsonio, wording

HOST_STATUSES = ("ok", "changed", "failed")
ZERO_JIT_CELL = {True: "yes", False: "no"}  # None (no verdict): "-"
LATEST = "fleet-report-latest"
NAME_RE = re.compile(r"^fleet-report-([0-9]{8}T[0-9]{6}Z)(?:-([0-9]+))?$")
FILE_RE = re.compile(r"^(fleet-report-[0-9]{8}T[0-9]{6}Z(?:-[0-9]+)?)\.(?:json|md)$")


def _gpu(report):
    gpu = report.get("gpu") or {}
    return {key: gpu.get(key) for key in ("device_name", "compute_capability", "driver_version", "cuda")}


def _stage_row(stage):
    stage = stage or {}
    return {
        "status": stage.get("status"),
        "ran": stage.get("ran"),
        "duration_s": stage.get("duration_s"),
        "error_type": stage.get("error_type"),
        "reprime_reasons": list(stage.get("reprime_reasons") or []),
    }


def _stage_source(row, stage):
    """A stage installed from the registry says so (source: registry, and the artifact's digest)."""
    if (stage or {}).get("source"):
        row.update(source=stage["source"], digest=stage.get("digest"))
    return row


def host_row(report):
    """One report row from a host's prime_report (missing keys become null, nothing is invented)."""
    stages = {name: _stage_source(_stage_row(stage), stage) for name, stage in (report.get("stages") or {}).items()}
    reasons = []
    for name in stage_order(stages):
        for reason in stages[name]["reprime_reasons"]:
            reasons.append(dict(reason, stage=name))
    return {
        "host": report["host"],
        "status": report.get("status"),
        "signature_group": report.get("signature_group"),
        "gpu": _gpu(report),
        "run_id": report.get("run_id"),
        "stages": stages,
        "zero_jit": report.get("zero_jit"),
        "zero_jit_reason": report.get("zero_jit_reason"),
        "cache_bytes": report.get("cache_bytes"),
        "reprime_reasons": reasons,
        "error_type": report.get("error_type"),
        "failed_task": report.get("failed_task"),
        "message": report.get("message"),
        "prep_result_path": report.get("prep_result_path"),
        "prep_result_status": report.get("prep_result_status"),
        "log_file": report.get("log_file"),
        "container": report.get("container"),
        "changes": list(report.get("changes") or []),
        "finished_at": report.get("finished_at"),
        "fanout": report.get("fanout"),
        "registry": report.get("registry"),
    }


def fanout_groups(ordered):
    """Per fan-out group (prime_fanout): builder, receivers, bytes moved, transfer and install time, compiles avoided."""
    groups = {}
    for row in ordered:
        fanout = row.get("fanout") or {}
        if not fanout.get("group"):
            continue
        group = groups.setdefault(fanout["group"], {"builder": fanout.get("builder"), "receivers": [], "installed_on": [],
                                                    "primed_itself": [], "bytes_moved": 0, "transfer_s": 0.0, "install_s": 0.0,
                                                    "compiles_avoided": 0, "bundle_digest": None, "transfer": None})
        if fanout.get("role") == "builder":
            group["bundle_digest"] = fanout.get("bundle_digest") or group["bundle_digest"]
            continue
        if fanout.get("role") != "receiver":
            continue
        group["receivers"].append(row["host"])
        group["transfer"] = fanout.get("transfer") or group["transfer"]
        installed = list(fanout.get("installed") or [])
        if installed:
            group["installed_on"].append(row["host"])
            group["compiles_avoided"] += len(installed)
            group["bytes_moved"] += int(fanout.get("bytes_moved") or 0)
            group["transfer_s"] = round(group["transfer_s"] + float(fanout.get("transfer_s") or 0), 3)
            group["install_s"] = round(group["install_s"] + float(fanout.get("install_s") or 0), 3)
        else:
            group["primed_itself"].append(row["host"])
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
    parts, digits, text = [], "", ""
    for char in name:
        if char.isdigit():
            if text:
                parts.append((1, text, 0))
                text = ""
            digits += char
        else:
            if digits:
                parts.append((0, "", int(digits)))
                digits = ""
            text += char
    if digits:
        parts.append((0, "", int(digits)))
    if text:
        parts.append((1, text, 0))
    return parts


def build_report(reports, hosts=(), unreachable=(), context=None, now=None):
    """The fleet report dict, plus warnings about inputs that had to be reconciled."""
    warnings = []
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

    all_stages = {}
    for row in ordered:
        all_stages.update(row["stages"])
    groups = {}
    for row in ordered:
        if row["signature_group"] is None:
            continue
        group = groups.setdefault(row["signature_group"], {"hosts": [], "device_name": [], "compute_capability": []})
        group["hosts"].append(row["host"])
        for key in ("device_name", "compute_capability"):
            if row["gpu"][key] is not None and row["gpu"][key] not in group[key]:
                group[key].append(row["gpu"][key])
    summary = {"hosts": len(ordered), "signature_groups": groups}
    fanout = fanout_groups(ordered)
    if fanout:  # a run with -e prime_fanout=true
        summary["fanout"] = fanout
    for status in HOST_STATUSES:
        summary[status] = sum(1 for row in ordered if row["status"] == status)
    summary["other"] = len(ordered) - sum(summary[s] for s in HOST_STATUSES)
    primed = [row for row in ordered if row["status"] in ("ok", "changed")]
    summary["zero_jit"] = {"proven": sum(1 for row in primed if row["zero_jit"] is True), "primed": len(primed),
                           "jit": sum(1 for row in ordered if row["zero_jit"] is False)}
    stamp = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report = {
        "schema_version": contract.SCHEMA_VERSION,
        "generated_at": stamp,
        "context": dict(context or {}),
        "stage_order": stage_order(all_stages),
        "summary": summary,
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
    summary = dict((key, value) for key, value in report["summary"].items() if key not in ("signature_groups", "fanout"))
    return {
        "hosts": dict((row["host"], {"status": row["status"], "error_type": row["error_type"], "zero_jit": row["zero_jit"],
                                     "compile_s": compile_seconds(row)}) for row in report["hosts"]),
        "summary": summary,
        "report": json_path,
    }


# ---------------------------------------------------------------- markdown

def _cell(value):
    if value is None or value == "" or value == []:
        return "-"
    text = str(value).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return text.strip() or "-"


def human_bytes(value):
    if value is None:
        return None
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0
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


def reasons_cell(reasons):
    """'deep_gemm, moe_tune: no previous signature; inductor: driver_version 550 -> 570' (stages with the same text merged)."""
    texts = []
    for reason in reasons:
        text = wording.reprime_text(reason)
        for entry in texts:
            if entry[1] == text:
                if reason.get("stage") not in entry[0]:
                    entry[0].append(reason.get("stage"))
                break
        else:
            texts.append(([reason.get("stage")], text))
    return "; ".join("%s: %s" % (", ".join(str(s) for s in stages), text) for stages, text in texts)


def render_markdown(report):
    summary = report["summary"]
    stages = report["stage_order"]
    lines = ["# sglang.prep fleet report", "",
             "Generated %s. %d hosts: %d changed, %d ok, %d failed; %d signature groups." % (
                 report["generated_at"], summary["hosts"], summary["changed"], summary["ok"], summary["failed"],
                 len(summary["signature_groups"]))]
    if summary["other"]:
        lines[-1] += " %d with an unexpected status." % summary["other"]
    proof = summary["zero_jit"]
    lines[-1] += " Zero JIT proven on %d of %d primed hosts%s." % (
        proof["proven"], proof["primed"], "; JIT at serve time on %d" % proof["jit"] if proof["jit"] else "")
    for key in sorted(report["context"]):
        lines.append("- %s: %s" % (key, _cell(report["context"][key])))
    lines.append("")
    header = (["host", "status", "signature group", "GPU"] + stages
              + ["zero JIT", "cache", "re-prime reasons", "finished", "error_type"])
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in report["hosts"]:
        gpu = row["gpu"]
        gpu_text = None
        if gpu["device_name"] or gpu["compute_capability"]:
            gpu_text = "%s (%s)" % (gpu["device_name"] or "?", gpu["compute_capability"] or "?")
        cells = [row["host"], row["status"], row["signature_group"], gpu_text]
        cells += [_stage_cell(row["stages"].get(name)) for name in stages]
        cells.append(ZERO_JIT_CELL.get(row["zero_jit"]))
        cache = None if row["cache_bytes"] is None else "%s (%d B)" % (human_bytes(row["cache_bytes"]), row["cache_bytes"])
        cells += [cache, reasons_cell(row["reprime_reasons"]), row["finished_at"], row["error_type"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")

    if summary["signature_groups"]:
        lines += ["", "## Signature groups", "",
                  "Hosts in one group have the same GPU and software stack (the hardware and toolchain fields of the stage signature).", "",
                  "| signature group | GPU | compute capability | hosts |", "|---|---|---|---|"]
        for name in sorted(summary["signature_groups"]):
            group = summary["signature_groups"][name]
            cells = [name, ", ".join(group["device_name"]), ", ".join(group["compute_capability"]), ", ".join(group["hosts"])]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")

    if summary.get("fanout"):
        lines += ["", "## Fan-out", "",
                  "One builder per group primed; its receivers installed its bundle instead of compiling (compiles avoided: "
                  "stages installed), then proved it with the serve check.", "",
                  "| fan-out group | builder | receivers | installed on | primed itself | bytes moved | transfer | install | compiles avoided |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name in sorted(summary["fanout"]):
            group = summary["fanout"][name]
            cells = [name, group["builder"], ", ".join(group["receivers"]) or "-", ", ".join(group["installed_on"]) or "-",
                     ", ".join(group["primed_itself"]) or "-", "%s (%d B)" % (human_bytes(group["bytes_moved"]), group["bytes_moved"]),
                     "%.1fs%s" % (group["transfer_s"], " (%s)" % group["transfer"] if group.get("transfer") else ""),
                     "%.1fs" % group["install_s"], group["compiles_avoided"]]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")

    failed = [row for row in report["hosts"] if row["status"] not in ("ok", "changed")]
    if failed:
        lines += ["", "## Failures", ""]
        for row in failed:
            where = " in task \"%s\"" % row["failed_task"] if row["failed_task"] else ""
            log = " (session log: %s)" % row["log_file"] if row["log_file"] else ""
            lines.append("- **%s**: %s%s: %s%s" % (row["host"], row["error_type"] or "unclassified", where, _cell(row["message"]), log))
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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            reports=dict(type="list", elements="dict", required=True),
            hosts=dict(type="list", elements="str", default=[]),
            unreachable=dict(type="list", elements="str", default=[]),
            report_dir=dict(type="path", required=True),
            name=dict(type="str"),
            context=dict(type="dict", default={}),
            keep=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["keep"] < 0:
        module.fail_json(msg="keep must be 0 (keep every report) or a positive number of reports, not %d" % params["keep"])
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        report, warnings = build_report(params["reports"], params["hosts"], params["unreachable"], params["context"], now)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    markdown = render_markdown(report)
    report_dir = params["report_dir"]
    if params["name"]:
        if not NAME_RE.fullmatch(params["name"]):
            module.fail_json(msg="name %r is not the name of a fleet report (fleet-report-<yyyymmddThhmmssZ>[-n])" % params["name"])
        json_path, md_path = (os.path.join(report_dir, params["name"] + ext) for ext in (".json", ".md"))
    else:
        json_path, md_path = report_paths(report_dir, now)
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
        stats=stats(report, json_path if not module.check_mode else None),
    )
    for warning in warnings:
        module.warn(warning)
    if not module.check_mode:
        try:
            write_report(report_dir, json_path, md_path, report, markdown)
        except OSError as exc:
            module.fail_json(msg=str(exc), **result)
        result["written"] = True
        result["pruned"], prune_warnings = prune_reports(report_dir, params["keep"], result["name"])
        for warning in prune_warnings:
            module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The priming state as Prometheus metrics: a node_exporter textfile.

``/telemetry/metrics/sglang_prep.prom`` (contract.METRICS_DIR, the directory init gives node_exporter's
textfile collector) is rewritten atomically (a temporary file that does not end in ``.prom``, then a
rename) at init and after every stage that writes a stage JSON, from the priming state (state.py) and
nothing else. Prometheus in the container scrapes node_exporter, so the metrics carry the run's
``run_id`` label; on the host the file is ``<host root>/telemetry/metrics/sglang_prep.prom``, for a
node_exporter of the host to read as well.

Families (base units, HELP and TYPE lines; labels ``stage`` and ``model``, the model's directory name):

  sglang_prep_stage_status{stage,model,status}            1 for the row's status, 0 for every other status
  sglang_prep_stage_duration_seconds{stage,model}         seconds the stage's last record took
  sglang_prep_stage_last_success_timestamp_seconds{...}   when the stage last succeeded (this run's record, else
                                                          when its cache was primed: signature.json)
  sglang_prep_stage_signature_match{stage,model}          1 primed for the current signature, 0 it would run again
  sglang_prep_cache_bytes{cache}, sglang_prep_cache_files{cache}
  sglang_prep_serve_zero_jit{stage,model}                 only for a row with a ``zero_jit`` value (a serve check)
  sglang_prep_info{version,image,gpu,signature_group,model}  always 1: what the host runs, to group by (the
                                                          collection version, the image, the GPU model and the
                                                          hardware/toolchain signature group, "" when not known)

When the role mounts the host's node_exporter textfile directory at contract.TEXTFILE_MOUNT
(``prime_metrics_textfile_dir``), the same text is written there too, atomically, as devuser and with mode
0644 whatever devuser's umask, so the exporter's own user (``node-exp``, ``prometheus``) can read it.

A write that fails is a warning; it never fails a stage or the init.
"""

from __future__ import annotations

import datetime
import os

from .. import __version__, contract
from . import ledger, state as states

STATUSES = states.ROW_STATUSES
SUCCESS = ledger.SUCCESS

# name -> (TYPE, HELP)
FAMILIES = (
    ("sglang_prep_stage_status", "gauge",
     "Status of the stage in the container run's priming state: 1 for its current status, 0 for the others."),
    ("sglang_prep_stage_duration_seconds", "gauge",
     "Seconds the stage's last recorded invocation took (a noop takes the time of its signature check)."),
    ("sglang_prep_stage_last_success_timestamp_seconds", "gauge",
     "Unix time the stage last succeeded: this run's record, else when its cache was primed."),
    ("sglang_prep_stage_signature_match", "gauge",
     "1 when the stage is primed for the current signature (hardware, toolchain, model, settings), "
     "0 when ensure would run it again."),
    ("sglang_prep_cache_bytes", "gauge", "Bytes in the cache directory under /profiles."),
    ("sglang_prep_cache_files", "gauge", "Files in the cache directory under /profiles."),
    ("sglang_prep_serve_zero_jit", "gauge",
     "1 when the serve check measured no JIT compilation at serve time, 0 when it saw one."),
    ("sglang_prep_info", "gauge",
     "Always 1: the sglang.prep version, the image, the GPU and the signature group of the host's priming state."),
)


def escape(value):
    """A label value in the text exposition format: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs):
    return "{" + ",".join('%s="%s"' % (name, escape(value)) for name, value in pairs) + "}"


def _number(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _epoch(text):
    """Unix seconds of a runtime timestamp (2026-11-29T16:07:40.123Z or 2026-11-29T16:07:40Z), else None."""
    if not isinstance(text, str):
        return None
    for pattern in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            moment = datetime.datetime.strptime(text, pattern)
        except ValueError:
            continue
        return round(moment.replace(tzinfo=datetime.timezone.utc).timestamp(), 3)
    return None


def _non_mode_reasons(row):
    return [r for r in row.get("reprime_reasons") or [] if isinstance(r, dict) and r.get("field") != "mode"]


def signature_match(row):
    """1 (primed for the current signature), 0 (ensure would run it again) or None (not known from the row)."""
    status = row.get("status")
    if status in SUCCESS:
        return 1
    if status == "error":
        return 0
    if status == "would_run" or row.get("action") in ("run", "record"):
        # a plan answer (also kept by a stage the job did not reach): a rebuild alone does not mean drift
        return 0 if _non_mode_reasons(row) else 1
    return None


def last_success(row):
    if row.get("status") in SUCCESS:
        moment = _epoch(row.get("finished_at"))
        if moment is not None:
            return moment
    return _epoch(row.get("primed_at"))


def model_label(row):
    model = row.get("model")
    return contract.model_slug(model) if model else ""


def info_labels(model_state, image=None):
    """The labels of sglang_prep_info: what the host runs ("" where not known)."""
    gpu = model_state.get("gpu") or {}
    models = [model_label(row) for row in (model_state.get("stages") or {}).values() if isinstance(row, dict)]
    return (("version", __version__), ("image", image or ""), ("gpu", gpu.get("device_name") or ""),
            ("signature_group", model_state.get("signature_group") or ""),
            ("model", next((m for m in models if m), "")))


def _stage_samples(out, stage, row):
    """One stage row's samples into ``out``."""
    base = (("stage", stage), ("model", model_label(row)))
    for status in STATUSES:
        out["sglang_prep_stage_status"].append((base + (("status", status),), 1 if row.get("status") == status else 0))
    if isinstance(row.get("duration_s"), (int, float)) and not isinstance(row.get("duration_s"), bool):
        out["sglang_prep_stage_duration_seconds"].append((base, row["duration_s"]))
    success = last_success(row)
    if success is not None:
        out["sglang_prep_stage_last_success_timestamp_seconds"].append((base, success))
    match = signature_match(row)
    if match is not None:
        out["sglang_prep_stage_signature_match"].append((base, match))
    if row.get("zero_jit") is not None:
        out["sglang_prep_serve_zero_jit"].append((base, 1 if row["zero_jit"] else 0))


def _serve_samples(out, served, rows):
    """The live serving server's own zero-JIT proof (serve.py), labelled stage="serve"."""
    if (served or {}).get("zero_jit") is None:
        return
    model = model_label(served) or next((model_label(r) for r in rows.values() if isinstance(r, dict) and model_label(r)), "")
    out["sglang_prep_serve_zero_jit"].append(((("stage", "serve"), ("model", model)), 1 if served["zero_jit"] else 0))


def samples(model_state, image=None):
    """{family: [(labels, value)]} of a priming state, in the state's stage order."""
    out = dict((name, []) for name, _type, _help in FAMILIES)
    out["sglang_prep_info"].append((info_labels(model_state, image), 1))
    rows = model_state.get("stages") or {}
    for stage in model_state.get("order") or list(rows):
        if isinstance(rows.get(stage), dict):
            _stage_samples(out, stage, rows[stage])
    _serve_samples(out, model_state.get("serve"), rows)
    caches = (model_state.get("caches") or {}).get("caches") or {}
    for name in sorted(caches):
        entry = caches[name] or {}
        out["sglang_prep_cache_bytes"].append(((("cache", name),), int(entry.get("size") or 0)))
        out["sglang_prep_cache_files"].append(((("cache", name),), int(entry.get("count") or 0)))
    return out


def render(model_state, image=None):
    """The textfile of a priming state: HELP and TYPE once per family, then its samples (families without any left out)."""
    collected = samples(model_state, image)
    lines = []
    for name, kind, text in FAMILIES:
        if not collected[name]:
            continue
        lines.append("# HELP %s %s" % (name, text.replace("\\", "\\\\").replace("\n", "\\n")))
        lines.append("# TYPE %s %s" % (name, kind))
        for labels, value in collected[name]:
            lines.append("%s%s %s" % (name, _labels(labels), _number(value)))
    return "\n".join(lines) + "\n"


def path(layout=None, telemetry_root=contract.TELEMETRY_ROOT):
    """Filesystem path of the textfile (through ``layout`` when the roots are not the contract's)."""
    target = contract.metrics_path(telemetry_root)
    return layout.fs(target) if layout is not None else target


def write(text, target, mode=None):
    """Write the textfile atomically: node_exporter reads only ``*.prom``, so the temporary file is never read.

    With ``mode`` the new file gets exactly that mode (it is this process's own new file, set before the rename)."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = "%s.%d.tmp" % (target, os.getpid())
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def publish(view, model_state=None):
    """Rewrite the textfile from the run's priming state; returns a warning (text) or None. Never raises.

    The state is what the run recorded for every stage (state.report), with the rows of ``model_state``
    (a prime job's state) in place of the recorded ones for the stages it set out to run (``to_run``).
    """
    try:
        recorded = states.report(view=view)
        if model_state:
            # the stages the job set out to run: what it did, or (not reached) why it would have run them
            rows = dict(recorded["stages"])
            touched = [s for s in model_state.get("to_run") or [] if s in (model_state.get("stages") or {})]
            for stage in touched:
                rows[stage] = model_state["stages"][stage]
            order = list(recorded["order"]) + [s for s in touched if s not in recorded["order"]]
            recorded = dict(recorded, stages=rows, order=order)
        text = render(recorded, image=view.manifest.get("image"))
        write(text, path(view.layout))
    except Exception as exc:  # metrics never fail a stage
        return "the metrics textfile %s could not be written: %s" % (contract.metrics_path(), exc)
    return publish_textfile(text)


def publish_textfile(text, mount=contract.TEXTFILE_MOUNT):
    """The same text in the host's node_exporter textfile directory, when the role mounted it; a warning or None."""
    if not os.path.isdir(mount):
        return None
    try:
        write(text, contract.textfile_path(mount), mode=0o644)
        return None
    except Exception as exc:  # metrics never fail a stage
        return ("the metrics textfile %s (the host's node_exporter textfile directory, prime_metrics_textfile_dir) "
                "could not be written: %s" % (contract.textfile_path(mount), exc))

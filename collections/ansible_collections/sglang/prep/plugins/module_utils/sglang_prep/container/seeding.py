# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seeding a host from an identical one: bundle.py applied to the current container run.

``create`` (the builder) checks every priming stage as ensure would (one toolchain probe): a stage
that is primed (noop) goes into the bundle, a skipped one stays out, and one that would run refuses
the bundle, since its caches are not what this host would serve. ``install`` (a receiver) checks the
same stages on this host: their signatures must equal the bundle's field for field (else
bundle_mismatch, and the host primes itself), then the bundle is installed atomically and each stage
is recorded in this run as ``installed``, with the bundle's digest and source host, and with its
signature written as if primed here: the next ensure is a noop, and the serve check proves the caches.
"""

from __future__ import annotations

import os
import time

from .. import contract, registry
from ..errors import PrepError
from . import bundle, engine, ledger, metrics, plan, state


def bundles_dir(layout):
    return os.path.join(layout.profiles_root, bundle.BUNDLES_DIR)


def create(model, options=None, stages=None, source_host=None, out_dir=None, stream=None, env=None):
    """Pack this run's primed stages into a bundle; returns {status, changed, bundle manifest...}."""
    stages = list(stages or registry.priming_stages())
    checked = plan.check(stages, model, options, stream=stream, env=env)
    layout = checked.view.layout
    include, unprimed = [], []
    for stage in stages:
        row = checked.rows[stage]
        if row.get("status") == "noop":
            include.append(stage)
        elif row.get("status") != "skipped":
            unprimed.append("%s (%s)" % (stage, row.get("message") or row.get("status")))
    if unprimed:
        raise PrepError("bundle_unavailable", "this host cannot be a builder yet: %s; prime it first"
                        % "; ".join(unprimed), stages=[u.split(" ")[0] for u in unprimed])
    if not include:
        raise PrepError("bundle_unavailable", "no stage of %s is primed here (all skipped): there is nothing to bundle"
                        % ", ".join(stages))
    out_dir = out_dir or bundles_dir(layout)
    started = time.monotonic()
    made = bundle.pack(layout.profiles_root, model, include, out_dir, source_host=source_host or checked.view.manifest.get("hostname"),
                       run_id=checked.view.run_id)
    made.pop("files", None)  # a format-2 manifest listed every file; format 3 has no list
    made["stage_signatures"] = made.pop("stages")
    made["stages"] = include
    made.update(status="ok", changed=True, pack_s=round(time.monotonic() - started, 3),
                skipped_stages=[s for s in stages if s not in include],
                host_path=_host_path(checked.view, layout, made["path"]))
    return made


def _host_path(view, layout, fs_path):
    """The host path of a file under the run's profiles root (the path itself when the manifest has no host roots)."""
    return view.host(layout.contract_path(fs_path)) or fs_path


def install(model, path, options=None, expected_sha256=None, stream=None, env=None):
    """Install the bundle at ``path`` (a container path) as this run's stages; returns the outcome."""
    options = dict(options or {})
    # a corrupted or truncated transfer is refused by its digest (the archive is hashed while bundle.install unpacks it)
    manifest = bundle.read_manifest(path, expected_sha256=expected_sha256)
    stages = [s for s in contract.STAGE_ORDER if s in manifest["stages"]]
    checked = plan.check(stages, model, options, stream=stream, env=env)
    view = checked.view
    current = dict((stage, checked.rows[stage].get("signature")) for stage in stages)
    reasons = bundle.compare(manifest, current)
    if reasons:
        raise PrepError("bundle_mismatch", "this host's signature differs from bundle %s (group %s, built on %s): %s; "
                        "nothing was installed, so this host primes itself"
                        % (os.path.basename(path), manifest["group_key"], manifest["source_host"], bundle.describe(reasons)),
                        reasons=reasons)
    if all(checked.rows[stage].get("status") == "noop" for stage in stages):
        return {"status": "noop", "changed": False, "stages": stages, "group_key": manifest["group_key"],
                "message": "%s already primed here with the bundle's signatures; nothing installed" % ", ".join(stages)}
    started_at = ledger.iso(ledger.utc_now())
    say = _sayer(stream)
    summary = bundle.install(path, view.layout.profiles_root, model, current, run_id=view.run_id, expected_sha256=expected_sha256,
                             headroom_mb=options.get("disk_headroom_mb") or engine.DEFAULTS["disk_headroom_mb"],
                             lock_timeout=options.get("lock_timeout") or engine.DEFAULTS["lock_timeout"], say=say)
    records = {}
    for stage in stages:
        row = checked.rows[stage]
        result = engine.new_result(stage, model, options)
        result.update(
            run_id=view.run_id, started_at=started_at, finished_at=ledger.iso(ledger.utc_now()),
            duration_s=summary["install_s"], ran=True, status="installed", status_code=0,
            signature=current[stage], signature_group=row.get("signature_group"),
            previous_signature=row.get("previous_signature"), reprime_reasons=row.get("reprime_reasons") or [],
            installed_from={"source_host": summary["source_host"], "source_run_id": summary["source_run_id"],
                            "bundle_digest": summary["digest"], "group_key": summary["group_key"]},
            message="installed from bundle %s built on %s (group %s): %d files, %d bytes in %.1fs, nothing compiled"
                    % (summary["digest"][:12], summary["source_host"], summary["group_key"], summary["file_count"],
                       summary["total_bytes"], summary["install_s"]))
        result["stage_json"] = ledger.write_stage(view.layout, view.run_id, stage, result)
        result["stage_json_host"] = view.host(result["stage_json"])
        records[stage] = {"status": "installed", "stage_json": result["stage_json"], "stage_json_host": result["stage_json_host"]}
    ledger.aggregate(view.layout, view.run_id)
    warnings = []
    try:
        warning = metrics.publish(state.RunView(loaded=(view.pointer, view.manifest)))
        if warning:
            warnings.append(warning)
    except Exception as exc:  # metrics never fail an install
        warnings.append("the metrics textfile could not be written: %s" % exc)
    summary.update(status="installed", changed=True, stages=stages, records=records, warnings=warnings,
                   message="installed %s from bundle %s built on %s" % (", ".join(stages), summary["digest"][:12], summary["source_host"]))
    return summary


def _sayer(stream):
    def say(message):
        if stream is not None:
            try:
                stream.write("sglang_prep bundle: %s\n" % message)
                stream.flush()
            except (OSError, ValueError):
                pass
    return say

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stage signatures: everything that changes a stage's output, recorded next to the output.

A stage is primed when its recorded signature (profiles/<cache>/<model_slug>/signature.json)
equals the current one. When it differs, the differing fields are the reasons to re-prime.
"""

from __future__ import annotations

import hashlib
import json
import os

from .. import contract, jsonio, registry
from ..errors import PrepError

# The hardware/toolchain tuple (registry.GROUP_FIELDS). Hosts sharing these values share a signature group.
GROUP_FIELDS = registry.GROUP_FIELDS


def stage_spec(stage):
    """The registry row of a stage; PrepError(bad_input) for a name the registry does not know."""
    try:
        return registry.get(stage)
    except registry.UnknownStage as exc:
        raise PrepError("bad_input", "%s (registry.py has no row for it, so it has no signature)" % exc.message,
                        stage=stage)


def probed_fields(stage):
    return GROUP_FIELDS + stage_spec(stage).probed


def digest(fields):
    """Short, stable hash of a signature's fields: how a dependent stage records the signature it was built on."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()[:16] if fields else None


def model_config_digest(model_path):
    """sha256 of the model's config.json (a new model revision re-primes), or None."""
    try:
        with open(os.path.join(model_path, "config.json"), "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def build(stage, probe, inputs):
    """(fields, warnings): the current signature of a stage from probes plus stage inputs."""
    probed = probed_fields(stage)
    fields = {}
    warnings = []
    for field in probed:
        fields[field] = probe.get(field)
        warning = probe.warning_for(field)
        if warning:
            warnings.append(warning)
    fields.update(inputs)
    return fields, warnings


def group(fields):
    """Short hash of the hardware/toolchain fields only."""
    subset = dict((f, fields.get(f)) for f in GROUP_FIELDS)
    return hashlib.sha256(json.dumps(subset, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def compare(old_fields, new_fields):
    """[{field, old, new}] for every field whose value differs (fields missing on one side count)."""
    reasons = []
    for field in sorted(set(old_fields) | set(new_fields)):
        old = old_fields.get(field)
        new = new_fields.get(field)
        if old != new or (field in old_fields) != (field in new_fields):
            reasons.append({"field": field, "old": old, "new": new})
    return reasons


def read_record(path):
    """(whole signature record or None, problem or None) of a recorded signature file."""
    try:
        data = jsonio.read_json(path)
    except FileNotFoundError:
        return None, "no signature at %s: the stage has not completed on this cache" % path
    except (OSError, ValueError) as exc:
        return None, "signature %s is unreadable (%s)" % (path, exc)
    if not isinstance(data, dict) or not isinstance(data.get("fields"), dict):
        return None, "signature %s has no fields" % path
    return data, None


def read(path):
    """(fields or None, problem or None) of a recorded signature file."""
    data, problem = read_record(path)
    return (data["fields"] if data else None), problem


def record(stage, fields, run_id, finished_at, duration_s=None):
    """``duration_s``: how long the run that primed the cache took (the progress file's ETA next time)."""
    return {"schema_version": contract.SCHEMA_VERSION, "stage": stage, "run_id": run_id,
            "written_at": finished_at, "duration_s": duration_s, "signature_group": group(fields), "fields": fields}


def write(path, stage, fields, run_id, finished_at, duration_s=None):
    jsonio.write_json_atomic(path, record(stage, fields, run_id, finished_at, duration_s))

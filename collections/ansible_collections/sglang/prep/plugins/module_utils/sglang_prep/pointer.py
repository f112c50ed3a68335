# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pointer file telemetry/container_run_meta.env: two KEY=VALUE lines naming the manifest.

Written only by the container (as devuser, .tmp then rename, after the manifest is complete);
read by the runtime and by the host module sglang_pointer_wait.
"""

from __future__ import annotations

from . import contract, jsonio
from .errors import PrepError


def format_pointer(container_manifest, host_manifest):
    return "%s=%s\n%s=%s\n" % (contract.POINTER_KEY, container_manifest,
                               contract.POINTER_HOST_KEY, host_manifest or "")


def write_pointer(container_manifest, host_manifest, telemetry_root=contract.TELEMETRY_ROOT):
    path = contract.pointer_path(telemetry_root)
    jsonio.write_text_atomic(path, format_pointer(container_manifest, host_manifest))
    return path


def parse_pointer(text, path="pointer"):
    """Return {'container': ..., 'host': ...}; raise PrepError(bad_pointer) naming what is wrong."""
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise PrepError("bad_pointer", "%s line %d is not KEY=VALUE: %r" % (path, number, line),
                            path=path)
        values[key.strip()] = value.strip()
    container = values.get(contract.POINTER_KEY)
    if not container:
        raise PrepError("bad_pointer", "%s has no %s line; it was not written by the container init (re-run the "
                        "sglang.prep.prime role: it restarts a running container whose pointer is not usable)"
                        % (path, contract.POINTER_KEY), path=path)
    unknown = sorted(set(values) - {contract.POINTER_KEY, contract.POINTER_HOST_KEY})
    if unknown:
        raise PrepError("bad_pointer", "%s has unexpected keys %s" % (path, ", ".join(unknown)), path=path)
    return {"container": container, "host": values.get(contract.POINTER_HOST_KEY) or None}


def read_pointer(path=None):
    path = path or contract.pointer_path()
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise PrepError("bad_pointer", "pointer %s does not exist: the container init has not published "
                        "a run. Is the container running? See its session log; re-running the sglang.prep.prime "
                        "role (re)starts it" % path, path=path)
    except OSError as exc:
        raise PrepError("bad_pointer", "cannot read pointer %s: %s" % (path, exc), path=path)
    return parse_pointer(text, path)

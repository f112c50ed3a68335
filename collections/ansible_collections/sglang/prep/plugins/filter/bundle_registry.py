# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the registry transfer (roles/prime/tasks/registry*.yml): what the registry gave a host, for its report."""

from __future__ import annotations


def _text(result, key):
    value = (result or {}).get(key)
    return value if value not in ("", None) else None


def registry_outcome(pull, install, registry):
    pull = pull or {}
    install = install or {}
    installed = list(install.get("stages") or []) if install.get("status") == "installed" else []
    pull_error = _text(pull, "error_type")
    install_error = _text(install, "error_type")
    if installed:
        outcome = "installed"
    elif pull_error:
        outcome = "unavailable"
    elif install_error:
        outcome = "refused"
    else:
        outcome = "absent"
    return {
        "source": "registry",
        "registry": registry,
        "tag": _text(pull, "tag"),
        "digest": _text(pull, "digest"),
        "ref": _text(pull, "ref"),
        "signer": _text(pull, "signer"),
        "source_host": _text(pull, "source_host"),
        "builder_compile_s": pull.get("builder_compile_s"),
        "bytes_moved": pull.get("archive_bytes"),
        "pull_s": pull.get("pull_s"),
        "install_s": install.get("install_s"),
        "installed": installed,
        "outcome": outcome,
        "error_type": pull_error or install_error,
        "message": _text(pull, "msg") if pull_error else (_text(install, "msg") if install_error else None),
        "published": None,
    }


def registry_published(publish, packed):
    """What this host published (prime_report.registry.published): digest, tag, signed, or the classified error."""
    publish = publish or {}
    packed = packed or {}
    error = _text(packed, "error_type") or _text(publish, "error_type")
    return {
        "digest": _text(publish, "digest"),
        "tag": _text(publish, "tag"),
        "signed": bool(publish.get("signed")),
        "bundle_sha256": _text(publish, "bundle_sha256") or _text(packed, "digest"),
        "push_s": publish.get("push_s"),
        "error_type": error,
        "message": (_text(packed, "msg") or _text(publish, "msg")) if error else None,
    }


class FilterModule(object):
    def filters(self):
        return {"registry_outcome": registry_outcome, "registry_published": registry_published}

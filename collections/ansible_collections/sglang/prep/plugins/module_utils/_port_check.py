# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: this module_utils file is internal to the sglang.prep collection. Do not use it from
# other collections; it may change without notice.
"""The body of the module sglang_port_check (its file holds the argument spec and the documentation)."""

from __future__ import annotations

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import procs


def bind_address(listen):
    """The address a bind test uses for ``listen`` (every address for an empty or wildcard one)."""
    if listen in ("", "0.0.0.0", "*"):
        return "0.0.0.0"
    if listen in ("::", "[::]"):
        return "::"
    return listen.strip("[]")


def check(ports, listen):
    """(busy, free): the entries of ``ports`` whose port cannot be bound on ``listen`` now, and the others."""
    busy, free = [], []
    address = bind_address(listen)
    for entry in ports:
        item = {"service": entry["service"], "port": int(entry["port"]), "variable": entry["variable"]}
        if procs.port_is_free(item["port"], address):
            free.append(item)
        else:
            item["holders"] = procs.describe_port_holders(item["port"])
            busy.append(item)
    return busy, free


def run(module):
    """The module's work, on its checked arguments."""
    try:
        busy, free = check(module.params["ports"], module.params["listen"])
    except OSError as exc:
        module.fail_json(msg="cannot test the ports on %s: %s" % (module.params["listen"], exc),
                         error_type="bad_input")
    module.exit_json(changed=False, busy=busy, free=free)

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: offenders
short_description: The host paths the host user does not own or cannot write, each with its fix
extends_documentation_fragment:
  - sglang.prep._attributes.plugin
version_added: 1.2.0
description:
  - One line per path of O(_input) that the host user (whose UID the container user gets) does not own, or owns but
    cannot write (a directory must also be searchable), with the command that fixes it.
  - A symbolic link is followed. What counts is its target, named with its owner. A link among O(owned) (the host
    directories themselves) that leads nowhere is named too, with its fix; any other dangling link is left alone.
  - Role C(sglang.prep.prime) fails with every line before it creates anything; nothing is chowned or chmodded.
positional: _input, user, uid, owned
options:
  _input:
    description:
      - The paths looked at, as M(sglang.prep.sglang_host_info) lists them (C(entries)), each with C(path), C(uid),
        C(pw_name), C(mode), C(isdir), C(wusr), C(xusr) and for a link C(islnk), C(lnk_source), C(lnk_target) and C(target)
        (the same keys for the link's target, null when it does not exist).
    type: list
    elements: dict
    required: true
  user:
    description: The host user's name.
    type: str
    required: true
  uid:
    description: The host user's UID.
    type: int
    required: true
  owned:
    description: The host directories (and the runtime's), whose dangling links are named.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Name the paths the host user cannot write
  ansible.builtin.debug:
    msg: "{{ entries | sglang.prep.offenders('ubuntu', 1000, ['/home/ubuntu/sglang-observability/profiles']) }}"
"""

RETURN = r"""
_value:
  description: One line per offending path, in the order of O(_input); empty when all are fine.
  type: list
  elements: str
  sample: ["/srv/p/profiles: owner root (uid 0), expected ubuntu (uid 1000); fix: sudo chown -R ubuntu: /srv/p/profiles"]
"""

from ansible_collections.sglang.prep.plugins.filter.port_checks import as_int


def _offence(entry, user, uid, owned):
    link = bool(entry.get("islnk"))
    seen = entry.get("target") if link else entry
    shown = entry["path"] + (" (a symlink to %s)" % entry.get("lnk_source") if link else "")
    fixed = entry.get("lnk_source") if link else entry["path"]
    if link and seen is None:
        if entry["path"] not in owned:
            return None
        return ("%s: a symlink to %s, which does not exist; fix: create %s as %s, or remove the link"
                % (entry["path"], entry.get("lnk_target"), entry.get("lnk_source"), user))
    if as_int(seen.get("uid"), -1) != uid:
        return ("%s: owner %s (uid %s), expected %s (uid %d); fix: sudo chown -R %s: %s"
                % (shown, seen.get("pw_name") or "?", seen.get("uid"), user, uid, user, fixed))
    if not seen.get("wusr") or (seen.get("isdir") and not seen.get("xusr")):
        return ("%s: owned by %s but not writable (mode %s); fix: chmod u+rw%s %s"
                % (shown, user, seen.get("mode"), "x" if seen.get("isdir") else "", fixed))
    return None


def offenders(entries, user, uid, owned=None):
    """One line per entry the host user ``user`` (``uid``) does not own or cannot write, with its fix."""
    owned = list(owned or [])
    lines = (_offence(entry, user, as_int(uid, -1), owned) for entry in entries or [])
    return [line for line in lines if line]


class FilterModule(object):
    def filters(self):
        return {"offenders": offenders}

# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: internal to the sglang.prep collection; may change without notice.

from __future__ import annotations


class ModuleDocFragment(object):

    # What every module of the collection shares (one home for its wording): the maintainers, the platform and what
    # the attributes mean (as community.general._attributes does, so a module extends no other attribute fragment;
    # one that names action, async or bypass_host_loop adds ansible.builtin.action_common_attributes.flow). Every
    # module extends sglang.prep._attributes, then the one of these that fits it, if any:
    #   sglang.prep._attributes.info        an information module (the *_info modules, the cache snapshot, the port check)
    #   sglang.prep._attributes.check_full  a module that runs in check mode all but its writes (its description says
    #                                       what it does in check mode); no diff, unless it states its own diff_mode
    #   sglang.prep._attributes.runtime     a module that runs the runtime's stages in the container as an async job,
    #                                       check mode by the runtime's check (sglang_stage, sglang_prime)
    # A module that extends none of them states its own check_mode and diff_mode.
    DOCUMENTATION = r"""
options: {}
author:
  - Seed 0be3ddc0 maintainers (@maintainers)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target, if not supported the
      action will be skipped.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
"""

    # What a filter or lookup plugin of the collection shares with the modules: its maintainers (a plugin has no
    # attributes). Every one extends sglang.prep._attributes.plugin.
    PLUGIN = r"""
options: {}
author:
  - Seed 0be3ddc0 maintainers (@maintainers)
"""

    INFO = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: An information module; it never changes anything and always returns C(changed=false), so it runs
      unchanged in check mode.
  diff_mode:
    support: none
"""

    CHECK_FULL = r"""
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

    RUNTIME = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: Runs the runtime's C(check) mode, which writes nothing and launches no server.
  diff_mode:
    support: full
    details: Shows each stage's recorded signature (before) against the current one (after).
  async:
    support: full
  action:
    support: none
  bypass_host_loop:
    support: none
notes:
  - A task that exceeds its C(async) limit is abandoned by Ansible, but its stages keep running in the container until
    the runtime's own timeouts end them. Keep C(async) above the stages' O(ready_timeout).
"""

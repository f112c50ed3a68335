# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: internal to the sglang.prep collection; may change without notice.

from __future__ import annotations

# What every module of the collection shares: its maintainers, and that it runs on POSIX hosts. Each variable below
# starts with it and goes on with the attributes of one kind of module.
_EVERY_MODULE = r"""
options: {}
author:
  - Seed 0be3ddc0 maintainers (@maintainers)
attributes:
  platform:
    platforms: posix
"""


class ModuleDocFragment(object):

    # The attributes of the collection's modules (one home for their wording) and their maintainers; every module
    # extends one of them, after ansible.builtin.action_common_attributes (and its .flow where a module names action,
    # async or bypass_host_loop):
    #   sglang.prep._attributes          a module that states its own check mode (it shows no diff unless it says so)
    #   sglang.prep._attributes.info     an information module (the *_info modules, the cache snapshot)
    #   sglang.prep._attributes.runtime  a module that runs the runtime's stages in the container as an async job,
    #                                    check mode by the runtime's check (sglang_stage, sglang_prime)
    DOCUMENTATION = _EVERY_MODULE + r"""
  diff_mode:
    support: none
"""

    INFO = _EVERY_MODULE + r"""
  check_mode:
    support: full
    details: An information module; it never changes anything and always returns C(changed=false), so it runs
      unchanged in check mode.
  diff_mode:
    support: none
"""

    RUNTIME = _EVERY_MODULE + r"""
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

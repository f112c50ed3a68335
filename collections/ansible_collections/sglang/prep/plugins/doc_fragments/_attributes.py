# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: internal to the sglang.prep collection; may change without notice.

from __future__ import annotations


class ModuleDocFragment(object):

    # The attributes the collection's modules share. Use with ansible.builtin.action_common_attributes:
    #   sglang.prep._attributes.info     a module that only reads (the *_info modules, the waits)
    #   sglang.prep._attributes.runtime  a module that runs the runtime in the container, check mode by its check
    DOCUMENTATION = r"""
options: {}
attributes:
  platform:
    platforms: posix
"""

    INFO = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: Reads only, so it runs unchanged in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
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
  platform:
    platforms: posix
"""

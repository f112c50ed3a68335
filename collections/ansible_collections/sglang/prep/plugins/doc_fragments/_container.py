# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: internal to the sglang.prep collection; may change without notice.

from __future__ import annotations


class ModuleDocFragment(object):

    # Options of modules that talk to the prime container through the docker CLI.
    DOCUMENTATION = r"""
options:
  docker_cli:
    description:
      - The docker CLI to run, a name looked up on E(PATH) or an absolute path.
      - Commands are always run as argument lists, never through a shell.
    type: str
    default: docker
requirements:
  - The docker CLI on the managed host, usable by the connecting user (member of the C(docker) group, or root).
"""

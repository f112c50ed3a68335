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

    # The run pointer on the host, which sglang_cache_inspect and sglang_prime_info read (sglang_pointer_wait waits for
    # it, as its option path).
    POINTER = r"""
options:
  pointer:
    description:
      - Host path of the run pointer, C(<host root>/telemetry/container_run_meta.env).
      - A missing or malformed pointer fails with C(error_type=bad_pointer).
    type: path
"""

    # The options of the container look (sglang_prime, sglang_prime_info): whether the container runs with exactly the
    # settings the role wants, on the image it names now. Each module documents the look's result (container_look)
    # itself: ansible-test's validate-modules checks an RV() reference against the module's own RETURN only.
    LOOK = r"""
options:
  container_spec:
    description:
      - The digest of the settings the container should run with (the prime role puts it in the container's label
        C(sglang.prep.spec)); requires O(image). RV(container_look) says whether O(container) runs with exactly these
        settings on the image O(image) names now.
    type: str
  image:
    description:
      - The image the container should run (a name, resolved to its ID on the host). Used with O(container_spec).
    type: str
"""

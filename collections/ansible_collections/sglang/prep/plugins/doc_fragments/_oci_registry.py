# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# PRIVATE: internal to the sglang.prep collection; may change without notice.

from __future__ import annotations


class ModuleDocFragment(object):

    # Options of the modules that move cache bundles through an OCI registry with the host's Docker engine.
    DOCUMENTATION = r"""
options:
  registry:
    description:
      - The repository the bundles live in, C(host[:port]/path) (for example C(registry.example.org/sglang-prep-caches)),
        no scheme, no tag. The host's Docker engine talks to it, with its own mirrors and TLS trust; TLS is verified
        unless the engine's own configuration lists the registry as insecure.
    type: str
    required: true
  registry_username:
    description:
      - User name for the registry. With O(registry_password), the module logs in with C(docker login --password-stdin)
        into a private, temporary Docker config directory, removed afterwards; the password never reaches a command line.
      - Without it, the host's own Docker login (or O(registry_auth_dir)) is used.
    type: str
  registry_password:
    description: Password or token for O(registry_username) (keep it in Ansible Vault). Never logged or returned.
    type: str
  registry_auth_dir:
    description:
      - A Docker config directory on the host (holding C(config.json), an auth file) used for the registry, instead of
        the host user's own C(~/.docker).
    type: path
  docker_cli:
    description: The docker CLI to run, a name looked up on E(PATH) or an absolute path (always run as an argument list).
    type: str
    default: docker
  timeout:
    description: Seconds one docker command may take before the registry counts as unavailable.
    type: int
    default: 600
requirements:
  - The docker CLI on the managed host, usable by the connecting user (member of the C(docker) group, or root).
"""

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_cache_bundle
short_description: Pack a primed host's kernel caches into a bundle, or install one on an identical host
version_added: 1.0.0
description:
  - Hosts whose stages have equal signatures (same GPU, driver, CUDA, torch, Triton, SGLang, model, TP and
    priming settings) produce interchangeable caches. One host (the builder) primes and packs its caches
    into a bundle; the others (receivers) install the bundle instead of compiling and tuning for themselves.
  - With O(state=packed), every priming stage is checked as ensure would check it; the primed ones are packed
    into C(<host root>/profiles/.bundles/<sha256>.tar.gz), named by the sha256 of its bytes (bundle format 3), with a
    manifest (the group key, each stage's signature, the caches, the number of entries and files and their bytes, the
    source host, the creation time and the collection version; each file carries its own sha256 in its PAX header, so
    memory does not grow with the files) and a sidecar C(<sha256>.json). A stage that would still run
    refuses the bundle (V(bundle_unavailable)).
  - With O(state=installed), the same stages are checked on this host. A signature that differs from the
    bundle's refuses it with V(bundle_mismatch) and each differing field (the host then primes itself). Otherwise
    the manifest is checked as a schema (V(bundle_corrupt) or V(bundle_unsafe) naming the field), and, under one lock
    for the whole install, the disk headroom is checked, the bundle is unpacked into C(profiles/.bundle-staging/), every
    member is verified (an absolute path, C(..), a link whose target has C(..) or passes through another link or that
    the file system resolves out of its cache, a device file, a path twice, a file whose bytes differ from its sha256 or
    that has none, totals that differ from the manifest, a truncated archive, a bundle of an older format each refuse
    it with V(bundle_unsafe) or V(bundle_corrupt)), and the bundle is merged into this host's caches. An entry
    this host lacks is added, an equal one kept, one with other bytes refuses the bundle (V(bundle_conflict)), the
    model's own subtrees are swapped in whole, and nothing of another model is removed. Each stage is recorded in the
    current run with status C(installed) (source host, bundle digest) and its signature as if primed here, so the next
    ensure is a no-op.
  - An install that fails is rolled back at once. A killed one is rolled back by the next container start, stage run or
    install while its stages are still marked as being installed by it (the model keeps its old caches), and dropped when
    a later prime superseded it; the model never holds a mix.
  - With O(state=packed), only the model's caches travel (never another model's subtree, never a signature file), and
    signature fields that can hold a secret (C(extra_server_args), C(server_env)) travel as digests only.
  - The work is done by the runtime in the container (C(python3 -m sglang_prep bundle create|install)) through
    C(docker exec) as O(user), which has the UID and GID of the host user, so every file written belongs to the host user.
    Moving the bundle between hosts is the playbook's job (docs/fleet.md).
  - Give it the same stage settings as M(sglang.prep.sglang_prime) (the role's module_defaults do), since the signatures
    compared depend on them.
extends_documentation_fragment:
  - sglang.prep._attributes
  - sglang.prep._container
  - sglang.prep._stage_options
attributes:
  check_mode:
    support: partial
    details: Runs nothing in the container and reports what it would do (C(changed=true)).
  diff_mode:
    support: none
options:
  state:
    description:
      - V(packed) packs this host's primed caches (the builder); V(installed) installs O(bundle) (a receiver).
    type: str
    choices: [packed, installed]
    required: true
  bundle:
    description:
      - With O(state=installed), the bundle's path inside the container, normally
        C(/profiles/.bundles/<sha256>.tar.gz) (the host path C(<host root>/profiles/.bundles/<sha256>.tar.gz)).
    type: str
  sha256:
    description:
      - With O(state=installed), the sha256 the bundle must have (the builder's RV(digest)). A bundle that differs
        (corrupted or truncated in transfer) is refused with V(bundle_corrupt) before anything else.
    type: str
  source_host:
    description: With O(state=packed), the builder's name recorded in the manifest (the inventory name).
    type: str
  stages:
    description: With O(state=packed), the priming stages to bundle (default all of them; skipped ones stay out).
    type: list
    elements: str
  port:
    description: The stage servers' port (part of the signatures checked; nothing is started).
    type: int
    default: 30000
  lock_timeout:
    description: Seconds to wait for the stage locks (a stage running on this host) before C(error_type=lock_timeout).
    type: float
  ready_timeout:
    description: Accepted for symmetry with M(sglang.prep.sglang_prime); nothing is started.
    type: float
  disk_headroom_mb:
    description:
      - Free space (MiB) that must remain under C(profiles/) after the bundle is unpacked, else
        C(error_type=insufficient_disk).
    type: int
  serve_max_prompt_tokens:
    description: The serve check's longest prompt (accepted for symmetry; the serve check is never bundled).
    type: int
seealso:
  - module: sglang.prep.sglang_prime
    description: Primes the builder, with the stage settings this module must be given too.
  - module: sglang.prep.sglang_cache_inspect
    description: The snapshot of the caches a bundle carries.
"""

EXAMPLES = r"""
- name: Pack the builder's caches
  sglang.prep.sglang_cache_bundle:
    container: sglang-prep
    state: packed
    model: /models/Qwen3-30B-A3B
    source_host: "{{ inventory_hostname }}"
  register: packed

- name: Install the builder's bundle on a receiver (after copying it to the same path there)
  sglang.prep.sglang_cache_bundle:
    container: sglang-prep
    state: installed
    model: /models/Qwen3-30B-A3B
    bundle: "/profiles/.bundles/{{ packed.digest }}.tar.gz"
    sha256: "{{ packed.digest }}"
"""

RETURN = r"""
digest:
  description: The sha256 of the bundle (its name).
  returned: success
  type: str
  sample: 9f2c0e3b8d0c4c1e0d6a4f0e5b3d2c1a9f2c0e3b8d0c4c1e0d6a4f0e5b3d2c1a
group_key:
  description: The key of the signature group (a hash of every bundled stage's signature).
  returned: success
  type: str
  sample: 4b1f0c2d3e4f5a6b
stages:
  description: The stages in the bundle (packed) or installed (installed).
  returned: success
  type: list
  elements: str
  sample: [deep_gemm, moe_tune, flashinfer, inductor]
host_path:
  description: With O(state=packed), the bundle's host path (what the playbook copies to the receivers).
  returned: when O(state=packed)
  type: str
  sample: /home/ubuntu/sglang-observability/profiles/.bundles/9f2c...2c1a.tar.gz
path:
  description: With O(state=packed), the bundle's path inside the container.
  returned: when O(state=packed)
  type: str
  sample: /profiles/.bundles/9f2c...2c1a.tar.gz
archive_bytes:
  description: Size of the bundle file.
  returned: success
  type: int
  sample: 273678336
total_bytes:
  description: Bytes of the cache files in the bundle (unpacked).
  returned: success
  type: int
  sample: 273678336
file_count:
  description: Cache files in the bundle.
  returned: success
  type: int
  sample: 9074
source_host:
  description: The builder.
  returned: success
  type: str
  sample: gpu-h100-01
status:
  description: V(ok) (packed), V(installed), or V(noop) (the stages were already primed here with the bundle's signatures).
  returned: success
  type: str
  sample: installed
install_s:
  description: With O(state=installed), seconds the install took (verify, unpack, rename, record).
  returned: when a bundle was installed
  type: float
  sample: 8.4
added:
  description: With O(state=installed), entries this host lacked and the bundle added.
  returned: when a bundle was installed
  type: int
  sample: 9012
kept:
  description: With O(state=installed), entries this host already had with the same bytes (left as they were).
  returned: when a bundle was installed
  type: int
  sample: 62
swapped:
  description: With O(state=installed), the model's own subtrees (C(<cache>/<model_key>)) swapped in whole.
  returned: when a bundle was installed
  type: list
  elements: str
  sample: [deep_gemm/Qwen3-30B-A3B-1a2b3c4d, moe_configs/Qwen3-30B-A3B-1a2b3c4d]
recovered:
  description:
    - With O(state=installed), what killed installs had left and this install cleared first, one entry per install
      (C(bundle), C(model), C(outcome) V(rolled_back), V(dropped) or V(cleared), C(holds) the caches the model holds).
  returned: when a bundle was installed
  type: list
  elements: dict
  sample: [{"bundle": "9f2c...2c1a", "model": "/models/Qwen3-30B-A3B", "outcome": "rolled_back", "holds": "old"}]
records:
  description: With O(state=installed), each installed stage's stage JSON (container and host path).
  returned: when a bundle was installed
  type: dict
  sample: {"deep_gemm": {"status": "installed", "stage_json_host": "/home/ubuntu/.../stages/deep_gemm.json"}}
reasons:
  description: With V(bundle_mismatch), each field where this host's signature differs from the bundle's.
  returned: on failure with bundle_mismatch
  type: list
  elements: dict
  sample: [{"stage": "deep_gemm", "field": "driver_version", "old": "570.148.08", "new": "550.54.15"}]
error_type:
  description:
    - V(bundle_mismatch), V(bundle_corrupt), V(bundle_unsafe), V(bundle_unavailable), V(insufficient_disk),
      V(lock_timeout), V(container_not_running), or another classified error of the runtime.
  returned: on failure
  type: str
  sample: bundle_mismatch
cmd:
  description: The docker exec command that was run.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _docker_exec as dx
from ansible_collections.sglang.prep.plugins.module_utils import _cache_bundle


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dx.stage_options_spec(),
            container=dict(type="str", required=True),
            state=dict(type="str", required=True, choices=["packed", "installed"]),
            bundle=dict(type="str"),
            sha256=dict(type="str"),
            source_host=dict(type="str"),
            stages=dict(type="list", elements="str"),
        ),
        required_if=[("state", "installed", ("bundle",))],
        supports_check_mode=True,
    )
    _cache_bundle.run(module)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_serve
short_description: Serve a model from the primed caches with a long-lived SGLang server, and prove zero JIT on it
version_added: 1.1.0
description:
  - Starts the long-lived SGLang server in the running prime container, as O(user), through the container's
    C(sglang_prep) runtime (C(docker exec -u devuser <container> python3 -m sglang_prep serve ...)).
  - The server is the serve check's own configuration, the one the priming proved. That is the canonical settings,
    metrics on, the O(extra_server_args), every cache variable under C(/profiles) and SGLang's fail-on-miss switch
    C(SGLANG_CRASH_ON_JIT_COMPILE=1). It listens on O(port), the port Prometheus in the container scrapes.
  - Its stage options (O(tp), O(moe_batch_sizes), O(moe_dtype), O(extra_server_args), ...) are those of
    M(sglang.prep.sglang_stage), and they are part of the stage signatures, so give the values the caches were primed with.
  - "Before it starts anything, every stage is planned against these serving settings. A stage that would run is
    refused with RV(error_type=not_primed), naming the stage and the fields that differ (for example C(tp: 1 -> 2)),
    unless O(prime=true) primes first. A container run with no priming at all is refused the same way."
  - Once the server is ready, the serve check's shapes are driven against it. Every cache is snapshotted before its
    start and after the requests, and its log is scanned for JIT lines. The verdict is RV(zero_jit). The check only
    reads the caches. When it fails, the task fails with RV(error_type=jit_at_serve_time) and the server keeps
    serving, unless O(stop_on_jit=true) stops it.
  - The runtime writes the C(serve) record beside the stage JSONs, then the aggregate and the metrics
    (C(sglang_prep_serve_zero_jit{stage="serve"})).
  - First the container is switched to serving mode, so that its Prometheus scrapes the server (a container primed
    with the role's C(prime_container_mode=caching) does not scrape the SGLang servers). The switch rewrites the run's
    Prometheus configuration and reloads it with SIGHUP, Prometheus' own reload; the container is not restarted and
    no sample is lost. See RV(container_mode).
  - A server already running with the same settings digest is left alone (C(changed=false) when the container was
    already in serving mode). Other settings restart it. In check mode it plans and compares the settings digest, and
    starts, stops and writes nothing; C(--diff) shows which settings changed.
  - O(state=stopped) stops the serving server and proves its port free.
extends_documentation_fragment:
  - sglang.prep._attributes
  - sglang.prep._attributes.check_full
  - sglang.prep._container
  - sglang.prep._stage_options
attributes:
  diff_mode:
    support: full
    details: The serving settings that changed.
options:
  state:
    description:
      - V(started) serves O(model), or leaves a server with the same settings alone. V(stopped) stops the serving server.
    type: str
    choices: [started, stopped]
    default: started
  prime:
    description:
      - Prime every stage these serving settings would run first, instead of refusing with V(not_primed).
    type: bool
    default: false
  stop_on_jit:
    description:
      - Stop the server when the zero-JIT check on the live server fails. By default it keeps serving.
    type: bool
    default: false
  model:
    description:
      - Model path inside the container, under C(/models). Required with O(state=started).
    required: false
  port:
    description:
      - The serving port inside the container (the prime role passes C(prime_server_port)). Strict, there is no
        fallback port. The host-wide server-port lock is held by the server for as long as it runs, so stage
        servers never share the port with it.
  ready_timeout:
    description:
      - Seconds for the server to become ready before V(readiness_timeout). The server is left running then.
seealso:
  - module: sglang.prep.sglang_stage
"""

EXAMPLES = r"""
- name: Serve the primed model
  sglang.prep.sglang_serve:
    container: sglang-prime
    model: /models/Qwen3-30B-A3B
    extra_server_args: [--enable-mixed-chunk]
  register: served

- name: Stop the serving server
  sglang.prep.sglang_serve:
    container: sglang-prime
    model: /models/Qwen3-30B-A3B
    state: stopped
"""

RETURN = r"""
status:
  description: V(ok) (started and proven), V(noop) (already serving with the same settings), V(would_run) (check mode) or V(error).
  returned: with O(state=started)
  type: str
  sample: ok
action:
  description: V(start), V(restart), V(none), or V(prime) (check mode with O(prime=true)).
  returned: with O(state=started)
  type: str
  sample: start
zero_jit:
  description: The verdict of the zero-JIT check on the live server (C(null) when it did not complete).
  returned: with O(state=started)
  type: bool
  sample: true
first_text:
  description: The text of the first generation the check got from the live server.
  returned: with O(state=started)
  type: str
  sample: " the"
server:
  description: The serving server (pids, port, settings digest, argv with secrets masked, its log).
  returned: with O(state=started)
  type: dict
container_mode:
  description:
    - The switch of the container to serving mode, which comes before the server (the role's C(prime_container_mode)), with
      C(mode) (V(serving)), C(previous) (V(caching), V(serving), or null for a run without a Prometheus configuration),
      C(changed), C(reloaded) (Prometheus reloaded its configuration, SIGHUP, without a restart), C(reload_s) and C(message).
    - A switch is a change, also when the server itself was left alone.
  returned: with O(state=started), once the not_primed check passed
  type: dict
serve_result:
  description: The whole serve record, as written to C(stages/serve.json).
  returned: with O(state=started)
  type: dict
error_type:
  description: V(not_primed), V(jit_at_serve_time), V(port_busy), V(lock_timeout), V(readiness_timeout), V(server_exited_early), ...
  returned: on failure
  type: str
  sample: not_primed
reasons:
  description: With V(not_primed), each differing field as C({stage, field, old, new}).
  returned: on refusal
  type: list
  elements: dict
port_free:
  description: With O(state=stopped), whether the port was free after the server stopped.
  returned: with O(state=stopped)
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _serve


def main():
    _serve.run(AnsibleModule(argument_spec=_serve.argument_spec(), supports_check_mode=True))


if __name__ == "__main__":
    main()

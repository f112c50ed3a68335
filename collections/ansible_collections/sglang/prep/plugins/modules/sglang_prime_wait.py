#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_prime_wait
short_description: Wait for a host's priming job and show its progress, one line per change
version_added: 1.1.0
description:
  - Waits for the asynchronous job that M(sglang.prep.sglang_prime) started with C(async) and C(poll=0), and returns
    that job's result (the priming state) when it ends.
  - While it waits it reads the progress file the runtime rewrites at every change (which stage, which step
    of it, for example the MoE batch size, and the estimated time left) and prints one line per change, so
    a long tune shows where it is instead of a retry counter.
  - Each host waits for its own job only, so a host whose stages finish early is not held back by
    another host's long tune beyond the end of this one task.
  - This is an action plugin. It runs on the controller and asks the host for the job's status and the
    progress file, first every O(quick_poll) seconds, then every O(poll) seconds.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes.flow
  - sglang.prep._attributes
attributes:
  check_mode:
    support: none
    details: The job it waits for does not run in check mode.
  diff_mode:
    support: none
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
options:
  jid:
    description: The job ID that the asynchronous M(sglang.prep.sglang_prime) task registered (C(ansible_job_id)).
    type: str
    required: true
  progress:
    description:
      - Host path of the progress file (the run directory's C(progress.json); the priming state's
        C(run.progress_file) names it). Without it no progress is shown.
    type: path
  timeout:
    description: Seconds to wait before failing with RV(error_type=interrupted); the job may still be running then.
    type: float
    required: true
  poll:
    description: Seconds between two looks once the first O(quick_polls) looks are done.
    type: float
    default: 5.0
  quick_poll:
    description: Seconds between the first O(quick_polls) looks (a short job is done by then).
    type: float
    default: 0.25
  quick_polls:
    description: How many looks use O(quick_poll).
    type: int
    default: 12
seealso:
  - module: sglang.prep.sglang_prime
"""

EXAMPLES = r"""
- name: Prime every stage that needs it, as one job
  sglang.prep.sglang_prime:
    container: sglang-prep
    stages: [deep_gemm, moe_tune, flashinfer, inductor]
    model: /models/Qwen3-30B-A3B
  async: 86400
  poll: 0
  register: job

- name: Wait for it, one line per progress change
  sglang.prep.sglang_prime_wait:
    jid: "{{ job.ansible_job_id }}"
    progress: /home/ubuntu/sglang-observability/telemetry/container_runs/RUN_ID/progress.json
    timeout: 86400
  register: primed
"""

RETURN = r"""
state:
  description: The priming state the job returned (see M(sglang.prep.sglang_prime)).
  returned: when the job finished and the runtime answered
  type: dict
  sample: {"status": "changed", "aggregate": "ok"}
error_type:
  description: Classified failure of the job, or V(interrupted) when it did not finish within O(timeout).
  returned: on failure
  type: str
  sample: readiness_timeout
waited_s:
  description: Seconds this task waited.
  returned: when the job finished
  type: float
  sample: 41.8
"""

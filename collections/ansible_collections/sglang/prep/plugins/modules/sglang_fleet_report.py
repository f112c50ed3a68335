#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sglang.prep contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sglang_fleet_report
short_description: Write the fleet report of a priming run on the controller
version_added: 1.0.0
description:
  - Turns the per-host C(prime_report) facts that role C(sglang.prep.prime) sets (on success and on failure)
    into one fleet report, and writes it on the controller as JSON and as a Markdown table.
  - One row per host with its status, signature group, GPU, per-stage status and duration, whether serving was
    proven to compile nothing (C(zero JIT), from the host's serve check), cache bytes, re-prime reasons and
    classified error type. Rows are sorted by host name. The summary counts the hosts proven against the hosts primed.
  - Every host named in O(hosts) gets a row. A host without a report is never dropped; it is reported as
    failed with error type C(unreachable) when it is listed in O(unreachable), else C(not_run)
    (reachable, but the priming play never finished on it, for example because Ansible stopped the play).
  - Writes C(fleet-report-<UTC stamp>.json) and C(fleet-report-<UTC stamp>.md) in O(report_dir), then the same
    content to C(fleet-report-latest.json) and C(fleet-report-latest.md). All writes are atomic (temporary file, then rename).
  - With O(name) it rewrites a report written earlier in the same run (the later batches of a serial play do),
    so one run leaves one time-stamped report, which always lists every host seen so far.
  - With O(keep) it then deletes the older time-stamped reports in O(report_dir) beyond the newest O(keep)
    (the one just written always stays). Only files named like a time-stamped report
    (C(fleet-report-<yyyymmddThhmmssZ>[-n].json) or C(.md)) are ever deleted; C(fleet-report-latest.*) and every other
    file are left alone.
  - The report only restates what the hosts reported; nothing is recomputed here (the signature group comes
    from each host's C(prep_result.json)).
options:
  reports:
    description:
      - The per-host C(prime_report) dictionaries, as set by role M(sglang.prep.prime).
      - Each is the runtime's priming state with the role's overlay, as it comes. Read are C(host), C(status) (C(ok),
        C(changed) or C(failed)), C(failed_task), C(error_type), C(message), C(run.run_id), C(run.log_file), C(signature_group),
        C(gpu), C(stages), C(zero_jit), C(zero_jit_reason), C(caches.total_bytes), C(prep_result_path), C(aggregate),
        C(container), C(changes), C(fanout) and C(finished_at) (when the host's priming state was built, UTC); the keys of
        the 1.1.0 shape (C(run_id), C(log_file), C(cache_bytes), C(prep_result_status)) are read too. Missing keys are reported as null.
      - One table in C(module_utils/_fleet_report.py) (C(COLUMNS)) says where each row field is read and how its table cell is written.
    type: list
    elements: dict
    required: true
  hosts:
    description:
      - Every host the priming play targeted. Hosts in this list without an entry in O(reports) are reported as failed.
      - Hosts that have a report but are not in this list are reported too.
    type: list
    elements: str
    default: []
  unreachable:
    description:
      - Hosts among those without a report that could not be reached. Their error type is C(unreachable).
    type: list
    elements: str
    default: []
  report_dir:
    description:
      - Controller directory that receives the report files. Created if missing.
    type: path
    required: true
  name:
    description:
      - Name (without C(.json)/C(.md)) of a report to rewrite, as RV(name) returned it for an earlier batch of the same run.
      - Unset means a new time-stamped name.
    type: str
  context:
    description:
      - Free-form facts about the run (for example the model, the mode or the playbook) stored under C(context) in the JSON report
        and listed at the top of the Markdown report.
    type: dict
    default: {}
  keep:
    description:
      - How many time-stamped reports (each a C(.json) and C(.md) pair) to keep in O(report_dir), the one just written included;
        older ones are deleted after the write. Newest means the latest time stamp in the name.
      - C(0) keeps every report. Role C(sglang.prep.fleet_report) passes C(fleet_report_keep) (default 10).
      - A report that cannot be deleted is left with a warning; it never fails the module.
    type: int
    default: 0
extends_documentation_fragment:
  - sglang.prep._attributes
  - sglang.prep._attributes.check_full
notes:
  - Run it on the controller (a play on C(localhost), or C(delegate_to=localhost)). Role C(sglang.prep.fleet_report) does;
    role C(sglang.prep.prime) includes it once per batch, before it fails a host.
  - In check mode the report is built and returned; no file is written and none is deleted (RV(written) is false).
  - An unwritable O(report_dir) fails with the path, the owner seen and the user the module runs as. Nothing is chown-ed or chmod-ed.
seealso:
  - module: sglang.prep.sglang_stage
"""

EXAMPLES = r"""
- name: Write the fleet report for every host of group gpu_hosts
  sglang.prep.sglang_fleet_report:
    reports: "{{ groups['gpu_hosts'] | map('extract', hostvars, 'prime_report') | select('defined') | list }}"
    hosts: "{{ groups['gpu_hosts'] }}"
    report_dir: "{{ playbook_dir }}/../reports"
    context:
      model: /models/DeepSeek-V3
  delegate_to: localhost
  run_once: true
  register: fleet

- name: Show the table
  ansible.builtin.debug:
    msg: "{{ fleet.markdown }}"
"""

RETURN = r"""
report:
  description: The whole report, exactly as written to the JSON file.
  returned: always
  type: dict
  contains:
    schema_version:
      description: Report schema version.
      type: str
      sample: "1"
    generated_at:
      description: UTC time the report was built.
      type: str
      sample: "2026-11-29T16:02:11Z"
    stage_order:
      description: The stage columns, in priming order.
      type: list
      elements: str
      sample: [deep_gemm, moe_tune, flashinfer, inductor]
    summary:
      description:
        - Host counts per status, and the hosts of each signature group.
        - C(zero_jit) counts the hosts whose serve check proved that serving compiles nothing (C(proven)) against the
          hosts primed (status ok or changed), and the hosts where it found JIT (C(jit)).
        - C(fanout) (with C(prime_fanout)) has per fan-out group its C(builder), C(receivers), the receivers it was
          C(installed_on) and those that C(primed_itself), how bundles moved (C(transfer), one of ssh, store, url or
          controller), C(bytes_moved), C(transfer_s), C(install_s) (summed over receivers), C(compiles_avoided) (stages
          installed instead of primed) and the C(bundle_digest).
      type: dict
      sample: {"hosts": 3, "ok": 1, "changed": 1, "failed": 1, "zero_jit": {"proven": 2, "primed": 2, "jit": 0},
               "signature_groups": {"3f2a9c1e": {"hosts": ["gpu-a", "gpu-b"]}}}
    hosts:
      description: One row per host; see RV(table).
      type: list
      elements: dict
stats:
  description:
    - The summary a workflow or a notification reads; the fleet report role returns it with M(ansible.builtin.set_stats)
      as C(sglang_prep_fleet).
    - Per host its C(status), C(error_type), C(zero_jit) (true, false or null) and C(compile_s), the seconds its stages
      spent running this time (stages that ran; a no-op or an installed bundle adds nothing); the counts of
      RV(report.summary); and where the report was written (null in check mode).
  returned: always
  type: dict
  sample: {"hosts": {"gpu-a": {"status": "changed", "error_type": null, "zero_jit": true, "compile_s": 41.2}},
           "summary": {"hosts": 1, "ok": 0, "changed": 1, "failed": 0, "zero_jit": {"proven": 1, "primed": 1, "jit": 0}},
           "report": "reports/fleet-report-20261129T160211Z.json"}
table:
  description: One row per host, sorted by host name.
  returned: always
  type: list
  elements: dict
  sample:
    - host: gpu-a
      status: changed
      signature_group: 3f2a9c1e
      gpu: {device_name: NVIDIA H100 80GB HBM3, compute_capability: "9.0"}
      run_id: container-run-20261129T160102Z-1a2b3c4d
      stages: {deep_gemm: {status: ok, ran: true, duration_s: 3.2, error_type: null, reprime_reasons: []}}
      zero_jit: true
      zero_jit_reason: "yes: 49 requests (13 prompt lengths, 36 decode batch sizes): 9 caches under /profiles unchanged (812 files), no JIT log line, ..."
      cache_bytes: 123456
      reprime_reasons: []
      error_type: null
      failed_task: null
      message: null
      prep_result_path: /home/ubuntu/sglang-observability/telemetry/container_runs/container-run-20261129T160102Z-1a2b3c4d/prep_result.json
      prep_result_status: ok
      log_file: /home/ubuntu/sglang-observability/telemetry/logs/container-run-20261129T160102Z-1a2b3c4d.log
      container: sglang-prep
      changes: [container, deep_gemm]
      finished_at: "2026-11-29T16:03:10Z"
markdown:
  description: The Markdown report, exactly as written to the C(.md) file.
  returned: always
  type: str
json_path:
  description: Path of the time-stamped JSON report (not written in check mode).
  returned: always
  type: str
  sample: /srv/reports/fleet-report-20261129T160211Z.json
markdown_path:
  description: Path of the time-stamped Markdown report (not written in check mode).
  returned: always
  type: str
name:
  description: Name of the time-stamped report (its file names without extension); pass it as O(name) to rewrite it.
  returned: always
  type: str
  sample: fleet-report-20261129T160211Z
latest_json_path:
  description: Path of C(fleet-report-latest.json).
  returned: always
  type: str
latest_markdown_path:
  description: Path of C(fleet-report-latest.md).
  returned: always
  type: str
written:
  description: Whether the report files were written (false in check mode).
  returned: always
  type: bool
  sample: true
pruned:
  description: The older time-stamped report files deleted because of O(keep), oldest first (empty in check mode).
  returned: always
  type: list
  elements: str
  sample: [/srv/reports/fleet-report-20261120T101500Z.json, /srv/reports/fleet-report-20261120T101500Z.md]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sglang.prep.plugins.module_utils import _fleet_report


def main():
    module = AnsibleModule(
        argument_spec=dict(
            reports=dict(type="list", elements="dict", required=True),
            hosts=dict(type="list", elements="str", default=[]),
            unreachable=dict(type="list", elements="str", default=[]),
            report_dir=dict(type="path", required=True),
            name=dict(type="str"),
            context=dict(type="dict", default={}),
            keep=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    try:
        result = _fleet_report.run(module.params, module.check_mode, module.warn)
    except _fleet_report.ReportError as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

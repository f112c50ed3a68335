"""The fleet summary for AWX/AAP: sglang_fleet_report's stats (per host status, error_type, zero JIT and the
seconds its stages ran), returned by the fleet_report role with set_stats, as a real ansible-playbook run shows
in its custom stats."""

import json
import os
import subprocess
import sys

from unit_support.paths import REPO

from ansible_collections.sglang.prep.plugins.module_utils import _fleet_report as fr

PRIMED = {"host": "gpu-a", "status": "changed", "zero_jit": True, "stages": {
    "deep_gemm": {"status": "ok", "ran": True, "duration_s": 30.5},
    "moe_tune": {"status": "noop", "ran": False, "duration_s": 0.2},
    "serve_check": {"status": "ok", "ran": True, "duration_s": 10.7}}}
FAILED = {"host": "gpu-b", "status": "failed", "error_type": "port_busy", "zero_jit": None, "stages": {}}


def test_stats_per_host_count_only_the_stages_that_ran():
    report, _warnings = fr.build_report([PRIMED, FAILED], hosts=["gpu-a", "gpu-b", "gpu-c"])
    stats = fr.stats(report, "/r/fleet-report-x.json")
    assert stats["hosts"]["gpu-a"] == {"status": "changed", "error_type": None, "zero_jit": True, "compile_s": 41.2}
    assert stats["hosts"]["gpu-b"] == {"status": "failed", "error_type": "port_busy", "zero_jit": None, "compile_s": 0.0}
    assert stats["hosts"]["gpu-c"]["status"] == "failed" and stats["hosts"]["gpu-c"]["error_type"] == "not_run"
    assert stats["summary"]["changed"] == 1 and stats["summary"]["failed"] == 2 and stats["report"] == "/r/fleet-report-x.json"


PLAY = """
- name: A priming play's hosts left their reports
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Set the reports
      ansible.builtin.set_fact:
        prime_report: %s
    - name: Write the fleet report
      ansible.builtin.include_role:
        name: sglang.prep.fleet_report
      vars:
        fleet_report_hosts: [localhost]
        fleet_report_dir: %s
        fleet_report_show: false
"""


def test_the_fleet_report_role_returns_the_summary_with_set_stats(tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY % (json.dumps(dict(PRIMED, host="localhost")), json.dumps(str(tmp_path / "reports"))))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_SHOW_CUSTOM_STATS="true",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                           "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable, str(playbook)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    fleet = json.loads(proc.stdout)["global_custom_stats"]["sglang_prep_fleet"]
    assert fleet["hosts"]["localhost"] == {"status": "changed", "error_type": None, "zero_jit": True, "compile_s": 41.2}
    assert fleet["report"].startswith(str(tmp_path / "reports"))

"""prime_container_mode: a caching prime leaves the SGLang servers unscraped, serve switches the same container to
serving mode by a Prometheus reload, and prime_report.serving is the serve-spec hand-off.

One host (the prime role against this machine's Docker engine, stand-in image, every stage) is primed with
prime_container_mode=caching through a playbook that keeps the host's prime_report; the container's own Prometheus
is asked what it loaded and scrapes (docker exec: it listens on 127.0.0.1 inside the container).
"""

import json
import os
import time

import pytest

import role_harness as rh
from docker_util import docker

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates a host user and runs Docker as root, like molecule")

HOST_USER = "sglang-cmode-it"
HOST_UID = 48371
STAGES = list(rh.contract.STAGE_ORDER)
FETCH = ("import sys, urllib.request; "
         "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
# the role, then prime_report kept in a file: what a user's own play reads as hostvars[host].prime_report
REPORT_PLAY = """---
- name: Prime and keep prime_report
  hosts: sglang_nodes
  gather_facts: false
  pre_tasks:
    - name: Take the model
      ansible.builtin.set_fact:
        prime_model: "{{ model }}"
  roles:
    - role: sglang.prep.prime
      prime_fleet_report: false
  tasks:
    - name: Keep prime_report
      ansible.builtin.copy:
        content: "{{ prime_report | to_json }}"
        dest: "{{ report_file }}"
        mode: "0644"
      changed_when: false  # the test's own record, not a change on the host
"""


class Host(object):
    def __init__(self):
        self.host = rh.RoleHost(HOST_USER, HOST_UID, "sglang-prep-cmode-it", stages=STAGES,
                                extra_vars={"prime_container_mode": "caching"})
        self.play_file = os.path.join(self.host.base, "prime_report.yml")
        self.report_file = os.path.join(self.host.base, "prime_report.json")
        with open(self.play_file, "w", encoding="utf-8") as handle:
            handle.write(REPORT_PLAY)

    def prime(self):
        """(the play, the host's prime_report)."""
        if os.path.exists(self.report_file):
            os.unlink(self.report_file)
        play = self.host.playbook(self.play_file, "-e", json.dumps({"report_file": self.report_file}))
        assert play.rc == 0 and play.recap["failed"] == 0, play
        with open(self.report_file, encoding="utf-8") as handle:
            return play, json.load(handle)

    def prometheus(self, path):
        """The JSON the container's Prometheus answers at ``path``."""
        _run_id, manifest = self.host.run()
        base = manifest["telemetry_surfaces"]["prometheus"].rstrip("/")
        return json.loads(docker("exec", self.host.container, "python3", "-c", FETCH, base + path).stdout)

    def loaded_jobs(self):
        """The scrape jobs of the configuration Prometheus runs with now."""
        text = self.prometheus("/api/v1/status/config")["data"]["yaml"]
        return sorted(line.split(":", 1)[1].strip().strip("\"'") for line in text.splitlines()
                      if line.strip().startswith("- job_name:"))

    def config_file(self):
        run_id, _manifest = self.host.run()
        with open(self.host.path("telemetry", "prometheus", run_id, "prometheus.yml"), encoding="utf-8") as handle:
            return handle.read()

    def prometheus_pid(self):
        out = docker("top", self.host.container, "-eo", "pid,args").stdout.splitlines()[1:]
        pids = [line.split(None, 1)[0] for line in out if "--config.file=" in line and "prometheus" in line]
        assert len(pids) == 1, out
        return pids[0]

    def serve_spec(self):
        out = docker("exec", "-u", "devuser", self.host.container, "python3", "-m", "sglang_prep", "serve-spec",
                     "--model", rh.MODEL).stdout
        line = [x for x in out.splitlines() if x.startswith(rh.contract.RESULT_PREFIX)][-1]
        return json.loads(line[len(rh.contract.RESULT_PREFIX):])


@pytest.fixture(scope="module")
def cached():
    host = Host()
    try:
        play, report = host.prime()
        yield host, play, report
    finally:
        host.host.remove()


def wait_for(what, probe, timeout_s=15.0):
    """Poll ``probe`` (every 0.1 s, the stage servers are scraped every 0.25 s) until it returns a true value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, "no %s within %gs" % (what, timeout_s)
        time.sleep(0.1)


def test_a_caching_prime_runs_prometheus_without_scraping_the_stage_servers(cached):
    host, play, report = cached
    _run_id, manifest = host.host.run()
    assert manifest["services"]["prometheus"]["status"] == "running", manifest["services"]
    assert host.config_file().startswith("# container mode: caching"), host.config_file()
    jobs = host.loaded_jobs()
    assert "node" in jobs and "sglang" not in jobs, jobs  # what Prometheus loaded, not only the file
    targets = host.prometheus("/api/v1/targets?state=active")["data"]["activeTargets"]
    assert not [t for t in targets if ":30000/" in t["scrapeUrl"]], targets
    assert report["container_mode"] == "caching", report.get("container_mode")
    assert "container mode caching (Prometheus reloaded)" in report["changes"], report["changes"]


def test_the_flashinfer_stage_records_why_its_prometheus_proof_was_skipped(cached):
    host, _play, _report = cached
    run_id, _manifest = host.host.run()
    probe = host.host.stage_json(run_id, "flashinfer")["telemetry_probe"]
    assert probe["skipped"] is True and probe["ok"] is None, probe  # never an ok it did not measure
    assert probe["container_mode"] == "caching" and "does not scrape the SGLang servers" in probe["reason"], probe
    assert probe["server_metrics"]["ok"] is True, probe  # the server's own /metrics is still checked


def test_prime_report_serving_is_the_serve_spec_json(cached):
    host, _play, report = cached
    assert report["serving"] is not None, report.get("serving_problem")
    assert report["serving"] == host.serve_spec()
    assert any(k.startswith("SGLANG_") and v.startswith("/profiles") for k, v in report["serving"]["env"].items())


def test_a_second_caching_prime_changes_nothing(cached):
    host, _play, _report = cached
    play, report = host.prime()
    assert play.recap["changed"] == 0, play
    assert report["container_mode"] == "caching" and "sglang" not in host.loaded_jobs()


def test_serve_switches_to_serving_without_a_restart_and_the_live_server_is_scraped(cached):
    host, _play, _report = cached
    container_before = host.host.container_state()[0]
    run_before, _manifest = host.host.run()
    prometheus_before = host.prometheus_pid()
    play = host.host.serve()
    assert play.rc == 0 and play.recap["failed"] == 0, play
    assert "zero JIT on the live server: yes" in play.text, play
    # a reload, not a restart: the same container, run and Prometheus process (its TSDB and samples stay)
    assert host.host.container_state()[0] == container_before
    assert host.host.run()[0] == run_before and host.prometheus_pid() == prometheus_before
    assert host.config_file().startswith("# container mode: serving")
    assert "sglang" in host.loaded_jobs()
    wait_for("scraped serving server", lambda: [
        t for t in host.prometheus("/api/v1/targets?state=active")["data"]["activeTargets"]
        if ":30000/" in t["scrapeUrl"] and t["health"] == "up"])
    query = 'sglang:prompt_tokens_total{run_id="%s"}' % run_before
    wait_for("sample of the live server", lambda: host.prometheus(
        "/api/v1/query?query=" + query.replace("{", "%7B").replace("}", "%7D").replace('"', "%22"))["data"]["result"])

    again = host.host.serve()
    assert again.rc == 0 and again.recap["changed"] == 0, again

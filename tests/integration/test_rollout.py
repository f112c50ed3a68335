"""Rollouts that cannot wedge a host: the prime role against this machine's Docker engine.

A failed rollout (a tag that cannot be pulled, a container name Docker refuses, settings Docker cannot
start) leaves the running container, its run and its pointer exactly as they were, and the previous
settings re-run as a no-op. A running container whose pointer was deleted or corrupted is restarted by the
next prime, which then records its stages in the new run (bad_pointer heals).
"""

import os
import re

import pytest

import role_harness as rh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates a host user and runs Docker as root, like molecule")

HOST_USER = "sglang-rollout-it"
HOST_UID = 48321  # not root, not 1000


@pytest.fixture(scope="module")
def primed():
    with rh.primed_host(HOST_USER, HOST_UID, "sglang-prep-rollout-it") as host:
        yield host


def snapshot(host):
    """What a failed rollout must leave alone: the container, the pointer, the run and its manifest."""
    state = host.container_state()
    run_id, manifest = host.run()
    return {"container": state, "pointer": host.pointer_text(), "run_id": run_id,
            "manifest": os.path.exists(manifest["paths"]["host"]["manifest"])}


def assert_untouched(host, before, play):
    after = snapshot(host)
    assert after == before, "the failed rollout changed the host:\nbefore %s\nafter  %s\n%r" % (before, after, play)
    assert after["container"][1], "the previous container is not running"
    assert host.container_state(host.container + "-trial") is None, "a trial container was left behind"


# A rollout the host refuses: the settings in; the failure (error_type) and what the output says out ({repository}
# and {tag}: the test image's). The test image exists only on this machine and no registry is reachable.
REFUSED = [
    pytest.param({"prime_image": "sglang-prep/standin:does-not-exist", "prime_image_pull": "missing"}, "image_unavailable",
                 ["repository sglang-prep/standin, tag does-not-exist", "Nothing was changed"],
                 id="a tag that cannot be pulled"),
    pytest.param({"prime_image_pull": "always"}, "image_unavailable", ["repository {repository}, tag {tag}"],
                 id="always pull pulls before anything changes"),
    pytest.param({"prime_image": "sglang-prep/standin:does-not-exist", "prime_image_pull": "never"}, "image_unavailable",
                 ["not on the host, and prime_image_pull is never"], id="never pull requires the image on the host"),
    pytest.param({"prime_container_name": "not a name!"}, "bad_input", ["is not a name the Docker engine accepts"],
                 id="a container name the engine refuses"),
    pytest.param({"prime_network_mode": "sglang-prep-no-such-network"}, "container_start_failed",
                 ["a trial container with them failed", "sglang-prep-no-such-network"],
                 id="settings the engine cannot start fail in a trial"),
]


@pytest.mark.parametrize("settings, error_type, says", REFUSED)
def test_a_refused_rollout_changes_nothing(primed, settings, error_type, says):
    before = snapshot(primed)
    play = primed.prime(**settings)
    assert play.rc != 0 and play.recap["failed"] == 1, play
    assert "status: failed (%s)" % error_type in play.text, play
    repository, tag = primed.vars["prime_image"].rsplit(":", 1)
    for text in says:
        assert text.format(repository=repository, tag=tag) in play.text, play
    assert_untouched(primed, before, play)


def test_the_previous_settings_then_rerun_as_a_no_op_in_the_same_run(primed):
    before = snapshot(primed)
    play = primed.prime()
    assert play.rc == 0 and play.recap["changed"] == 0, play
    assert snapshot(primed) == before


def test_a_no_op_re_prime_makes_one_module_call_and_few_tasks(primed):
    # the look at the host, the container and the plan of every stage are one sglang_prime call; what only a change
    # needs (the checks that can only fail, the runtime deploy, the container's start-up, the priming job, the fan-out)
    # is skipped as ONE include (tasks/changes.yml), not task by task (before: two module calls and 24 skipped tasks,
    # then four includes)
    play = primed.prime()
    assert play.rc == 0 and play.recap["changed"] == 0, play
    skipped = int(re.search(r"localhost\s*:.*skipped=(\d+)", play.output).group(1))
    tasks = re.findall(r"^TASK \[(.*)\]", play.output, re.M)
    looks = [t for t in tasks if "Look at the host" in t or "Look at the running container" in t or "Identify the" in t]
    assert len(looks) == 1, tasks
    assert skipped <= 6 and len(tasks) <= 16, (skipped, tasks)
    assert len([t for t in tasks if "Check, deploy the runtime" in t]) == 1, tasks
    # and the report is still shown: every stage's line, the status and the records
    assert "status: ok" in play.text and "deep_gemm" in play.text and "prep_result: " in play.text, play


@pytest.mark.parametrize("damage", ["deleted", "corrupt", "manifest gone"])
def test_a_running_container_without_a_valid_pointer_is_restarted_and_primed(primed, damage):
    old_run, manifest = primed.run()
    old_id = primed.container_state()[0]
    if damage == "deleted":
        os.unlink(primed.pointer_file)
    elif damage == "corrupt":
        with open(primed.pointer_file, "w", encoding="utf-8") as handle:
            handle.write("not a pointer\n")
    else:
        os.unlink(manifest["paths"]["host"]["manifest"])
    damaged = primed.pointer_text()
    if damage == "deleted":
        check = primed.prime("--check")
        assert check.rc == 0 and check.recap["changed"] > 0 and "its run pointer is not usable" in check.text, check
        assert primed.pointer_text() == damaged and primed.container_state()[0] == old_id, "--check changed the host"
    play = primed.prime()
    assert play.rc == 0 and play.recap["failed"] == 0, play
    assert "its run pointer is not usable" in play.text, play
    new_run, _manifest = primed.run()
    assert new_run != old_run
    container_id, running, _image = primed.container_state()
    assert running and container_id == old_id, "the container was restarted, not recreated"
    recorded = primed.stage_json(new_run, "deep_gemm")
    assert recorded["run_id"] == new_run and recorded["status"] in ("ok", "noop"), recorded
    again = primed.prime()
    assert again.rc == 0 and again.recap["changed"] == 0, again


def test_new_settings_that_start_replace_the_container_with_a_new_run(primed):
    old_run, _manifest = primed.run()
    old_id = primed.container_state()[0]
    env = dict(primed.vars["prime_extra_env"], SGLANG_PREP_ROLLOUT_IT="1")
    play = primed.prime(prime_extra_env=env)
    assert play.rc == 0 and play.recap["failed"] == 0, play
    new_run, _manifest = primed.run()
    container_id, running, _image = primed.container_state()
    assert running and container_id != old_id and new_run != old_run
    assert re.search(r"Start a trial container[^\n]*\n(changed|ok): \[localhost\]", play.output), play
    assert primed.container_state(primed.container + "-trial") is None, "the trial container was left behind"
    back = primed.prime()
    assert back.rc == 0 and primed.container_state()[0] != container_id, back

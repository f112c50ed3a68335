"""The fault tier: every fault and bad input of the outside fault suite (cases 1 to 11), as an operator hits them.

One stand-in host is primed once (every priming stage of /models/tiny-moe); the faults run against it in
order, each asserting its classification and that every record written before it is intact afterwards.
The container CLI runs as the role runs it (docker exec as a non-root UID); the module and the role run
through ansible-playbook where the fault lives there (no RESULT line, bad input).
"""

import json
import os
import re
import shutil
import threading

import pytest
import yaml

import fault_harness as fh
import role_harness as rh
import stage_harness as h
from stage_harness import MODEL, RUN_ID, contract


@pytest.fixture(scope="module")
def box():
    h.ensure_image()
    primed = fh.FaultBox()
    try:
        first = primed.prime("--stages", *fh.PRIMED)
        assert first.rc == 0 and first["status"] == "changed", first
        yield primed
    finally:
        h.docker("rm", "-f", primed.name, check=False)
        shutil.rmtree(primed.base, ignore_errors=True)


def noop_everywhere(box, model=MODEL):
    again = box.prime("--stages", *fh.PRIMED, model=model)
    assert again.rc == 0 and again["to_run"] == [], again
    return again


# ---------------------------------------------------------------- records lost or mixed up
def test_case_01_a_second_model_and_a_broken_one_leave_the_first_models_records(box):
    before = box.records()
    dense = box.prime("--stages", "deep_gemm", model="/models/dense")
    assert dense.rc == 0 and dense["stages"]["deep_gemm"]["status"] == "ok", dense
    assert box.stage_json("deep_gemm", "/models/dense")["model"] == "/models/dense"
    box.assert_intact(before)
    # the run's prep_result.json indexes both models; each model's own aggregate is its own
    index = box.prep_result(None)["models"]
    assert sorted(entry["model"] for entry in index.values()) == ["/models/dense", MODEL]
    assert box.prep_result()["status"] == "ok" and set(box.prep_result()["stages"]) == set(fh.PRIMED)

    before = box.records()
    os.makedirs(box.host("models", "broken"))
    with open(box.host("models", "broken", "config.json"), "w") as handle:
        handle.write('{"architectures": [')
    broken = box.prime("--stages", "deep_gemm", model="/models/broken")
    assert broken.rc == 1 and broken["error_type"] == "model_invalid", broken
    assert "config.json" in broken["message"]
    os.symlink("/etc", box.host("models", "escape"))  # a model directory that leaves the models root
    escape = box.prime("--stages", "deep_gemm", model="/models/escape")
    assert escape.rc == 1 and escape["error_type"] == "model_invalid" and "outside the models root" in escape["message"]
    box.assert_intact(before)
    noop_everywhere(box)


def test_case_02_models_with_the_same_name_never_share_a_signature(box):
    for model in ("/models/orgA/m", "/models/orgB/m"):
        result = box.prime("--stages", "deep_gemm", model=model)
        assert result.rc == 0 and result["stages"]["deep_gemm"]["status"] == "ok", result
    paths = [box.profiles(contract.signature_path("deep_gemm", m)) for m in ("/models/orgA/m", "/models/orgB/m")]
    assert paths[0] != paths[1] and all(os.path.exists(p) for p in paths)
    before = box.records()
    for model in ("/models/orgA/m", "/models/orgB/m"):  # alternating primes re-run nothing
        again = box.prime("--stages", "deep_gemm", model=model)
        assert again.rc == 0 and again["stages"]["deep_gemm"]["status"] == "noop", again
    box.assert_intact(before)


def test_case_03_a_failed_rebuild_keeps_the_last_success(box):
    before = box.records()
    good = box.last_ok("flashinfer")
    failed = box.prime("--stages", "flashinfer", "--rebuild", "flashinfer", env={"SGLANG_STANDIN_FAULT": "oom"})
    assert failed.rc == 1 and failed["error_type"] == "not_enough_memory", failed
    assert box.stage_json("flashinfer")["status"] == "error"
    assert box.last_ok("flashinfer") == good
    assert box.prep_result()["last_ok"]["flashinfer"]["finished_at"] == good["finished_at"]
    box.assert_intact(before, may_change=[box.attempt_path("flashinfer")])
    fixed = box.prime("--stages", "flashinfer")  # the marker left by the failure re-runs it
    assert fixed.rc == 0 and fixed["stages"]["flashinfer"]["status"] == "ok", fixed


def test_case_04_disk_full_while_a_record_is_written_is_insufficient_disk_and_never_ok(box):
    # /dev/full answers every write with ENOSPC, as a full filesystem does
    signature = box.profiles(contract.signature_path("deep_gemm", MODEL))
    os.symlink("/dev/full", signature + ".tmp")
    before = box.records()
    full = box.prime("--stages", "deep_gemm", "--rebuild", "deep_gemm")
    assert full.rc == 1 and full["error_type"] == "insufficient_disk", full
    assert full["stages"]["deep_gemm"]["status"] == "error" and "signature.json" in full["message"]
    assert box.stage_json("deep_gemm")["error_type"] == "insufficient_disk"
    box.assert_intact(before, may_change=[box.attempt_path("deep_gemm")])
    assert not os.path.lexists(signature + ".tmp")

    attempt = box.attempt_path("inductor")
    os.symlink("/dev/full", attempt + ".tmp")
    before = box.records()
    unrecorded = box.stage("inductor", mode="rebuild")
    assert unrecorded.rc == 1 and unrecorded["status"] == "error" and unrecorded["error_type"] == "insufficient_disk"
    # the cache itself was rebuilt (its signature says so); the run that could not record it says error
    box.assert_intact(before, may_change=[box.profiles(contract.signature_path("inductor", MODEL))])
    if os.path.lexists(attempt + ".tmp"):
        os.unlink(attempt + ".tmp")
    assert box.prime("--stages", "deep_gemm", "inductor").rc == 0


def test_case_12_a_disk_that_fills_mid_stage_is_insufficient_disk_with_the_path_and_free_space(box):
    # the server's own write: FlashInfer's JIT log, which every warm-up appends to, answers with ENOSPC (/dev/full, as a
    # full file system does); the server dies with the errno in its traceback
    logs = [os.path.join(top, name) for top, _dirs, names in os.walk(box.profiles(contract.stage_cache_dir("flashinfer")))
            for name in names if name == "flashinfer_jit.log"]
    assert logs
    os.rename(logs[0], logs[0] + ".kept")
    os.symlink("/dev/full", logs[0])
    before = box.records()
    good = box.last_ok("flashinfer")
    try:
        full = box.prime("--stages", "flashinfer", "--rebuild", "flashinfer")
    finally:
        os.unlink(logs[0])
        os.rename(logs[0] + ".kept", logs[0])
    assert full.rc == 1 and full["error_type"] == "insufficient_disk", full
    message = full["message"]
    assert "No space left on device" in message and "bytes" in message and "free on its file system" in message, message
    assert box.stage_json("flashinfer")["status"] == "error" and box.last_ok("flashinfer") == good
    box.assert_intact(before, may_change=[box.attempt_path("flashinfer")])

    # our own write: the session log, which the stage and its server's output are appended to
    log = box.host("telemetry", "logs", RUN_ID + ".log")
    os.rename(log, log + ".kept")
    os.symlink("/dev/full", log)
    before = box.records()
    try:
        full = box.prime("--stages", "deep_gemm", "--rebuild", "deep_gemm")
    finally:
        os.unlink(log)
        os.rename(log + ".kept", log)
    assert full.rc == 1 and full["error_type"] == "insufficient_disk", full
    message = full["message"]
    assert contract.session_log_path(RUN_ID) in message and "free on its file system" in message, message
    assert box.stage_json("deep_gemm")["status"] == "error" and box.last_ok("deep_gemm")["status"] == "ok"
    box.assert_intact(before, may_change=[box.attempt_path("deep_gemm")])
    again = box.prime("--stages", *fh.PRIMED)  # the markers the failures left re-run both
    assert again.rc == 0 and again["stages"]["flashinfer"]["status"] == "ok", again


# ---------------------------------------------------------------- concurrency
def test_case_05_two_primes_of_one_host_never_run_two_stage_servers(box):
    before = box.records()
    slow = {"SGLANG_STANDIN_START_DELAY_S": "4"}
    cmd = ["python3", "-m", "sglang_prep", "prime", "--model", MODEL, "--disk-headroom-mb", "1", "--telemetry-timeout",
           "1", "--stages", "flashinfer", "--rebuild", "flashinfer"]
    results = {}
    first = threading.Thread(target=lambda: results.update(first=h.StageResult(box.exec(*cmd, env=slow, timeout=120))))
    starts = box.server_starts()
    first.start()
    h.wait_for(lambda: box.server_starts() > starts, 60, "the first prime's flashinfer server")
    second = box.prime("--stages", "inductor", "--rebuild", "inductor", "--lock-timeout", "1")
    first.join(120)
    assert second.rc == 1 and second["error_type"] == "lock_timeout", second
    assert "server port" in second["message"] and "flashinfer" in second["message"] and "pid " in second["message"]
    assert results["first"].rc == 0 and results["first"]["stages"]["flashinfer"]["status"] == "ok", results["first"]
    box.assert_intact(before, may_change=[box.attempt_path("flashinfer"), box.attempt_path("inductor"),
                                          box.telemetry(contract.stage_last_ok_path(RUN_ID, "flashinfer", MODEL)),
                                          box.profiles(contract.signature_path("flashinfer", MODEL))])
    assert box.last_ok("inductor")["status"] in ("ok", "noop")


def rebuild_in_the_background(box, stage):
    """A detached module job that rebuilds ``stage`` with a slow server start, once that server has started."""
    starts = box.server_starts()
    job = box.module({"stages": [stage], "stage_modes": {stage: "rebuild"},
                      "env": {"SGLANG_STANDIN_START_DELAY_S": "30"}}, detach=True)
    h.wait_for(lambda: box.server_starts() > starts, 120, "the %s server of the module's job" % stage, poll_s=0.2)
    return job


# ---------------------------------------------------------------- misclassified failures
def test_case_06_a_killed_runner_is_interrupted_and_the_next_prime_recovers(box):
    before = box.records()
    job = rebuild_in_the_background(box, "flashinfer")
    assert box.kill_job()
    result = fh.module_result(job)
    assert result["failed"] and result["error_type"] == "interrupted", result
    assert "killed by signal 9" in result["msg"] and "exit code 137" in result["msg"]
    box.assert_intact(before)
    again = box.prime("--stages", "flashinfer")  # the marker re-runs it, the orphaned server is cleaned up
    assert again.rc == 0 and again["stages"]["flashinfer"]["status"] == "ok", again


def test_case_07_an_unwritable_path_is_found_before_any_work(box):
    starts = box.server_starts()
    before = box.records()
    log = box.host("telemetry", "logs", RUN_ID + ".log")
    os.chown(log, 0, 0)
    os.chmod(log, 0o644)
    try:
        refused = box.stage("inductor", mode="rebuild")
    finally:
        os.chown(log, h.UID, h.GID)
    assert refused["error_type"] == "permissions_unexpected" and log in refused["message"], refused

    root_owned = box.profiles("/profiles/torchinductor/left-by-root")
    os.mkdir(root_owned)
    try:
        refused = box.prime("--stages", "inductor", "--rebuild", "inductor")
    finally:
        os.rmdir(root_owned)
    assert refused["error_type"] == "permissions_unexpected" and "left-by-root" in refused["message"], refused

    # a cache directory that is a symlink to a root-owned directory (the same holds for profiles/ itself)
    cuda = box.profiles(contract.CACHES["cuda"][0])
    elsewhere = box.profiles("/profiles/.root-owned")
    os.mkdir(elsewhere)
    moved = cuda + ".kept"
    os.rename(cuda, moved)
    os.symlink(".root-owned", cuda)
    try:
        refused = box.prime("--stages", "deep_gemm", "--rebuild", "deep_gemm")
    finally:
        os.unlink(cuda)
        os.rename(moved, cuda)
        os.rmdir(elsewhere)
    assert refused["error_type"] == "permissions_unexpected" and "a symlink to" in refused["message"], refused
    assert box.server_starts() == starts  # refused up front: no server started
    box.assert_intact(before, may_change=[box.attempt_path("inductor"), box.attempt_path("deep_gemm")])
    # fixed on the host: the caches were never touched, so the next prime only records them again
    again = box.prime("--stages", *fh.PRIMED)
    assert again.rc == 0 and all(row["status"] == "noop" for row in again["stages"].values()), again
    assert box.server_starts() == starts


def test_case_09_a_corrupt_prep_result_is_reported_and_rebuilt_by_a_noop_prime(box):
    path = box.telemetry(contract.model_prep_result_path(RUN_ID, MODEL))
    with open(path, "w") as handle:
        handle.write("{corrupt")
    plan = box.plan("--stages", *fh.PRIMED)  # what validate asks
    assert plan.rc == 0 and "prep_result.json is unreadable" in (plan["prep_result_problem"] or ""), plan
    before = box.records()
    again = noop_everywhere(box)
    assert again["prep_result"]["status"] == "ok" and json.load(open(path))["status"] == "ok"
    box.assert_intact(before)


def test_case_10_a_trailing_slash_is_the_same_model(box):
    before = box.records()
    again = noop_everywhere(box, model=MODEL + "/")
    assert again["stages"]["deep_gemm"]["model"] == MODEL
    box.assert_intact(before)


# ---------------------------------------------------------------- bad input (cases 8 and 11), the role end to end
def bad_input_rows():
    """The role's bad-input rows marked for this tier (the unit tier runs them all, without a container)."""
    with open(os.path.join(h.REPO, "tests", "unit", "roles", "prime", "bad_input.yaml"), encoding="utf-8") as handle:
        table = yaml.safe_load(handle)
    return [pytest.param(row["extra"], row["named"], id=row["named"][:60])
            for row in table["values"] + table["rollout"] if row.get("faults")]


@pytest.mark.parametrize("extra, named", bad_input_rows())
def test_case_08_11_bad_input_is_refused_before_any_change(box, extra, named):
    before = box.records()
    container = h.docker("inspect", "--format", "{{.Id}} {{.State.StartedAt}}", box.name).stdout
    rc, out = fh.role_prime(box, *extra)
    assert rc != 0 and named in out, out[-3000:]
    assert "status: failed (bad_input)" in out, out[-3000:]
    assert "Traceback" not in out
    assert h.docker("inspect", "--format", "{{.Id}} {{.State.StartedAt}}", box.name).stdout == container
    box.assert_intact(before)


# ---------------------------------------------------------------- secrets (case 11)
def test_case_11_a_stage_env_secret_never_reaches_the_async_job_file_or_the_output(box, tmp_path):
    secret = "hf_fault_tier_s3cr3t"
    async_dir = str(tmp_path / "async")
    # as the role runs the job: async with poll 0, then waited for (the job file stays, as the role's does)
    wait = {"name": "wait", "ansible.builtin.async_status": {"jid": "{{ job.ansible_job_id }}"}, "register": "done",
            "until": "done.finished", "retries": 300, "delay": 1}
    out = box.module({"stages": list(fh.PRIMED), "env": {"HF_TOKEN": secret}},
                     task={"async": 300, "poll": 0, "register": "job"}, then=[wait], verbose=True, async_dir=async_dir)
    assert "failed=0" in out and "- HF_TOKEN" in out, out[-3000:]  # the name is in the cmd, its value nowhere
    assert secret not in out
    files = [os.path.join(top, name) for top, _dirs, names in os.walk(async_dir) for name in names]
    assert files, "no async job file was written"
    for path in files:
        with open(path, errors="replace") as handle:
            assert secret not in handle.read(), path



def files_holding(root, needle):
    found = []
    for top, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(top, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    if needle.encode() in handle.read():
                        found.append(path)
    return found


def docker_exec_cmdlines():
    """The argv of every `docker exec` process on this host now (from /proc/*/cmdline: what `ps` shows anyone)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                argv = [part.decode("utf-8", "replace") for part in handle.read().split(b"\0") if part]
        except OSError:
            continue
        if len(argv) > 1 and os.path.basename(argv[0]) == "docker" and argv[1] == "exec":
            found.append(argv)
    return found


def test_case_11_an_api_key_among_the_extra_server_args_reaches_the_server_but_no_file_or_output(box, tmp_path):
    secret = "sk-fault-tier-4p1k3y"
    async_dir = str(tmp_path / "async")
    wait = {"name": "wait", "ansible.builtin.async_status": {"jid": "{{ job.ansible_job_id }}"}, "register": "done",
            "until": "done.finished", "retries": 300, "delay": 1}
    seen, done = [], threading.Event()

    def watch():  # every docker exec the prime runs, while it runs: the runtime's is the one with sglang_prep prime
        while not done.is_set():
            seen.extend(argv for argv in docker_exec_cmdlines() if argv not in seen)
            done.wait(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out = box.module({"stages": ["flashinfer"], "extra_server_args": ["--api-key", secret]},
                         task={"async": 300, "poll": 0, "register": "job"}, then=[wait], verbose=True,
                         async_dir=async_dir)
    finally:
        done.set()
        watcher.join()
    # the prime succeeds against a server that enforces the key (the stand-in answers 401 without it, as SGLang does)
    assert "failed=0" in out and contract.ENV_EXTRA_SERVER_ARGS in out, out[-3000:]
    runtime = [argv for argv in seen if "sglang_prep" in argv and "prime" in argv]
    assert runtime, seen  # the watcher saw the runtime's docker exec while the stage ran
    assert not [argv for argv in seen if any(secret in arg for arg in argv)], seen  # no key in the process list
    assert secret not in out  # no cmd, no invocation, no -vvv output
    for root in (async_dir, box.host("telemetry"), box.host("profiles")):
        assert not files_holding(root, secret), root  # async job file, session log, stage JSON, signatures, logs
    with open(box.host("telemetry", "logs", RUN_ID + ".log"), errors="replace") as handle:
        log = handle.read()
    assert "api_key='<redacted>'" in log  # the server got the key (it logs its server_args) and the log masks it

# ---------------------------------------------------------------- last: the container dies mid-stage
def test_case_06_the_container_dying_mid_stage_is_interrupted_and_says_so(box):
    before = box.records()
    job = rebuild_in_the_background(box, "inductor")
    h.docker("kill", box.name)
    result = fh.module_result(job)
    assert result["failed"] and result["error_type"] == "interrupted", result
    assert "container %s stopped" % box.name in result["msg"]
    box.assert_intact(before)


# ---------------------------------------------------------------- the role on a host it primed (#26)
@pytest.fixture(scope="module")
def role_host():
    """A host the role primed (deep_gemm), as an operator's: its own host user, host root and container."""
    with rh.primed_host("sglang-prep-fault-role", 48333, "sglang-prep-fault-role") as host:
        yield host


def started(host):
    return h.docker("inspect", "--format", "{{.Id}} {{.State.StartedAt}}", host.container).stdout.split()


def test_case_13_a_runtime_edited_on_the_host_is_deployed_again_and_its_container_restarted(role_host):
    engine = role_host.path("runtime", "sglang_prep", "container", "engine.py")
    with open(engine, encoding="utf-8") as handle:
        deployed = handle.read()
    before = started(role_host)
    with open(engine, "a", encoding="utf-8") as handle:
        handle.write("import sys  # appended on the host\n")
    check = role_host.playbook("validate.yml")  # validate names it and changes nothing
    assert check.rc != 0 and "runtime_modified: " in check.text, check
    assert "sglang_prep/container/engine.py (modified)" in check.text, check
    assert started(role_host) == before
    play = role_host.prime()
    assert play.rc == 0 and play.recap["changed"] > 0, play
    assert "runtime_modified" in play.text and "sglang_prep/container/engine.py (modified)" in play.text, play
    with open(engine, encoding="utf-8") as handle:
        assert handle.read() == deployed
    now = started(role_host)
    assert now[0] == before[0] and now[1] != before[1], "the container that ran the edited runtime was not restarted"
    again = role_host.prime()
    assert again.rc == 0 and again.recap["changed"] == 0, again


def test_case_14_a_noop_reprime_rebuilds_an_unreadable_prep_result_and_says_so(role_host):
    run_id, _manifest = role_host.run()
    path = role_host.path("telemetry", os.path.relpath(contract.model_prep_result_path(run_id, rh.MODEL),
                                                       contract.TELEMETRY_ROOT))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("{corrupt")
    before = started(role_host)
    play = role_host.prime()
    assert play.rc == 0 and "prep_result.json was rebuilt from the stage files" in play.text, play
    assert "is unreadable" in play.text, play
    with open(path, encoding="utf-8") as handle:
        assert json.load(handle)["status"] == "ok"
    assert started(role_host) == before
    again = role_host.prime()
    assert again.rc == 0 and again.recap["changed"] == 0, again


def test_validate_names_a_root_owned_pointer_as_the_run_read_finds_it(role_host):
    """validate reads the current run with sglang_prime_info (expected_uid: the host user): a pointer root wrote is
    named as such, with the chown that fixes it, beside the foreign-file line; validate changes nothing."""
    pointer_file = role_host.pointer_file
    owner = os.stat(pointer_file)
    os.chown(pointer_file, 0, 0)  # as a stray `sudo` write leaves it
    try:
        check = role_host.playbook("validate.yml")
    finally:
        os.chown(pointer_file, owner.st_uid, owner.st_gid)
    assert check.rc != 0, check
    assert "permissions_unexpected: pointer %s is owned by root (uid 0), expected %s (uid %d)" % (
        pointer_file, role_host.user.pw_name, owner.st_uid) in check.text, check
    assert "sudo chown -R %s: %s" % (role_host.user.pw_name, os.path.dirname(pointer_file)) in check.text, check
    assert role_host.playbook("validate.yml").rc == 0  # the same host, its pointer the host user's again, is valid


def test_case_15_a_symlinked_profiles_to_a_root_owned_directory_is_refused_before_the_container_starts(role_host):
    profiles = role_host.path("profiles")
    target = os.path.join(role_host.base, "root-owned-profiles")
    os.mkdir(target)  # owned by root: this tier runs as root, like an operator's sudo mkdir
    os.rename(profiles, profiles + ".kept")
    os.symlink(target, profiles)
    before = started(role_host)
    try:
        play = role_host.prime()
    finally:
        os.unlink(profiles)
        os.rename(profiles + ".kept", profiles)
        os.rmdir(target)
    assert play.rc != 0 and "status: failed (permissions_unexpected)" in play.text, play
    assert re.search(r"%s \(a symlink to %s\): owner root \(uid 0\)" % (re.escape(profiles), re.escape(target)),
                     play.text), play
    assert started(role_host) == before, "the container changed although the check failed"


def test_case_16_a_symlinked_model_directory_is_followed_inside_the_models_root_and_refused_outside(role_host):
    models = role_host.path("models")
    outside = os.path.join(role_host.base, "outside-model")
    shutil.copytree(rh.STANDIN_MODEL, outside)
    os.symlink(outside, os.path.join(models, "elsewhere"))
    before = started(role_host)
    play = role_host.prime(model="/models/elsewhere")
    assert play.rc != 0 and "status: failed (model_invalid)" in play.text, play
    assert "%s is a symlink to %s" % (os.path.join(models, "elsewhere"), outside) in play.text, play
    assert "cannot see the model through this link" in play.text, play
    assert started(role_host) == before

    os.symlink(rh.MODEL_NAME, os.path.join(models, "alias"))  # a relative link inside the models root is followed
    play = role_host.prime(model="/models/alias")
    assert play.rc == 0 and play.recap["failed"] == 0, play

"""Container init (PID 1) on the real Docker engine with the test image.

Host directories are owned by a non-root UID that is not 1000; the runtime package is
bind-mounted read-only exactly as the role mounts it; the image ENTRYPOINT runs init.
"""

import json
import os
import sys
import time
from types import SimpleNamespace

import pytest

import init_harness as h

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import manifest as manifest_mod
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import runid


@pytest.fixture(scope="module")
def running(image):
    root = h.HostRoot()
    box = h.Container(root, image=image).run()
    try:
        ptr, first_read, elapsed = box.wait_pointer()
        sys.stderr.write("\n[init] pointer published %.2fs after docker run\n" % elapsed)
        yield SimpleNamespace(root=root, box=box, ptr=ptr, first_read=first_read, elapsed=elapsed,
                              run_id=first_read["container_run_id"])
    finally:
        box.remove()
        root.remove()


@pytest.fixture
def fresh(image):
    """A container of its own (for tests that stop, restart or break it)."""
    made = []

    def start(owners=None, env=None, uid=h.TEST_UID, gid=h.TEST_GID):
        root = h.HostRoot(uid=uid, gid=gid, owners=owners)
        box = h.Container(root, env=env, image=image)
        made.append(box)
        return box.run()

    yield start
    for box in made:
        box.remove()
        box.root.remove()


def load(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# ---------------------------------------------------------------- pointer, manifest, ownership
def test_pointer_appears_only_after_the_manifest_it_names(running):
    run_id = running.run_id
    assert runid.is_run_id(run_id)
    assert running.ptr["CONTAINER_RUN_META_JSON"] == "/telemetry/container_runs/%s.json" % run_id
    host_manifest = running.root.path("telemetry", "container_runs", run_id + ".json")
    assert running.ptr["CONTAINER_RUN_META_JSON_HOST"] == host_manifest
    # the first read (the instant the pointer was seen) was already the complete manifest
    assert running.first_read == load(host_manifest)
    manifest_mod.read_manifest(host_manifest)
    assert os.stat(host_manifest).st_mtime_ns <= os.stat(running.root.pointer).st_mtime_ns
    assert not [p for p, _st in running.root.files("telemetry") if p.endswith(".tmp")]
    assert running.elapsed < 10, "pointer took %.2fs" % running.elapsed


def test_pointer_manifest_and_log_belong_to_the_host_uid_and_nothing_to_root(running):
    data = running.first_read
    for path in (running.root.pointer, data["paths"]["host"]["manifest"], data["paths"]["host"]["log_file"]):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (h.TEST_UID, h.TEST_GID), path
    for area in ("telemetry", "profiles"):
        wrong = [(p, st.st_uid, st.st_gid) for p, st in running.root.files(area)
                 if (st.st_uid, st.st_gid) != (h.TEST_UID, h.TEST_GID)]
        assert wrong == [], "files under %s not owned by %d:%d: %s" % (area, h.TEST_UID, h.TEST_GID, wrong)
    assert any("/tsdb/" in p for p, _st in running.root.files("telemetry"))  # Prometheus really wrote as devuser


def test_manifest_paths_come_from_what_the_role_passed(running):
    data = running.first_read
    root = running.root
    assert data["paths"]["host"]["telemetry_root"] == root.path("telemetry")
    assert data["paths"]["host"]["profiles_root"] == root.path("profiles")
    assert data["paths"]["host"]["hf_root"] == root.path("huggingface")
    assert data["paths"]["host"]["log_file"] == root.path("telemetry", "logs", running.run_id + ".log")
    assert data["image"] == running.box.image and data["git_revision"] == "0123abc"
    assert data["devuser"] == {"name": "devuser", "uid": h.TEST_UID, "gid": h.TEST_GID, "home": "/home/devuser"}
    start = data["profile_cache"]["start"]
    assert start["deep_gemm"]["host_path"] == root.path("profiles", "deep_gemm")
    assert {"exists", "size", "count", "latest_mtime", "partial", "host_path"} <= set(start["deep_gemm"])


def test_exactly_one_session_log_with_init_lines(running):
    logs = os.listdir(running.root.path("telemetry", "logs"))
    assert logs == [running.run_id + ".log"]
    text = open(running.root.path("telemetry", "logs", logs[0]), encoding="utf-8").read()
    assert "[init] run %s started" % running.run_id in text
    assert "[init] service prometheus: running" in text
    assert "[init] warning: jaeger is not installed" in text


# ---------------------------------------------------------------- services
def test_manifest_lists_every_service_with_its_real_status(running):
    services = running.first_read["services"]
    assert set(services) == {"prometheus", "node_exporter", "dcgm_exporter", "jaeger", "nv_hostengine"}
    for name, binary_word, port in (("prometheus", "prometheus", 9090), ("node_exporter", "node-exporter", 9100),
                                    ("dcgm_exporter", "dcgm-exporter", 9400)):
        entry = services[name]
        assert entry["status"] == "running", (name, entry)
        assert entry["port"] == port and entry["listen"] == "127.0.0.1" and entry["version"]
        # the pid is that service, running as devuser
        cmdline = running.box.exec("cat", "/proc/%d/cmdline" % entry["pid"]).stdout
        assert binary_word in cmdline, (name, cmdline)
        status = running.box.exec("cat", "/proc/%d/status" % entry["pid"]).stdout
        uid_line = [line for line in status.splitlines() if line.startswith("Uid:")][0]
        assert uid_line.split()[1:] == [str(h.TEST_UID)] * 4, (name, uid_line)
    assert services["prometheus"]["version"].startswith("2.42")
    assert services["jaeger"]["status"] == "missing" and services["jaeger"]["pid"] is None
    assert any("jaeger is not installed" in w for w in services["jaeger"]["warnings"])
    assert any("jaeger is not installed" in w for w in running.first_read["warnings"])
    surfaces = running.first_read["telemetry_surfaces"]
    assert surfaces["prometheus"] == "http://127.0.0.1:9090" and surfaces["jaeger_ui"] is None


def test_prometheus_scrapes_node_exporter_with_the_run_label(running):
    def node_up():
        result = running.box.prometheus_query('up{job="node"}')["data"]["result"]
        return result if result and result[0]["value"][1] == "1" else None
    result = h.wait_for(node_up, 30, 'up{job="node"} == 1')
    assert result[0]["metric"]["run_id"] == running.run_id
    # scrapes and readiness probes do not flood the session log with exporter errors
    log = open(running.first_read["paths"]["host"]["log_file"], encoding="utf-8").read()
    assert "collector failed" not in log and "broken pipe" not in log


# Listening TCP sockets in the container as "addr:port" (IPv6 as "[addr]:port"), from /proc/net/tcp{,6}.
LISTENING = ("import socket, struct\n"
             "out = []\n"
             "for name, fam in (('tcp', socket.AF_INET), ('tcp6', socket.AF_INET6)):\n"
             "    for line in open('/proc/net/' + name).read().splitlines()[1:]:\n"
             "        local, state = line.split()[1], line.split()[3]\n"
             "        ip, port = local.split(':')\n"
             "        raw = b''.join(struct.pack('<I', int(ip[i:i + 8], 16)) for i in range(0, len(ip), 8))\n"
             "        addr = socket.inet_ntop(fam, raw)\n"
             "        if state == '0A':\n"
             "            out.append(('[%s]:%d' if fam == socket.AF_INET6 else '%s:%d') % (addr, int(port, 16)))\n"
             "print(' '.join(out))\n")


def test_telemetry_listeners_bind_loopback_only(running):
    listening = running.box.python(LISTENING).split()
    for port in (9090, 9100, 9400):
        assert "127.0.0.1:%d" % port in listening
        assert not {"0.0.0.0:%d" % port, "[::]:%d" % port} & set(listening), listening


def test_devuser_resolves_and_home_cache_is_usable(running):
    assert running.box.exec("id", "-u").stdout.strip() == str(h.TEST_UID)
    assert running.box.exec("id", "-g").stdout.strip() == str(h.TEST_GID)
    running.box.exec("sh", "-c", "mkdir -p ~/.cache/pip && touch ~/.cache/pip/x")  # HF mount made ~/.cache


def test_pid1_reaps_orphaned_processes(running):
    # the sleep must not hold docker exec's output pipe, or docker exec would wait for it
    running.box.exec("sh", "-c", "sleep 1 </dev/null >/dev/null 2>&1 & exit 0")

    def sleeps():
        out = running.box.exec("ps", "-eo", "ppid=,stat=,comm=", user="root").stdout
        return [line.split() for line in out.splitlines() if line.split()[-1] == "sleep"]
    orphan = h.wait_for(sleeps, 5, "the orphaned sleep")
    assert orphan[0][0] == "1"  # reparented to init
    h.wait_for(lambda: not sleeps(), 10, "the orphan to be reaped (no zombie)")


def test_init_check_reports_without_publishing(running):
    before = os.listdir(running.root.path("telemetry"))
    proc = running.box.exec("python3", "-m", "sglang_prep.container.init", "--check", user="root")
    result = json.loads(proc.stdout.strip().splitlines()[-1][len("RESULT "):])
    assert result["writable"] is True
    assert result["services"]["jaeger"]["binary"] is None
    assert result["services"]["prometheus"]["version"].startswith("2.42")
    assert os.listdir(running.root.path("telemetry")) == before
    assert running.root.read_pointer() == running.ptr  # the running run is untouched


def test_listen_address_can_be_opened_by_the_operator(fresh):
    box = fresh(env={"SGLANG_PREP_TELEMETRY_LISTEN": "0.0.0.0"})
    _ptr, data, _elapsed = box.wait_pointer()
    listening = box.python(LISTENING).split()
    for port in (9090, 9100, 9400):  # Go listeners take the dual-stack socket for 0.0.0.0
        assert {"0.0.0.0:%d" % port, "[::]:%d" % port} & set(listening), (port, listening)
    assert data["services"]["prometheus"]["listen"] == "0.0.0.0"
    assert data["telemetry_surfaces"]["prometheus"] == "http://127.0.0.1:9090"  # reachable from inside
    assert data["services"]["prometheus"]["status"] == "running"


# ---------------------------------------------------------------- lifecycle
def stop_and_time(box):
    began = time.monotonic()
    h.docker("stop", box.name, timeout=30)
    took = time.monotonic() - began
    sys.stderr.write("\n[init] docker stop took %.2fs\n" % took)
    return took


def test_docker_stop_is_prompt_and_clean(fresh):
    box = fresh()
    ptr, data, _elapsed = box.wait_pointer()
    h.docker("exec", "-d", "-u", "devuser", box.name, "sleep", "300")  # something started by docker exec
    took = stop_and_time(box)
    assert took < 5, "docker stop took %.2fs" % took
    assert box.state()["ExitCode"] == 0
    log = open(data["paths"]["host"]["log_file"], encoding="utf-8").read()
    assert "[init] SIGTERM received: stopping prometheus, node_exporter" in log
    assert "[init] stopped in" in log and "killed after" not in log  # everything ended on the forwarded SIGTERM
    assert load(ptr["CONTAINER_RUN_META_JSON_HOST"]) == data  # never mutated


def test_docker_stop_kills_what_ignores_sigterm_within_5s(fresh):
    box = fresh()
    _ptr, data, _elapsed = box.wait_pointer()
    h.docker("exec", "-d", "-u", "devuser", box.name, "sh", "-c", "trap '' TERM; while :; do sleep 0.2; done")
    took = stop_and_time(box)
    assert took < 5, "docker stop took %.2fs" % took
    assert box.state()["ExitCode"] == 0
    log = open(data["paths"]["host"]["log_file"], encoding="utf-8").read()
    assert "killed after 3s: " in log and " other process(es) sh[" in log


def test_restart_publishes_a_new_run_and_leaves_the_old_one_alone(fresh):
    box = fresh()
    old_ptr, old_data, _elapsed = box.wait_pointer()
    old_manifest = old_ptr["CONTAINER_RUN_META_JSON_HOST"]
    h.docker("restart", box.name, timeout=60)
    old_bytes, old_mtime = open(old_manifest, "rb").read(), os.stat(old_manifest).st_mtime_ns

    def new_pointer():
        try:
            ptr = box.root.read_pointer()
        except FileNotFoundError:
            return None
        return ptr if ptr["CONTAINER_RUN_META_JSON_HOST"] != old_manifest else None
    new_ptr = h.wait_for(new_pointer, 30, "a pointer naming a new run")
    new_data = load(new_ptr["CONTAINER_RUN_META_JSON_HOST"])
    assert new_data["container_run_id"] != old_data["container_run_id"]
    assert runid.is_run_id(new_data["container_run_id"])
    assert new_data["init"]["passwd_entry"] == "unchanged"  # entries from the first start are reused
    assert open(old_manifest, "rb").read() == old_bytes and os.stat(old_manifest).st_mtime_ns == old_mtime
    logs = sorted(os.listdir(box.root.path("telemetry", "logs")))
    assert logs == sorted([old_data["container_run_id"] + ".log", new_data["container_run_id"] + ".log"])
    new_log = open(new_data["paths"]["host"]["log_file"], encoding="utf-8").read()
    assert "removed the previous run's pointer" in new_log
    assert "run %s started" % new_data["container_run_id"] in new_log
    assert "run %s started" % old_data["container_run_id"] not in new_log
    for area in ("telemetry", "profiles"):
        assert [p for p, st in box.root.files(area) if st.st_uid == 0] == []


def test_restarts_keep_the_telemetry_data_of_the_newest_runs_only(fresh):
    box = fresh(env={"SGLANG_PREP_TELEMETRY_KEEP_RUNS": "2"})
    _ptr, first, _elapsed = box.wait_pointer()
    old_runs = ["container-run-20200101T0000%02dZ-0000000%d" % (second, second) for second in range(3)]
    for name in old_runs + ["operator-notes"]:  # as the host user, like the runs a real host accumulates
        path = box.root.path("telemetry", "prometheus", name, "tsdb")
        os.makedirs(path)
        for part in (path, os.path.dirname(path)):
            os.chown(part, h.TEST_UID, h.TEST_GID)  # test setup only
    h.docker("restart", box.name, timeout=60)

    def new_run():
        try:
            data = load(box.root.read_pointer()["CONTAINER_RUN_META_JSON_HOST"])
        except (FileNotFoundError, ValueError):
            return None
        return data if data["container_run_id"] != first["container_run_id"] else None
    second = h.wait_for(new_run, 30, "a pointer naming a new run")
    # the new run and the newest before it (the first start); the older runs' data went, the operator's stays
    assert sorted(os.listdir(box.root.path("telemetry", "prometheus"))) == sorted(
        [first["container_run_id"], second["container_run_id"], "operator-notes"])
    retention = second["init"]["telemetry_retention"]
    assert retention["keep_runs"] == 2
    assert sorted(os.path.basename(p) for p in retention["pruned"]) == old_runs
    assert "pruned the telemetry data of 3 older run(s)" in open(second["paths"]["host"]["log_file"]).read()
    # the records of every run stay
    assert os.path.exists(first["paths"]["host"]["manifest"])


def test_unwritable_profiles_stops_init_with_a_clear_message_and_no_pointer(fresh):
    box = fresh(owners={"profiles": (0, 0)})
    code = box.wait_exit(30)
    logs = box.logs()
    assert code != 0
    assert "/profiles" in logs and box.root.path("profiles") in logs
    assert "Owner seen: 0:0" in logs and "owner expected: %d:%d" % (h.TEST_UID, h.TEST_GID) in logs
    assert not os.path.exists(box.root.pointer)
    assert box.root.files("telemetry") == []  # nothing else written either


def test_root_uid_is_refused(fresh):
    box = fresh(env={"SGLANG_PREP_UID": "0"})
    assert box.wait_exit(30) != 0
    assert "may not be root" in box.logs()
    assert not os.path.exists(box.root.pointer)


def test_uid_already_named_in_the_image_still_gets_devuser(fresh):
    """nobody (65534) exists in every Debian/Ubuntu image, like ubuntu (1000) in SGLang images."""
    box = fresh(uid=65534, gid=65534)
    _ptr, data, _elapsed = box.wait_pointer()
    assert box.exec("id", "-u").stdout.strip() == "65534"
    assert data["devuser"]["uid"] == 65534
    st = os.stat(data["paths"]["host"]["manifest"])
    assert (st.st_uid, st.st_gid) == (65534, 65534)

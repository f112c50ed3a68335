"""Verify a primed host (after converge, idempotence and the side effects) with testinfra."""

import json
import os
import sys

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(PROJECT, "collections"))

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, pointer  # noqa: E402

testinfra_hosts = ["local://"]

USER = os.environ.get("SGLANG_PREP_MOLECULE_USER", "sglang-molecule")
CONTAINER = os.environ.get("SGLANG_PREP_MOLECULE_CONTAINER", "sglang-prep-molecule")
MODEL = "/models/tiny-moe-fp8-block"


def root(host):
    return host.user(USER).home + "/sglang-observability"


def read_json(host, path):
    return json.loads(host.file(path).content_string)


def current_run(host):
    ptr = pointer.parse_pointer(host.file(root(host) + "/telemetry/" + contract.POINTER_NAME).content_string)
    manifest = read_json(host, ptr["host"])
    return manifest["container_run_id"], manifest


def test_the_host_user_is_unprivileged_and_not_1000(host):
    user = host.user(USER)
    assert user.exists and user.uid not in (0, 1000)


def test_every_file_under_telemetry_and_profiles_belongs_to_the_host_user(host):
    uid = host.user(USER).uid
    out = host.check_output("find %s/telemetry %s/profiles ! -uid %s -printf '%%p owner=%%u\\n'", root(host), root(host), str(uid))
    assert out == "", "files not owned by %s:\n%s" % (USER, out)


def test_pointer_and_manifest_belong_to_the_host_user(host):
    run_id, manifest = current_run(host)
    for path in (root(host) + "/telemetry/" + contract.POINTER_NAME, manifest["paths"]["host"]["manifest"]):
        assert host.file(path).user == USER


def test_exactly_one_session_log_per_run(host):
    runs = host.check_output("ls %s/telemetry/container_runs", root(host)).split()
    run_ids = sorted(name[:-5] for name in runs if name.endswith(".json"))
    logs = sorted(name[:-4] for name in host.check_output("ls %s/telemetry/logs", root(host)).split() if name.endswith(".log"))
    assert len(run_ids) >= 2, "the side effects restart the container, so there are at least two runs"
    assert logs == run_ids


def model_dir(manifest):
    """The model's records in the run: container_runs/<run>/models/<model key>/."""
    return manifest["paths"]["host"]["run_dir"] + "/models/" + contract.model_key(MODEL)


def test_the_current_run_has_every_stage_json_and_an_ok_prep_result(host):
    run_id, manifest = current_run(host)
    run_dir = model_dir(manifest)
    for stage in contract.STAGE_ORDER:
        result = read_json(host, "%s/stages/%s.json" % (run_dir, stage))
        assert result["run_id"] == run_id and result["status"] in ("ok", "noop"), result
        assert result["error_type"] is None
    prep = read_json(host, run_dir + "/prep_result.json")
    assert prep["status"] == "ok"
    assert sorted(prep["stages"]) == sorted(contract.STAGE_ORDER)
    assert prep["run"]["run_id"] == run_id and prep["run"]["signature_group"]


def test_every_stage_recorded_its_signature(host):
    for stage in contract.STAGE_ORDER:
        path = root(host) + "/profiles/" + os.path.relpath(contract.signature_path(stage, MODEL), contract.PROFILES_ROOT)
        signature = host.file(path)
        assert signature.exists and signature.user == USER, path
        assert read_json(host, path)["stage"] == stage


def test_no_stage_is_left_in_progress(host):
    markers = root(host) + "/profiles/" + os.path.relpath(contract.IN_PROGRESS_DIR, contract.PROFILES_ROOT)
    assert not host.file(markers).exists or host.check_output("ls -A %s", markers) == ""


def serving_port(host):
    """The serving server's port (serve.yml ran last in the side effects): prime_server_port of the scenario."""
    run_id, manifest = current_run(host)
    record = read_json(host, model_dir(manifest) + "/stages/serve.json")
    return int(record["server"]["port"])


def test_no_stage_server_is_left_and_port_30000_is_free(host):
    assert host.docker(CONTAINER).is_running
    processes = host.check_output("docker top %s -o pid,args", CONTAINER)
    servers = [line for line in processes.splitlines() if "sglang.launch_server" in line]
    # the one server left is the serving server (serve.yml), on the serving port
    assert len(servers) == 1 and "--port %d" % serving_port(host) in servers[0], processes
    assert "tuning_fused_moe" not in processes, processes
    # bridge network: the stage servers' port lives in the container's network namespace. Free means
    # nothing listens there and the next stage server can bind it (as servers do, with SO_REUSEADDR,
    # since the last server's closed connections may linger in TIME_WAIT).
    probe = ("import socket\n"
             "c = socket.socket()\n"
             "assert c.connect_ex(('127.0.0.1', %d)) != 0, 'something listens'\n"
             "s = socket.socket()\n"
             "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
             "s.bind(('127.0.0.1', %d))\n"
             "print('free')" % (contract.SERVER_PORT, contract.SERVER_PORT))
    assert host.check_output("docker exec %s python3 -c %s", CONTAINER, probe) == "free"


def test_the_container_user_has_the_host_user_uid(host):
    uid = host.user(USER).uid
    assert host.check_output("docker exec -u %s %s id -u", contract.DEVUSER, CONTAINER) == str(uid)


def test_the_container_is_fully_specified(host):
    info = host.docker(CONTAINER).inspect()
    assert info["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")
    assert not info["HostConfig"].get("DeviceRequests")
    env = dict(item.split("=", 1) for item in info["Config"]["Env"])
    assert env[contract.ENV_UID] == str(host.user(USER).uid)
    assert env[contract.ENV_HOST_ROOTS["telemetry"]] == root(host) + "/telemetry"
    runtime = [m for m in info["Mounts"] if m["Destination"] == contract.RUNTIME_MOUNT]
    assert runtime and runtime[0]["RW"] is False


def test_the_serve_check_proved_zero_jit_with_its_evidence(host):
    run_id, manifest = current_run(host)
    run_dir = model_dir(manifest)
    check = read_json(host, run_dir + "/stages/serve_check.json")
    assert check["status"] in ("ok", "noop") and check["zero_jit"] is True, check.get("message")
    if check["status"] == "ok":
        evidence = check["serve_check"]
        assert evidence["zero_jit"] is True and evidence["findings"] == []
        assert evidence["requests"] and all(r["ok"] for r in evidence["requests"])
        assert "--enable-metrics" in check["server"]["argv"] and "--random-seed=7" in check["server"]["argv"]
    prep = read_json(host, run_dir + "/prep_result.json")
    assert prep["zero_jit"] is True and prep["zero_jit_reason"].startswith("yes: ")


def test_the_serving_server_runs_as_devuser_and_listens_on_the_serving_port(host):
    uid = host.user(USER).uid
    rows = host.check_output("docker top %s -eo pid,uid,args", CONTAINER).splitlines()[1:]
    servers = [row.split(None, 2) for row in rows if "sglang.launch_server" in row]
    assert servers and all(int(uid_seen) == uid for _pid, uid_seen, _args in servers), rows
    port = serving_port(host)
    probe = "import socket; s = socket.create_connection(('127.0.0.1', %d), 5); print('listens')" % port
    assert host.check_output("docker exec %s python3 -c %s", CONTAINER, probe) == "listens"


def test_prometheus_in_the_container_scrapes_the_serving_server(host):
    # the sglang job (scraped every second) sees the serving server up and its SGLang metrics: waited for, not slept
    query = "up{job=\"sglang\"} == 1 and on(instance) count by (instance) ({__name__=~\"sglang:.*\", job=\"sglang\"}) > 0"
    code = ("import json, time, urllib.parse, urllib.request\n"
            "deadline = time.monotonic() + 30\n"
            "while True:\n"
            "    url = 'http://127.0.0.1:9090/api/v1/query?query=' + urllib.parse.quote(%r)\n"
            "    result = json.loads(urllib.request.urlopen(url, timeout=5).read().decode())['data']['result']\n"
            "    if result or time.monotonic() > deadline:\n"
            "        break\n"
            "    time.sleep(0.5)\n"
            "print(json.dumps(result))" % query)
    result = json.loads(host.check_output("docker exec %s python3 -c %s", CONTAINER, code))
    assert result and result[0]["metric"]["instance"].endswith(":%d" % serving_port(host)), result

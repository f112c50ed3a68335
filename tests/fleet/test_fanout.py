"""Fan-out (-e prime_fanout=true): one builder per signature group compiles, the other hosts install its bundle.

The three SSH test hosts, with the stand-in's compile and tuning cost raised so that compiling is what a run
costs. In the order of an operator's day: the three hosts in one signature group (fleet3 given the H100
stand-in too): one compiles, two install the bundle and prove it with the serve check, all three pass; the
same run again is a no-op everywhere; fleet3 back on its A100 stand-in is a group of its own, so the run has
two builders and fleet3 primes itself. Bundles move through a bundle store directory (a shared filesystem:
here, one directory every host user can write); then each other way a bundle moves: host to host over SSH (rsync
on the builder, logging in to each receiver with the builder user's own key), from the store served over HTTP,
and through the controller; a receiver whose model changed after the groups were formed (it refuses the bundle
and primes itself). Last, the faults: a damaged bundle, a full disk, another driver, a failing builder.
"""

import gzip
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

import fleet_hosts

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import registry

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_DIR = os.path.join(REPO, "tests", "standins", "models", "tiny-moe")

PRIMING = registry.priming_stages()
SERVE_CHECK = registry.SERVE_CHECK.name
# Compiling costs something, so that installing instead is visible (the stand-in sleeps this long per cache
# family it compiles, and this long in all for the MoE tuning).
COST = {"SGLANG_STANDIN_COMPILE_S": "4", "SGLANG_STANDIN_TUNER_S": "4"}
H100 = fleet_hosts.GPUS[0]


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def extra_inventory(path, gpus, host_vars=None):
    """An inventory that overrides each host's prime_extra_env ({host: stand-in GPU env}) and adds host_vars."""
    lines = ["all:", "  children:", "    sglang_nodes:", "      hosts:"]
    for host, gpu in sorted(gpus.items()):
        env = dict(gpu, **fleet_hosts.STANDIN_TIMING)
        env.update(COST)
        lines.append("        %s:" % host)
        lines.append("          prime_extra_env: %s" % json.dumps(env))
        for key, value in sorted(((host_vars or {}).get(host) or {}).items()):
            lines.append("          %s: %s" % (key, json.dumps(value)))
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def store():
    """The bundle store: a directory every host user sees and can write (as on a shared filesystem)."""
    path = "/tmp/sglang-prep-fleet-bundle-store"
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    os.chmod(path, 0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def bundle_server(store):
    """The bundle store served over HTTP on this machine, as a web server in front of a store would: (URL, requests),
    every request kept as (path, status)."""
    requests = []

    class StoreHandler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=store, **kwargs)

        def log_request(self, code="-", size="-"):
            requests.append((self.path, int(code) if str(code).isdigit() else code))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StoreHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d/" % server.server_address[1], requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def inventories(tmp_path_factory):
    base = tmp_path_factory.mktemp("fanout")
    names = [h["name"] for h in fleet_hosts.hosts(3)]
    same = extra_inventory(str(base / "one-group.yml"), dict((name, H100) for name in names))
    split = extra_inventory(str(base / "two-groups.yml"), dict((h["name"], h["gpu"]) for h in fleet_hosts.hosts(3)))
    other_driver = dict(H100, SGLANG_STANDIN_DRIVER="575.51.03")
    faults = extra_inventory(str(base / "faults.yml"), {"fleet1": H100, "fleet2": H100, "fleet3": other_driver},
                             host_vars={"fleet2": {"prime_disk_headroom_mb": 100 * 1024 * 1024}})
    builder_fails = extra_inventory(str(base / "builder-fails.yml"),
                                    {"fleet1": dict(H100, SGLANG_STANDIN_TUNER_FAULT="fail"), "fleet2": H100, "fleet3": H100})
    return {"one_group": same, "two_groups": split, "faults": faults, "builder_fails": builder_fails}


def fresh(fleet):
    """Every host fresh again (no container, no caches), its model staged."""
    fleet.fresh()


def empty_store(store):
    for name in os.listdir(store):
        os.unlink(os.path.join(store, name))


def nothing_installed(fleet, name):
    """No cache file and no staging left under the host's profiles/ (a refused bundle installs nothing)."""
    profiles = os.path.join(fleet.host_root(name), "profiles")
    found = []
    for cache in ("deep_gemm", "moe_configs", "flashinfer", "torchinductor", "triton", ".bundle-staging"):
        for root, _dirs, files in os.walk(os.path.join(profiles, cache)):
            found += [os.path.join(root, f) for f in files]
    return found


class OnFirstBundle(threading.Thread):
    """Acts once (act(path)) as soon as the first bundle appears in the store, before the receivers copy it."""

    def __init__(self, store):
        super().__init__(daemon=True)
        self.store, self.done, self.stop = store, None, threading.Event()

    def act(self, path):
        raise NotImplementedError

    def around(self, work):
        """work(), with this thread acting on the first bundle meanwhile; stopped and joined after: work's result."""
        self.start()
        try:
            return work()
        finally:
            self.stop.set()
            self.join()

    def run(self):
        while not self.stop.is_set():
            # the copy writes a hidden temporary file, then renames it into place: a named bundle is complete
            names = [n for n in os.listdir(self.store) if n.endswith(".tar.gz") and not n.startswith(".")]
            if names:
                path = os.path.join(self.store, names[0])
                self.act(path)
                self.done = path
                return
            time.sleep(0.01)


class Damage(OnFirstBundle):
    """Damages the first bundle in the store, as a broken disk or transfer would."""

    def __init__(self, store, how):
        super().__init__(store)
        self.how = how

    def act(self, path):
        size = os.path.getsize(path)
        with open(path, "r+b") as handle:
            if self.how == "truncate":
                handle.truncate(size // 2)
            else:
                handle.seek(size // 2)
                byte = handle.read(1)
                handle.seek(size // 2)
                handle.write(bytes([byte[0] ^ 0xFF]))


def fanout(fleet, store, inventory):
    return fleet.prime("-e", "prime_fanout=true", "-e", "prime_bundle_store=" + store, inventories=[inventory])


def stage_json(fleet, row, stage):
    return read_json(os.path.join(os.path.dirname(row["prep_result_path"]), "stages", stage + ".json"))


def owned_by_host_user(fleet, name):
    """Every path under the host's profiles/ belongs to the host user (nothing root-owned, nothing foreign)."""
    uid = fleet.hosts[name]["uid"]
    wrong = []
    for root, dirs, files in os.walk(os.path.join(fleet.host_root(name), "profiles")):
        for entry in dirs + files:
            st = os.lstat(os.path.join(root, entry))
            if st.st_uid != uid:
                wrong.append((os.path.join(root, entry), st.st_uid))
    return wrong


def test_one_group_one_compiles_two_install_all_prove_it(fleet, store, inventories):
    run = fanout(fleet, store, inventories["one_group"])
    assert run.rc == 0, run.tail()
    out = run.output
    # the groups are shown before anything runs
    shown = out.index("1 signature group(s) among 3 host(s)")
    assert shown < out.index("Fan-out | Builders prime first"), run.tail()
    assert "builder fleet1; receivers fleet2, fleet3" in out

    report = fleet.latest_report()
    rows = dict((row["host"], row) for row in report["hosts"])
    groups = report["summary"]["fanout"]
    assert len(groups) == 1, groups
    group = list(groups.values())[0]
    assert group["builder"] == "fleet1" and group["receivers"] == ["fleet2", "fleet3"]
    assert group["installed_on"] == ["fleet2", "fleet3"] and group["primed_itself"] == []
    bundled = rows["fleet2"]["fanout"]["installed"]
    assert bundled and set(bundled) <= set(PRIMING)
    assert group["compiles_avoided"] == 2 * len(bundled) and group["bytes_moved"] > 0

    # the builder compiled; the receivers installed and compiled nothing; every host's serve check proves zero JIT
    for stage in bundled:
        assert rows["fleet1"]["stages"][stage]["status"] == "ok" and rows["fleet1"]["stages"][stage]["ran"], stage
    digest = rows["fleet1"]["fanout"]["bundle_digest"]
    for name in ("fleet2", "fleet3"):
        row = rows[name]
        assert row["status"] == "changed", row
        for stage in bundled:
            assert row["stages"][stage]["status"] == "installed", (name, stage, row["stages"][stage])
            record = stage_json(fleet, row, stage)
            assert record["installed_from"]["source_host"] == "fleet1"
            assert record["installed_from"]["bundle_digest"] == digest
        staging = os.path.join(fleet.host_root(name), "profiles", ".bundle-staging")
        assert not os.path.isdir(staging) or os.listdir(staging) == []
    for name in ("fleet1", "fleet2", "fleet3"):
        assert rows[name]["stages"][SERVE_CHECK]["status"] == "ok", (name, rows[name]["stages"][SERVE_CHECK])
        assert rows[name]["zero_jit"] is True, (name, rows[name]["zero_jit_reason"])
        assert owned_by_host_user(fleet, name) == []
    assert os.path.isfile(os.path.join(store, digest + ".tar.gz"))
    assert "## Fan-out" in open(os.path.join(fleet.report_dir, "fleet-report-latest.md")).read()


def test_the_same_run_again_is_a_noop_everywhere(fleet, store, inventories):
    run = fanout(fleet, store, inventories["one_group"])
    assert run.rc == 0, run.tail()
    for name in ("fleet1", "fleet2", "fleet3"):
        assert run.recap[name]["changed"] == 0, (name, run.recap, run.tail())
    report = fleet.latest_report()
    for row in report["hosts"]:
        assert row["status"] == "ok", row
        for stage in PRIMING:
            assert row["stages"][stage]["ran"] is False, (row["host"], stage, row["stages"][stage])
    group = list(report["summary"]["fanout"].values())[0]
    assert group["installed_on"] == [] and group["bytes_moved"] == 0
    # --check shows the groups, changing nothing
    check = fleet.prime("-e", "prime_fanout=true", "-e", "prime_bundle_store=" + store, "--check",
                        inventories=[inventories["one_group"]])
    assert check.rc == 0, check.tail()
    assert "1 signature group(s) among 3 host(s)" in check.output and "builder fleet1; receivers fleet2, fleet3" in check.output
    assert all(check.recap[name]["changed"] == 0 for name in ("fleet1", "fleet2", "fleet3")), check.recap


def test_two_groups_have_two_builders(fleet, store, inventories):
    """fleet3 back on its A100 stand-in: a group of its own, so it builds for itself; the H100 group has nothing to do."""
    run = fanout(fleet, store, inventories["two_groups"])
    assert run.rc == 0, run.tail()
    assert "2 signature group(s) among 3 host(s)" in run.output
    report = fleet.latest_report()
    builders = sorted(group["builder"] for group in report["summary"]["fanout"].values())
    assert builders == ["fleet1", "fleet3"]
    rows = dict((row["host"], row) for row in report["hosts"])
    assert rows["fleet3"]["fanout"]["role"] == "alone"
    ran = [stage for stage in PRIMING if rows["fleet3"]["stages"][stage]["ran"]]
    assert ran, rows["fleet3"]["stages"]
    assert all(rows["fleet3"]["stages"][stage]["status"] in ("ok", "skipped") for stage in PRIMING)
    # after the runs above the H100 group has nothing to do; run alone (fresh hosts) fleet1 builds for fleet2
    assert rows["fleet1"]["status"] in ("ok", "changed") and rows["fleet2"]["status"] in ("ok", "changed")
    assert rows["fleet2"]["fanout"]["role"] == "receiver"


def key_fingerprint(public_key_path):
    """The SHA256 fingerprint sshd logs for a key ("SHA256:...")."""
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", public_key_path], stdout=subprocess.PIPE, text=True, check=True)
    return out.stdout.split()[1]


def receivers_installed(fleet, report, receivers=("fleet2", "fleet3")):
    """The receivers installed the builder's bundle (every bundled stage) and proved it; returns the bundle digest."""
    rows = dict((row["host"], row) for row in report["hosts"])
    digest = rows["fleet1"]["fanout"]["bundle_digest"]
    assert digest, rows["fleet1"]["fanout"]
    for name in receivers:
        row = rows[name]
        assert row["status"] == "changed", row
        assert row["fanout"]["installed"] and row["fanout"]["bundle_digest"] == digest, row["fanout"]
        for stage in row["fanout"]["installed"]:
            assert row["stages"][stage]["status"] == "installed", (name, stage, row["stages"][stage])
            assert stage_json(fleet, row, stage)["installed_from"]["bundle_digest"] == digest
        assert row["stages"][SERVE_CHECK]["status"] == "ok" and row["zero_jit"] is True, (name, row["zero_jit_reason"])
        assert owned_by_host_user(fleet, name) == []
    return digest


@pytest.mark.parametrize("transfer", ["ssh", "url", "controller"])
def test_each_transfer_brings_the_bundle(fleet, store, inventories, bundle_server, transfer):
    """The builder is primed (or primes); the two fresh receivers get its bundle over ssh (host to host: rsync on the
    builder logs in to each receiver with the builder user's key, nothing passes through the controller or the
    store), over http(s) from the served store (checked by sha256), or through the controller (only when asked)."""
    fleet.fresh(["fleet2", "fleet3"])
    empty_store(store)
    url, requests = bundle_server
    del requests[:]
    sshd_log = os.path.join(fleet.status["state_dir"], "sshd.log")
    log_start = os.path.getsize(sshd_log)
    extra = ["-e", "prime_fanout=true", "-e", "prime_bundle_transfer=" + transfer]
    if transfer == "url":
        extra += ["-e", "prime_bundle_store=" + store, "-e", "prime_bundle_url=" + url]
    run = fleet.prime(*extra, inventories=[inventories["one_group"]])
    assert run.rc == 0, run.tail()
    report = fleet.latest_report()
    digest = receivers_installed(fleet, report)
    group = list(report["summary"]["fanout"].values())[0]
    assert group["transfer"] == transfer and group["installed_on"] == ["fleet2", "fleet3"], group
    assert group["bytes_moved"] > 0 and group["compiles_avoided"] > 0, group
    bundle_name = digest + ".tar.gz"
    controller_copy = os.path.join(fleet.report_dir, "bundles", bundle_name)
    if transfer == "ssh":
        with open(sshd_log) as handle:
            handle.seek(log_start)
            logins = handle.read()
        builder_key = key_fingerprint(os.path.join(fleet.hosts["fleet1"]["home"], ".ssh", "id_ed25519.pub"))
        for name in ("fleet2", "fleet3"):
            user = fleet.hosts[name]["user"]
            assert re.search(r"Accepted publickey for %s from \S+ port \d+ ssh2: ED25519 %s" % (user, re.escape(builder_key)), logins), (
                "no SSH login of fleet1's key on %s in %s" % (name, sshd_log))
        assert os.listdir(store) == [] and not os.path.exists(controller_copy)
    elif transfer == "url":
        got = [path for path, code in requests if path == "/" + bundle_name and code == 200]
        assert len(got) == 2, requests  # one download per receiver
        assert not os.path.exists(controller_copy)
    else:
        assert os.path.isfile(controller_copy)
        assert os.listdir(store) == []


SECRET = "planted-secret-4f1d2c9b7a"


def stage_model_as(fleet, name, model):
    """Another stand-in model under the host's models/ (as the host user, as an operator stages one)."""
    source = os.path.join(REPO, "tests", "standins", "models", model)
    return fleet_hosts.stage_model(fleet.hosts[name], source)


def plant_env_file(fleet, name):
    """A prime_env_file with a secret (KEY=VALUE, mode 0600, the host user's), as the docs ask for one."""
    host = fleet.hosts[name]
    path = os.path.join(host["home"], "planted.env")
    subprocess.run(["runuser", "-u", host["user"], "--", "sh", "-c",
                    "umask 077 && printf 'HF_TOKEN=%s\\n' \"$1\" > \"$2\"", "sh", SECRET + "-env-file", path], check=True)
    return path


def files_holding(paths, secret):
    """Every file under ``paths`` (gzip'd bundles unpacked) whose bytes hold ``secret``."""
    found = []
    for top in paths:
        walk = [(top, [], [""])] if os.path.isfile(top) else os.walk(top)
        for root, _dirs, files in walk:
            for name in files:
                path = os.path.join(root, name) if name else root
                with open(path, "rb") as handle:
                    data = handle.read()
                if path.endswith(".tar.gz"):
                    data = gzip.decompress(data)
                if secret.encode() in data:
                    found.append(path)
    return found


def test_a_receiver_primed_for_two_models_keeps_serving_them_after_a_third_models_bundle(fleet, store, inventories, tmp_path):
    """fleet2 primed tiny-moe (A) and tiny-moe-int8 (B) itself; then fleet1 builds tiny-moe-fp8-block (C) and fleet2,
    logged in as root with prime_host_user, receives its bundle over ssh and installs it. A and B still serve from
    fleet2's caches: every priming stage a noop, the serve check (re-run) with zero JIT. Secrets planted in the run
    (prime_stage_env, prime_env_file) are in no bundle, manifest, fleet report or log."""
    model_a, model_b, model_c = "/models/tiny-moe", "/models/tiny-moe-int8", "/models/tiny-moe-fp8-block"
    for name in ("fleet1", "fleet2"):
        stage_model_as(fleet, name, "tiny-moe-int8")
        stage_model_as(fleet, name, "tiny-moe-fp8-block")
    for model in (model_a, model_b):  # fleet2 primes A (a noop when the tests above left it primed) and B itself
        run = fleet.prime("--limit", "fleet2", "-e", "model=" + model, inventories=[inventories["one_group"]])
        assert run.rc == 0, run.tail()
    rows = dict((row["host"], row) for row in fleet.latest_report()["hosts"])
    assert rows["fleet2"]["status"] in ("ok", "changed") and rows["fleet2"]["zero_jit"] is True, rows["fleet2"]

    env_files = dict((name, plant_env_file(fleet, name)) for name in ("fleet1", "fleet2"))
    root_login = extra_inventory(str(tmp_path / "root-login.yml"), {"fleet1": H100, "fleet2": H100}, host_vars={
        "fleet1": {"prime_env_file": env_files["fleet1"]},
        "fleet2": {"ansible_user": "root", "prime_host_user": fleet.hosts["fleet2"]["user"], "prime_env_file": env_files["fleet2"]}})
    secrets = {"prime_stage_env": {"TORCHINDUCTOR_PLANTED_TOKEN": SECRET + "-stage-env"}}
    extra = ["--limit", "fleet1,fleet2", "-e", "model=" + model_c, "-e", "prime_fanout=true", "-e", "prime_bundle_transfer=ssh",
             "-e", json.dumps(secrets)]
    run = fleet.prime(*extra, inventories=[inventories["one_group"], root_login])
    assert run.rc == 0, run.tail()
    report = fleet.latest_report()
    rows = dict((row["host"], row) for row in report["hosts"])
    digest = rows["fleet1"]["fanout"]["bundle_digest"]
    assert rows["fleet2"]["fanout"]["installed"] and rows["fleet2"]["fanout"]["bundle_digest"] == digest, rows["fleet2"]
    assert rows["fleet2"]["stages"][SERVE_CHECK]["status"] == "ok" and rows["fleet2"]["zero_jit"] is True
    bundle_on_fleet2 = os.path.join(fleet.host_root("fleet2"), "profiles", ".bundles", digest + ".tar.gz")
    assert os.stat(bundle_on_fleet2).st_uid == fleet.hosts["fleet2"]["uid"], "the ssh transfer left the bundle root-owned"
    assert owned_by_host_user(fleet, "fleet2") == []

    # no planted secret in any bundle, manifest, fleet report or log
    places = [os.path.join(fleet.host_root(name), "profiles", ".bundles") for name in ("fleet1", "fleet2")]
    places += [os.path.join(fleet.host_root(name), "telemetry", "logs") for name in ("fleet1", "fleet2")]
    places += [fleet.report_dir, run.log_path]
    for secret in (SECRET + "-stage-env", SECRET + "-env-file"):
        assert files_holding(places, secret) == [], secret

    # A and B still serve from fleet2's own caches: nothing to prime, and the serve check compiles nothing
    for model in (model_a, model_b):
        again = fleet.prime("--limit", "fleet2", "-e", "model=" + model, "-e", json.dumps({"prime_stage_modes": {SERVE_CHECK: "rebuild"}}),
                            inventories=[inventories["one_group"]])
        assert again.rc == 0, again.tail()
        row = dict((r["host"], r) for r in fleet.latest_report()["hosts"])["fleet2"]
        for stage in PRIMING:
            assert row["stages"][stage]["ran"] is False, (model, stage, row["stages"][stage])
        assert row["stages"][SERVE_CHECK]["status"] == "ok" and row["stages"][SERVE_CHECK]["ran"] is True, row["stages"][SERVE_CHECK]
        assert row["zero_jit"] is True, (model, row["zero_jit_reason"])


class ChangeModel(OnFirstBundle):
    """Once the builder's bundle is in the store (the groups long formed), changes a receiver's model config, as
    an operator re-staging the model during the run would: that receiver's signature no longer matches the bundle's."""

    def __init__(self, store, config_path):
        super().__init__(store)
        self.config_path = config_path

    def act(self, path):
        with open(self.config_path, "a") as handle:
            handle.write("\n")  # still the same JSON, another model_config_sha256


def test_a_receiver_whose_signature_changed_refuses_the_bundle_and_primes_itself(fleet, store, inventories):
    fleet.fresh(["fleet2", "fleet3"])
    empty_store(store)
    config_path = os.path.join(fleet.host_root("fleet3"), "models", os.path.basename(MODEL_DIR), "config.json")
    with open(config_path, "rb") as handle:
        original = handle.read()
    change = ChangeModel(store, config_path)
    run = change.around(lambda: fanout(fleet, store, inventories["one_group"]))
    try:
        assert change.done, "the bundle never reached the store"
        assert run.rc == 0, run.tail()
        assert "builder fleet1; receivers fleet2, fleet3" in run.output  # one group when the run began
        report = fleet.latest_report()
        receivers_installed(fleet, report, receivers=("fleet2",))
        row = dict((r["host"], r) for r in report["hosts"])["fleet3"]
        assert row["status"] == "changed", row
        assert row["fanout"]["installed"] == [] and row["fanout"]["error_type"] == "bundle_mismatch", row["fanout"]
        assert "model_config_sha256" in row["fanout"]["message"], row["fanout"]["message"]
        primed = [stage for stage in PRIMING if row["stages"][stage]["ran"]]
        assert primed, row["stages"]
        for stage in PRIMING:
            assert row["stages"][stage]["status"] in ("ok", "skipped"), (stage, row["stages"][stage])
        assert row["stages"][SERVE_CHECK]["status"] == "ok" and row["zero_jit"] is True, row["zero_jit_reason"]
        staging = os.path.join(fleet.host_root("fleet3"), "profiles", ".bundle-staging")
        assert not os.path.isdir(staging) or os.listdir(staging) == []
        group = list(report["summary"]["fanout"].values())[0]
        assert group["installed_on"] == ["fleet2"] and group["primed_itself"] == ["fleet3"], group
    finally:
        with open(config_path, "wb") as handle:
            handle.write(original)


def priming_span(fleet, row):
    """(first started_at, last finished_at) of the priming stages a host ran, from its stage records (UTC ISO)."""
    records = [stage_json(fleet, row, stage) for stage in PRIMING if row["stages"][stage]["ran"]]
    assert records, row["stages"]
    return min(r["started_at"] for r in records), max(r["finished_at"] for r in records)


def failed_row(report, name):
    row = dict((r["host"], r) for r in report["hosts"])[name]
    assert row["status"] == "failed", row
    return row


@pytest.mark.parametrize("how", ["corrupt", "truncate"])
def test_a_damaged_bundle_fails_its_receivers_alone_and_installs_nothing(fleet, store, inventories, how):
    fresh(fleet)
    empty_store(store)
    damage = Damage(store, how)
    run = damage.around(lambda: fanout(fleet, store, inventories["one_group"]))
    assert damage.done, "the bundle never reached the store"
    assert run.rc != 0
    report = fleet.latest_report()
    rows = dict((r["host"], r) for r in report["hosts"])
    assert rows["fleet1"]["status"] == "changed" and rows["fleet1"]["zero_jit"] is True
    for name in ("fleet2", "fleet3"):
        row = failed_row(report, name)
        assert row["error_type"] == "bundle_corrupt", row
        assert "sha256" in row["message"], row["message"]
        assert nothing_installed(fleet, name) == []


def test_a_full_disk_and_another_driver_stay_on_their_hosts(fleet, store, inventories):
    """fleet2 has less free disk than the bundle needs: insufficient_disk, nothing installed; fleet3 has another
    driver: a signature group of its own, so it primes itself and never receives the H100 bundle."""
    fresh(fleet)
    empty_store(store)
    run = fanout(fleet, store, inventories["faults"])
    assert "2 signature group(s) among 3 host(s)" in run.output, run.tail()
    report = fleet.latest_report()
    rows = dict((r["host"], r) for r in report["hosts"])
    row = failed_row(report, "fleet2")
    assert row["error_type"] == "insufficient_disk" and "free" in row["message"], row
    assert nothing_installed(fleet, "fleet2") == []
    assert rows["fleet1"]["status"] == "changed" and rows["fleet1"]["fanout"]["role"] == "builder"
    assert rows["fleet3"]["status"] == "changed" and rows["fleet3"]["fanout"]["role"] == "alone"
    assert rows["fleet3"]["signature_group"] != rows["fleet1"]["signature_group"]
    assert [s for s in PRIMING if rows["fleet3"]["stages"][s]["ran"]], rows["fleet3"]["stages"]
    assert rows["fleet3"]["zero_jit"] is True
    # a host alone in its group primes beside the builders, not after the bundles have moved
    alone_started, _ = priming_span(fleet, rows["fleet3"])
    _, builder_finished = priming_span(fleet, rows["fleet1"])
    assert alone_started < builder_finished, (alone_started, builder_finished)


def test_a_failing_builder_fails_alone_and_its_receivers_prime_themselves(fleet, store, inventories):
    fresh(fleet)
    empty_store(store)
    run = fanout(fleet, store, inventories["builder_fails"])
    assert run.rc != 0
    report = fleet.latest_report()
    rows = dict((r["host"], r) for r in report["hosts"])
    row = failed_row(report, "fleet1")
    assert row["error_type"] == "tuner_failed", row
    for name in ("fleet2", "fleet3"):
        assert rows[name]["status"] == "changed", rows[name]
        assert rows[name]["fanout"]["installed"] == []
        assert all(rows[name]["stages"][s]["status"] in ("ok", "skipped") for s in PRIMING), rows[name]["stages"]
        assert rows[name]["zero_jit"] is True
    assert os.listdir(store) == []
    group = list(report["summary"]["fanout"].values())[0]
    assert group["primed_itself"] == ["fleet2", "fleet3"]


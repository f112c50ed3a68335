"""Bundles in a registry (-e prime_bundle_transfer=registry): a real Distribution registry with TLS and htpasswd auth.

The registry (Debian's docker-registry, scripts/oci_registry.py) listens on the Docker bridge's gateway, port 47443,
with a certificate of its own CA that the engine trusts through /etc/docker/certs.d (so TLS is verified: the engine
does not treat that address as insecure). In the order of an operator's days: fleet1 primes alone and publishes a
signed bundle; later, with fleet1's container stopped (no builder), a fresh fleet2 finds its group's bundle, installs
it and proves it with the serve check; fleet3 (A100, another group) finds none and primes itself. Then the faults,
each on a fresh fleet2: a signature by a key the allowed-signers file does not list, bad credentials, the registry
down (required: the host fails; not required: it primes itself), the artifact deleted (it primes itself), the
registry's CA not trusted by the engine (registry_tls) until prime_bundle_registry_ca installs it. Last, bundle_prune
keeps the newest N per model.
"""

import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import urllib.request

import pytest

import fleet_hosts
import oci_registry

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import registry

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRIMING = registry.priming_stages()
SERVE_CHECK = registry.SERVE_CHECK.name
TRUST_DIR = "/var/lib/sglang-prep-registry-trust"  # allowed-signers files every host user can read
SIGNING_KEY = ".ssh/sglang-prep-bundle-signing"    # under each host user's home, theirs, mode 0600


class Registry:
    """The running test registry and what a test asks it directly (the Distribution HTTP API, basic auth)."""

    def __init__(self, facts):
        self.facts = facts
        self.repository = facts["repository"]
        self.context = ssl.create_default_context(cafile=facts["ca"])

    def call(self, method, path, accept=None):
        request = urllib.request.Request("https://%s/v2/%s" % (self.facts["host"], path), method=method)
        token = base64.b64encode(("%s:%s" % (self.facts["username"], self.facts["password"])).encode()).decode()
        request.add_header("Authorization", "Basic " + token)
        if accept:
            request.add_header("Accept", accept)
        with urllib.request.urlopen(request, context=self.context, timeout=30) as answer:
            return answer.headers, answer.read()

    def tags(self):
        try:
            _headers, body = self.call("GET", oci_registry.REPOSITORY_PATH + "/tags/list")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise
        return sorted(json.loads(body).get("tags") or [])

    def bundle_tags(self):
        return [t for t in self.tags() if not t.endswith(".sig")]

    def delete_tag(self, tag):
        headers, _body = self.call("HEAD", "%s/manifests/%s" % (oci_registry.REPOSITORY_PATH, tag),
                                   accept="application/vnd.docker.distribution.manifest.v2+json")
        digest = headers["Docker-Content-Digest"]
        self.call("DELETE", "%s/manifests/%s" % (oci_registry.REPOSITORY_PATH, digest))
        return digest


@pytest.fixture(scope="module")
def oci(fleet):
    """The registry, empty; each host's signing key; allowed-signers files (the right key, another key)."""
    oci_registry.down()
    facts = oci_registry.up()
    shutil.rmtree(TRUST_DIR, ignore_errors=True)
    os.makedirs(TRUST_DIR, 0o755)
    key = os.path.join(TRUST_DIR, "signing")
    other = os.path.join(TRUST_DIR, "other")
    for path, who in ((key, "fleet-builders"), (other, "someone-else")):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", who, "-f", path], check=True)
    for name, path in (("allowed_signers", key), ("other_signers", other)):
        with open(path + ".pub") as handle:
            kind, blob = handle.read().split()[:2]
        with open(os.path.join(TRUST_DIR, name), "w") as handle:
            handle.write('fleet-builders namespaces="sglang-prep-bundle" %s %s\n' % (kind, blob))
        os.chmod(os.path.join(TRUST_DIR, name), 0o644)
    for host in fleet.hosts.values():
        target = os.path.join(host["home"], SIGNING_KEY)
        os.makedirs(os.path.dirname(target), 0o700, exist_ok=True)
        shutil.copyfile(key, target)
        os.chown(os.path.dirname(target), host["uid"], host["uid"])
        os.chown(target, host["uid"], host["uid"])
        os.chmod(target, 0o600)
    os.unlink(key)  # only the hosts hold it
    try:
        yield Registry(facts)
    finally:
        oci_registry.down()
        shutil.rmtree(TRUST_DIR, ignore_errors=True)


def settings(tmp_path, name="registry.yml", **overrides):
    """Extra vars in a file of mode 0600 (the password never goes onto a command line)."""
    facts = oci_registry.status()
    values = {"prime_bundle_transfer": "registry", "prime_bundle_registry": facts["repository"],
              "prime_bundle_registry_username": facts["username"], "prime_bundle_registry_password": facts["password"],
              "prime_bundle_signing_key": "~/" + SIGNING_KEY,
              "prime_bundle_allowed_signers": os.path.join(TRUST_DIR, "allowed_signers")}
    values.update(overrides)
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as handle:
        json.dump(values, handle)
    os.chmod(path, 0o600)
    return "@" + path


def rows(fleet):
    return dict((row["host"], row) for row in fleet.latest_report()["hosts"])


def assert_no_secret(run, fleet):
    password = oci_registry.status()["password"]
    assert password not in run.output
    for name in os.listdir(fleet.report_dir):
        path = os.path.join(fleet.report_dir, name)
        if os.path.isfile(path):
            with open(path, errors="replace") as handle:
                assert password not in handle.read(), path


def primed_itself(row):
    bundled = [s for s in PRIMING if row["stages"][s]["status"] != "skipped"]
    return bundled and all(row["stages"][s]["status"] == "ok" and row["stages"][s]["ran"] for s in bundled)


def test_a_host_primes_and_publishes_a_signed_bundle(fleet, oci, tmp_path):
    fleet.fresh()
    run = fleet.prime("-e", settings(tmp_path), "--limit", "fleet1")
    assert run.rc == 0, run.tail()
    row = rows(fleet)["fleet1"]
    assert row["registry"]["outcome"] == "absent", row["registry"]
    assert primed_itself(row), row["stages"]
    published = row["registry"]["published"]
    assert published["error_type"] is None and published["signed"] is True, published
    assert published["digest"].startswith("sha256:")
    tags = oci.tags()
    assert published["tag"] in tags and published["digest"].replace(":", "-") + ".sig" in tags, tags
    assert published["tag"].startswith("tiny-moe-b3-g"), published
    assert_no_secret(run, fleet)


def test_a_new_host_installs_from_the_registry_with_no_builder(fleet, oci, tmp_path):
    published = rows(fleet)["fleet1"]["registry"]["published"]
    subprocess.run(["docker", "stop", "--time", "1", fleet.hosts["fleet1"]["container"]], check=True,
                   stdout=subprocess.DEVNULL)  # no builder: fleet1 is not running
    run = fleet.prime("-e", settings(tmp_path), "--limit", "fleet2")
    assert run.rc == 0, run.tail()
    row = rows(fleet)["fleet2"]
    got = row["registry"]
    assert got["outcome"] == "installed" and got["digest"] == published["digest"], got
    assert got["source_host"] == "fleet1" and got["signer"] == "fleet-builders"
    assert got["builder_compile_s"] and got["builder_compile_s"] > 0, got
    assert got["installed"], got
    for stage in got["installed"]:
        cell = row["stages"][stage]
        assert cell["status"] == "installed" and cell["source"] == "registry" and cell["digest"] == published["digest"], cell
    assert row["stages"][SERVE_CHECK]["status"] == "ok", row["stages"][SERVE_CHECK]
    assert row["zero_jit"] is True, row["zero_jit_reason"]
    assert got["published"] is None  # it primed nothing itself, so it published nothing
    # the bundle arrived as the host user's file, and nothing is left in the engine's image store
    bundles = os.path.join(fleet.host_root("fleet2"), "profiles", ".bundles")
    assert all(os.lstat(os.path.join(bundles, n)).st_uid == fleet.hosts["fleet2"]["uid"] for n in os.listdir(bundles))
    images = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}", oci.repository], stdout=subprocess.PIPE,
                            text=True, check=True).stdout.split()
    assert images == [], images


def test_a_host_of_another_group_primes_itself(fleet, oci, tmp_path):
    run = fleet.prime("-e", settings(tmp_path), "--limit", "fleet3")
    assert run.rc == 0, run.tail()
    row = rows(fleet)["fleet3"]
    assert row["registry"]["outcome"] == "absent", row["registry"]
    assert primed_itself(row)
    assert row["registry"]["published"]["digest"], row["registry"]
    assert len(oci.bundle_tags()) == 2, oci.tags()


def test_a_bundle_signed_by_another_key_is_refused(fleet, oci, tmp_path):
    fleet.fresh(["fleet2"])
    run = fleet.prime("-e", settings(tmp_path, prime_bundle_allowed_signers=os.path.join(TRUST_DIR, "other_signers")),
                      "--limit", "fleet2")
    assert run.rc != 0, run.tail()
    row = rows(fleet)["fleet2"]
    assert row["error_type"] == "bundle_untrusted", (row["error_type"], row["message"])
    assert all(row["stages"][s]["ran"] is not True for s in PRIMING), row["stages"]
    caches = os.path.join(fleet.host_root("fleet2"), "profiles", "deep_gemm")
    assert not os.path.isdir(caches) or not any(files for _r, _d, files in os.walk(caches))


def test_bad_credentials_are_classified_and_never_shown(fleet, oci, tmp_path):
    fleet.fresh(["fleet2"])
    run = fleet.prime("-e", settings(tmp_path, prime_bundle_registry_password="not-the-password-0451",
                                     prime_bundle_required=True), "--limit", "fleet2")
    assert run.rc != 0, run.tail()
    row = rows(fleet)["fleet2"]
    assert row["error_type"] == "registry_auth", (row["error_type"], row["message"])
    assert "not-the-password-0451" not in run.output
    assert_no_secret(run, fleet)
    assert "not-the-password-0451" not in json.dumps(fleet.latest_report())


def test_registry_down_fails_when_required_and_primes_locally_otherwise(fleet, oci, tmp_path):
    oci_registry.stop()
    try:
        fleet.fresh(["fleet2"])
        run = fleet.prime("-e", settings(tmp_path, prime_bundle_required=True), "--limit", "fleet2")
        assert run.rc != 0, run.tail()
        row = rows(fleet)["fleet2"]
        assert row["error_type"] == "registry_unavailable", (row["error_type"], row["message"])
        run = fleet.prime("-e", settings(tmp_path), "--limit", "fleet2")
        assert run.rc == 0, run.tail()
        row = rows(fleet)["fleet2"]
        assert row["registry"]["outcome"] == "unavailable" and row["registry"]["error_type"] == "registry_unavailable"
        assert primed_itself(row) and row["zero_jit"] is True
        assert row["registry"]["published"]["error_type"] == "registry_unavailable"  # reported, not failed
    finally:
        oci_registry.up()


def test_a_deleted_artifact_falls_back_to_priming(fleet, oci, tmp_path):
    tag = rows(fleet)["fleet2"]["registry"]["tag"]
    oci.delete_tag(tag)
    fleet.fresh(["fleet2"])
    run = fleet.prime("-e", settings(tmp_path), "--limit", "fleet2")
    assert run.rc == 0, run.tail()
    row = rows(fleet)["fleet2"]
    assert row["registry"]["outcome"] == "absent", row["registry"]
    assert primed_itself(row) and row["zero_jit"] is True
    assert tag in oci.tags()  # published again


TRUST_TASK = "Registry | Make this host's Docker engine trust the registry's CA"


def task_status(run, task, host):
    """What the default callback printed for ``host`` under the task whose name starts with ``task`` (ok, changed,
    skipping, fatal), or None when the task did not run."""
    lines = run.output.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("TASK [") and (" : " + task) in line:
            for after in lines[index + 1:]:
                if after.startswith("TASK ["):
                    break
                for status in ("ok", "changed", "skipping", "fatal"):
                    if after.startswith("%s: [%s]" % (status, host)):
                        return status
    return None


def test_a_private_ca_is_trusted_through_prime_bundle_registry_ca(fleet, oci, tmp_path):
    """The engine trusts the registry's CA only through /etc/docker/certs.d/<host:port>/ca.crt. Without it a pull fails
    with registry_tls and a message that names prime_bundle_registry_ca; with the variable set (the CA's file on the
    controller) the role installs it and the host installs its group's bundle, and the same CA again (given as PEM text)
    changes nothing. Writing under /etc/docker needs root: fleet2 is reached as root here (prime_host_user names its
    unprivileged owner, as docs/fleet.md shows), so the task needs no sudo; the engine is not restarted."""
    engine_ca = oci_registry.paths()["engine_ca"]
    with open(oci.facts["ca"]) as handle:
        ca_text = handle.read()
    root_login = str(tmp_path / "root-login.yml")
    with open(root_login, "w") as handle:
        handle.write("all:\n  children:\n    sglang_nodes:\n      hosts:\n        fleet2:\n          ansible_user: root\n"
                     "          prime_host_user: %s\n" % fleet.hosts["fleet2"]["user"])
    engine_pid = subprocess.run(["pidof", "dockerd"], stdout=subprocess.PIPE, text=True, check=False).stdout.strip()
    os.unlink(engine_ca)
    try:
        fleet.fresh(["fleet2"])
        run = fleet.prime("-e", settings(tmp_path, prime_bundle_required=True), "--limit", "fleet2", inventories=[root_login])
        assert run.rc != 0, run.tail()
        row = rows(fleet)["fleet2"]
        assert row["error_type"] == "registry_tls", (row["error_type"], row["message"])
        assert "prime_bundle_registry_ca" in row["message"] and engine_ca in row["message"], row["message"]
        assert task_status(run, TRUST_TASK, "fleet2") == "skipping"
        assert not os.path.exists(engine_ca)

        run = fleet.prime("-e", settings(tmp_path, prime_bundle_registry_ca=oci.facts["ca"]), "--limit", "fleet2",
                          inventories=[root_login])
        assert run.rc == 0, run.tail()
        assert task_status(run, TRUST_TASK, "fleet2") == "changed", run.tail()
        with open(engine_ca) as handle:
            assert handle.read() == ca_text
        assert os.stat(engine_ca).st_uid == 0 and os.stat(engine_ca).st_mode & 0o777 == 0o644
        row = rows(fleet)["fleet2"]
        assert row["registry"]["outcome"] == "installed" and row["zero_jit"] is True, row["registry"]

        fleet.fresh(["fleet2"])  # the registry is asked again; the same CA, as text this time, is already there
        run = fleet.prime("-e", settings(tmp_path, prime_bundle_registry_ca=ca_text), "--limit", "fleet2",
                          inventories=[root_login])
        assert run.rc == 0, run.tail()
        assert task_status(run, TRUST_TASK, "fleet2") == "ok", run.tail()
        assert rows(fleet)["fleet2"]["registry"]["outcome"] == "installed"
        # the certificate text reaches neither the output nor the report, and the engine was not restarted
        body = ca_text.splitlines()[1]
        assert body not in run.output and body not in json.dumps(fleet.latest_report())
        assert_no_secret(run, fleet)
        assert subprocess.run(["pidof", "dockerd"], stdout=subprocess.PIPE, text=True, check=False).stdout.strip() == engine_pid
    finally:
        shutil.copyfile(oci.facts["ca"], engine_ca)  # what the other tests and bundle_prune's skopeo trust


def push_fake(oci, tmp_path, group_key, created):
    """An artifact of tiny-moe for a signature group no host has (as an older fleet's would be)."""
    from ansible_collections.sglang.prep.plugins.module_utils import _oci_bundle as ob
    import hashlib
    data = os.urandom(64)
    path = tmp_path / (hashlib.sha256(data).hexdigest() + ".tar.gz")
    path.write_bytes(data)
    manifest = {"format": ob.BUNDLE_FORMAT, "model": "/models/tiny-moe", "model_slug": "tiny-moe", "group_key": group_key,
                "stages": {}, "collection_version": "0", "source_host": "gone", "created_at": created}
    facts = oci.facts
    with ob.Engine("docker", facts["repository"], username=facts["username"], password=facts["password"]) as engine:
        return ob.publish(engine, str(path), manifest)["tag"]


def test_prune_lists_first_then_keeps_the_newest_per_model(fleet, oci, tmp_path):
    old = [push_fake(oci, tmp_path, "0000000000000001", "2020-01-01T00:00:00Z"),
           push_fake(oci, tmp_path, "0000000000000002", "2020-01-02T00:00:00Z")]
    before = oci.bundle_tags()
    assert len(before) == 4, before  # fleet1's and fleet3's groups, and two no host has
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    # skopeo on the controller trusts the registry through the hosts' prime_bundle_registry_ca, not the engine's certs.d
    playbook = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", fleet.inventory,
                os.path.join(REPO, "playbooks", "bundle_prune.yml"),
                "-e", settings(tmp_path, prime_bundle_registry_ca=oci.facts["ca"])]
    engine_ca = oci_registry.paths()["engine_ca"]
    os.unlink(engine_ca)
    try:
        check, real = prune_runs(playbook, env)
    finally:
        shutil.copyfile(oci.facts["ca"], engine_ca)
    assert check.returncode == 0, check.stdout[-3000:]
    for tag in old:
        assert tag in check.stdout and "no host in the inventory has" in check.stdout
    assert "older than the newest 1" in check.stdout  # of the two groups the hosts have, one is older
    assert oci_registry.status()["password"] not in check.stdout
    assert real.returncode == 0, real.stdout[-3000:]
    after = oci.bundle_tags()
    assert sorted(after) == sorted(t for t in before if t not in old), (before, after)


def prune_runs(playbook, env):
    """bundle_prune with --check (keep 1), then for real (keep 2); between them, --check must have deleted nothing."""
    before = Registry(oci_registry.status()).bundle_tags()
    check = subprocess.run(playbook + ["-e", "bundle_prune_keep=1", "--check"], cwd=REPO, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert Registry(oci_registry.status()).bundle_tags() == before  # --check deleted nothing
    real = subprocess.run(playbook + ["-e", "bundle_prune_keep=2"], cwd=REPO, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    return check, real

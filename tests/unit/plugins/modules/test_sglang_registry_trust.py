"""sglang_registry_trust (prime_bundle_registry_ca): the Docker engine's per-registry CA file, written only when it
differs, with certificates only, never showing the text; and the registry_tls message that points to the variable.

Real certificates made by openssl; the engine's certs.d is a directory under tmp_path (the fleet tier writes the real
/etc/docker/certs.d and proves the engine then trusts the registry: tests/fleet/test_registry.py)."""

import json
import os
import stat
import subprocess

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.sglang.prep.plugins.module_utils import _oci_bundle as ob
from ansible_collections.sglang.prep.plugins.module_utils import _oci_trust as ot
from ansible_collections.sglang.prep.plugins.modules import sglang_registry_trust

REGISTRY = "registry.example.org:5000/sglang-prep-caches"


@pytest.fixture(scope="module")
def pems(tmp_path_factory):
    """Two self-signed CAs (PEM text) and the private key of the first."""
    base = tmp_path_factory.mktemp("ca")
    out = {}
    for name in ("ca", "other"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test " + name,
                        "-keyout", str(base / (name + ".key")), "-out", str(base / (name + ".crt"))],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out[name] = (base / (name + ".crt")).read_text()
    out["key"] = (base / "ca.key").read_text()
    return out


def run(args, capsys, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            sglang_registry_trust.main()
    return info.value.code, json.loads(capsys.readouterr().out)


def test_the_ca_goes_where_the_engine_reads_it_for_that_registry_only(pems, tmp_path, capsys):
    certs = tmp_path / "certs.d"
    rc, out = run(dict(registry=REGISTRY, ca=pems["ca"], certs_dir=str(certs)), capsys)
    assert rc == 0 and out["changed"], out
    path = certs / "registry.example.org:5000" / "ca.crt"
    assert out["path"] == str(path) and out["registry_host"] == "registry.example.org:5000" and out["certificates"] == 1
    assert path.read_text() == pems["ca"]  # openssl's own PEM is already in the normal form
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and stat.S_IMODE(path.parent.stat().st_mode) == 0o755
    assert os.listdir(str(certs)) == ["registry.example.org:5000"]  # nothing for any other registry
    # what the module returns and shows (diff included) names the file and its sha256, never the certificate
    assert pems["ca"].splitlines()[1] not in json.dumps(out)
    assert out["diff"]["after"]["sha256"] == out["sha256"] and out["diff"]["before"]["sha256"] is None


def test_the_same_ca_again_changes_nothing_and_another_replaces_it(pems, tmp_path, capsys):
    args = dict(registry=REGISTRY, ca=pems["ca"], certs_dir=str(tmp_path))
    assert run(args, capsys)[1]["changed"]
    path = tmp_path / "registry.example.org:5000" / "ca.crt"
    mtime = path.stat().st_mtime_ns
    # the same certificate with CRLF line ends, other line widths and text around it is the same CA
    body = "".join(pems["ca"].splitlines()[1:-1])
    noisy = "subject=CN = test ca\r\n-----BEGIN CERTIFICATE-----\r\n%s\r\n-----END CERTIFICATE-----\r\n" % body
    rc, out = run(dict(args, ca=noisy), capsys)
    assert rc == 0 and not out["changed"] and "already has" in out["msg"], out
    assert path.stat().st_mtime_ns == mtime
    rc, out = run(dict(args, ca=pems["other"] + pems["ca"]), capsys)
    assert rc == 0 and out["changed"] and out["certificates"] == 2
    assert path.read_text() == pems["other"] + pems["ca"]


def test_check_mode_writes_nothing(pems, tmp_path, capsys):
    rc, out = run(dict(registry=REGISTRY, ca=pems["ca"], certs_dir=str(tmp_path)), capsys, check_mode=True)
    assert rc == 0 and out["changed"] and "would write" in out["msg"]
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("what,needle", [("key", "private key"), ("empty", "empty or could not be read"),
                                         ("garbage", "no PEM certificate"), ("bad_block", "not a base64 DER")])
def test_bad_ca_text_is_refused_before_anything_is_written_and_never_shown(pems, tmp_path, capsys, what, needle):
    text = {"key": pems["ca"] + pems["key"], "empty": " \n", "garbage": "not a certificate",
            "bad_block": "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"}[what]
    rc, out = run(dict(registry=REGISTRY, ca=text, certs_dir=str(tmp_path),
                       ca_name="prime_bundle_registry_ca (the file /srv/ca.pem on the controller)"), capsys)
    assert rc == 1 and out["error_type"] == "bad_input" and needle in out["msg"], out
    assert out["msg"].startswith("prime_bundle_registry_ca (the file /srv/ca.pem on the controller)")
    assert os.listdir(str(tmp_path)) == []
    for line in text.splitlines()[1:-1]:
        if len(line) > 8:
            assert line not in json.dumps(out)


def test_a_bad_registry_name_is_refused(pems, tmp_path, capsys):
    rc, out = run(dict(registry="https://registry.example.org/caches", ca=pems["ca"], certs_dir=str(tmp_path)), capsys)
    assert rc == 1 and out["error_type"] == "bad_input"
    assert ot.registry_host("registry.example.org:5000") == "registry.example.org:5000"


def test_a_certs_dir_it_cannot_write_is_classified_and_says_root_is_needed(pems, tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    rc, out = run(dict(registry=REGISTRY, ca=pems["ca"], certs_dir=str(blocker)), capsys)
    assert rc == 1 and out["error_type"] == "permissions_unexpected" and "needs root" in out["msg"], out


def test_an_untrusted_certificate_names_the_variable_that_fixes_it():
    engine = ob.Engine("docker", "172.17.0.1:47443/sglang-prep-caches")
    exc = engine.fail("docker pull x", 'Error response from daemon: Get "https://172.17.0.1:47443/v2/": x509: certificate '
                                       "signed by unknown authority")
    assert exc.error_type == "registry_tls"
    assert "prime_bundle_registry_ca" in exc.message and "/etc/docker/certs.d/172.17.0.1:47443/ca.crt" in exc.message


def test_the_text_is_kept_out_of_the_module_arguments_ansible_shows_with_vvv(pems, tmp_path, capsys):
    """With -vvv Ansible returns the module's arguments (and the host's syslog records them): the CA text is masked
    there, so that a private key given by mistake is shown nowhere."""
    text = pems["ca"] + pems["key"]
    rc, out = run(dict(registry=REGISTRY, ca=text, certs_dir=str(tmp_path), _ansible_inject_invocation=True), capsys)
    assert rc == 1 and "invocation" in out, out
    assert pems["key"].splitlines()[1] not in json.dumps(out) and pems["ca"].splitlines()[1] not in json.dumps(out)

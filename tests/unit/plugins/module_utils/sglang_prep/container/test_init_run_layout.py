"""The devuser steps of init on a temporary tree: preflight, run layout, manifest then pointer."""

import json
import os
import pathlib
import shutil
import tempfile

import pytest


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, manifest, pointer
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import identity, init, services
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.errors import PrepError

RUN = "container-run-20251010T183737Z-e37a089d"
FOUND = {"prometheus": "/usr/bin/prometheus", "node_exporter": "/usr/bin/prometheus-node-exporter",
         "dcgm_exporter": None, "jaeger": None, "nv_hostengine": None}


@pytest.fixture
def roots():
    base = pathlib.Path(tempfile.mkdtemp(prefix="sglang-prep-unit-"))
    os.chmod(str(base), 0o755)  # test setup: another uid must reach it
    paths = {name: base / name for name in ("telemetry", "profiles", "hf")}
    for path in paths.values():
        path.mkdir()
    yield paths
    shutil.rmtree(str(base), ignore_errors=True)


def me():
    return identity.Devuser("devuser", os.getuid(), os.getgid(), "/home/devuser")


def prepare(roots, run_id=RUN, found=FOUND):
    return init.prepare_run(run_id, me(), {"telemetry": "/host/telemetry", "profiles": "/host/profiles"}, found,
                            "127.0.0.1", "2025-10-10T18:37:37Z", "img:1", telemetry_root=str(roots["telemetry"]),
                            profiles_root=str(roots["profiles"]), hf_root=str(roots["hf"]))


def test_prepare_run_lays_out_the_run(roots):
    out = prepare(roots)
    tele = roots["telemetry"]
    log = tele / "logs" / (RUN + ".log")
    assert out["log_file"] == str(log)
    assert "[init] run %s started" % RUN in log.read_text()
    assert (tele / "container_runs" / RUN / "models").is_dir()  # one <model_key>/ per model primed
    config = (tele / "prometheus" / RUN / "prometheus.yml").read_text()
    assert 'job_name: "node"' in config and 'job_name: "dcgm"' not in config  # dcgm-exporter not found
    assert not (tele / "jaeger").exists()  # no Jaeger, no empty storage directory
    assert out["stale_pointer"] is None and out["warnings"] == []
    assert list(roots["profiles"].iterdir()) == []  # caches are the stages' business


def test_prepare_run_removes_the_previous_pointer(roots):
    stale = roots["telemetry"] / contract.POINTER_NAME
    stale.write_text(pointer.format_pointer("/telemetry/container_runs/old.json", "/host/old.json"))
    out = prepare(roots)
    assert out["stale_pointer"] == "/telemetry/container_runs/old.json"
    assert not stale.exists()


def test_publish_writes_the_manifest_before_the_pointer_names_it(roots, monkeypatch):
    layout = prepare(roots)
    (roots["profiles"] / ".in_progress").mkdir()
    (roots["profiles"] / ".in_progress" / "deep_gemm.json").write_text('{"owner_pid": 1}')
    data = manifest.build_manifest(
        RUN, "2025-10-10T18:37:37Z", "img:1", None, "h", {"name": "devuser", "uid": 1, "gid": 1},
        {name: services.record(name, FOUND, None, None, "127.0.0.1") for name in FOUND}, "127.0.0.1", "127.0.0.1",
        {"telemetry": "/host/telemetry", "profiles": "/host/profiles", "models": None, "huggingface": None}, None,
        layout["storage"], telemetry_root=str(roots["telemetry"]))
    written = []
    real_replace = os.replace

    def spy(src, dst):
        written.append(os.path.basename(dst))
        if os.path.basename(dst) == contract.POINTER_NAME:  # at the moment the pointer appears ...
            named = pointer.parse_pointer(open(src).read())["container"]
            manifest.read_manifest(named)  # ... the manifest it names is complete and valid
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    published = init.publish(data, "/host/telemetry/container_runs/%s.json" % RUN,
                             telemetry_root=str(roots["telemetry"]), profiles_root=str(roots["profiles"]))
    monkeypatch.undo()
    # the manifest, then the pointer that names it, then the run's metrics (node_exporter textfile)
    assert written == [RUN + ".json", contract.POINTER_NAME, contract.METRICS_NAME]
    assert published["metrics_warning"] is None
    ptr = pointer.read_pointer(published["pointer"])
    assert ptr == {"container": str(roots["telemetry"] / "container_runs" / (RUN + ".json")),
                   "host": "/host/telemetry/container_runs/%s.json" % RUN}
    saved = json.loads(open(ptr["container"]).read())
    start = saved["profile_cache"]["start"]
    assert start["deep_gemm"]["partial"] is True and start["deep_gemm"]["partial_stages"] == ["deep_gemm"]
    assert start["deep_gemm"]["host_path"] == "/host/profiles/deep_gemm"
    assert start["flashinfer"]["partial"] is False and start["flashinfer"]["exists"] is False
    assert not list(roots["telemetry"].glob("**/*.tmp"))


def unwritable_preflight(roots, which):
    """Run the preflight as a user who cannot write ``which``: another uid if we are root, else chmod 0555."""
    host_roots = {"telemetry": "/host/telemetry", "profiles": "/host/profiles"}
    kwargs = {"telemetry_root": str(roots["telemetry"]), "profiles_root": str(roots["profiles"]),
              "hf_root": str(roots["hf"])}
    if os.geteuid() == 0:
        user = identity.Devuser("devuser", 4242, 4242, "/home/devuser")
        for name in roots:  # test setup only: the operator's job on a real host
            os.chown(str(roots[name]), 0 if name == which else 4242, 0 if name == which else 4242)
        return user, lambda: identity.run_as(user, init.preflight, user, host_roots, remove_stale_pointer=True, **kwargs)
    os.chmod(str(roots[which]), 0o555)
    return me(), lambda: init.preflight(me(), host_roots, remove_stale_pointer=True, **kwargs)


@pytest.mark.parametrize("which,shown", [("profiles", "/host/profiles"), ("telemetry", "/host/telemetry")])
def test_unwritable_root_names_path_owner_seen_and_expected(roots, which, shown):
    stale = roots["telemetry"] / contract.POINTER_NAME
    stale.write_text(pointer.format_pointer("/telemetry/container_runs/old.json", ""))
    user, call = unwritable_preflight(roots, which)
    with pytest.raises(PrepError) as err:
        call()
    message = err.value.message
    assert err.value.error_type == "permissions_unexpected"
    assert str(roots[which]) in message and shown in message
    seen = os.stat(str(roots[which]))
    assert "Owner seen: %d:%d" % (seen.st_uid, seen.st_gid) in message
    assert "owner expected: %d:%d" % (user.uid, user.gid) in message
    assert "chown" in message  # says how to fix it on the host
    leftovers = sorted(p.name for p in roots[which].iterdir())
    assert leftovers == ([contract.POINTER_NAME] if which == "telemetry" else [])
    if which == "profiles":
        assert not stale.exists()  # telemetry was writable: the old run's pointer is gone, nothing new written
        assert sorted(p.name for p in roots["telemetry"].iterdir()) == []


def test_unwritable_hf_cache_is_only_a_warning(roots):
    if os.geteuid() == 0:
        user = identity.Devuser("devuser", 4242, 4242, "/home/devuser")
        os.chown(str(roots["telemetry"]), 4242, 4242)
        os.chown(str(roots["profiles"]), 4242, 4242)
        out = identity.run_as(user, init.preflight, user, {"huggingface": "/host/hf"},
                              telemetry_root=str(roots["telemetry"]), profiles_root=str(roots["profiles"]),
                              hf_root=str(roots["hf"]))
    else:
        os.chmod(str(roots["hf"]), 0o555)
        out = init.preflight(me(), {"huggingface": "/host/hf"}, telemetry_root=str(roots["telemetry"]),
                             profiles_root=str(roots["profiles"]), hf_root=str(roots["hf"]))
    assert len(out["warnings"]) == 1 and "/host/hf" in out["warnings"][0]


@pytest.mark.parametrize("value,expected", [(None, 30000), ("", 30000), (" 31234 ", 31234), ("65535", 65535), ("1", 1)])
def test_server_port_comes_from_the_environment(value, expected):
    env = {} if value is None else {contract.ENV_SERVER_PORT: value}
    assert init.server_port(env) == expected


@pytest.mark.parametrize("value", ["0", "65536", "30000x", "-1", "http"])
def test_a_bad_server_port_is_bad_input_naming_the_variable(value):
    with pytest.raises(PrepError) as err:
        init.server_port({contract.ENV_SERVER_PORT: value})
    assert err.value.error_type == "bad_input"
    assert contract.ENV_SERVER_PORT in err.value.message and repr(value) in err.value.message
    assert "1 to 65535" in err.value.message


def test_prepare_run_scrapes_the_configured_server_port(roots):
    init.prepare_run(RUN, me(), {"telemetry": "/host/telemetry", "profiles": "/host/profiles"}, FOUND, "127.0.0.1",
                     "2025-10-10T18:37:37Z", "img:1", telemetry_root=str(roots["telemetry"]),
                     profiles_root=str(roots["profiles"]), hf_root=str(roots["hf"]), port=31234)
    config = (roots["telemetry"] / "prometheus" / RUN / "prometheus.yml").read_text()
    assert '"127.0.0.1:31234"' in config and ":30000" not in config


def test_init_check_reports_the_server_port(monkeypatch, capsys):
    monkeypatch.setattr(init.services, "discover", lambda path: {})
    monkeypatch.setattr(init.identity, "run_as", lambda user, fn, *a, **k: {"warnings": []})
    code = init.check(me(), {contract.ENV_SERVER_PORT: "31234"}, lambda *m: None)
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1][len("RESULT "):])
    assert code == 0 and out["server_port"] == 31234
    code = init.check(me(), {contract.ENV_SERVER_PORT: "99999"}, lambda *m: None)
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1][len("RESULT "):])
    assert code == 1 and out["error_type"] == "bad_input" and out["server_port"] is None


def test_container_init_clears_what_a_killed_bundle_install_left(roots):
    """A bundle install killed while unpacking left a bundle-sized staging directory: init removes it and says so."""
    staged = roots["profiles"] / ".bundle-staging" / "0123456789abcdef-4242"
    (staged / "new" / "triton" / "abc").mkdir(parents=True)
    (staged / "new" / "triton" / "abc" / "k.cubin").write_bytes(b"x" * 4096)
    (staged / "install.json").write_text(json.dumps({"digest": "d" * 64, "model": "/models/m", "owner_pid": 4242,
                                                     "stages": ["deep_gemm"], "phase": "unpacking"}))
    out = prepare(roots)
    assert list((roots["profiles"] / ".bundle-staging").iterdir()) == []
    log = pathlib.Path(out["log_file"]).read_text()
    assert "cleared the staging of the interrupted install of bundle %s for /models/m: the model holds its old caches" % ("d" * 64) in log

"""What the module tests share: the module runner (argv in, exit code and JSON out), the recording fake docker CLI
(the `docker` fixture of tests/unit/plugins/modules/conftest.py) and a host-side run (pointer and manifest written
exactly as the container init writes them)."""

import json
import os
import sys
import textwrap

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract, manifest, pointer


def run_module(module, args, capsys, check_mode=False, diff=False):
    """Run an Ansible module's main() with these module args: (exit code, the JSON it printed)."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            module.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


# ---------------------------------------------------------------- module tests as tables: argv in, output out

class Has(object):
    """In an expected output: texts the actual value contains (a message, say; a list: its lines), not the whole value."""

    def __init__(self, *texts):
        self.texts = texts

    def __repr__(self):
        return "Has%r" % (self.texts,)

    def within(self, got):
        text = "\n".join(got) if isinstance(got, list) else got
        return isinstance(text, str) and all(part in text for part in self.texts)


ABSENT = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()  # in an expected output: a key that is not there


def fill(value, names):
    """The value with every "{name}" of names replaced in its strings (a case's paths depend on tmp_path)."""
    if isinstance(value, Has):
        return Has(*fill(value.texts, names))
    if isinstance(value, str):
        for name, real in names.items():
            if value == "{%s}" % name and isinstance(real, (int, float, list, dict)):
                return real  # a whole value, a port number say
            value = value.replace("{%s}" % name, str(real))
        return value
    if isinstance(value, dict):
        return {key: fill(item, names) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(fill(item, names) for item in value)
    return value


def assert_holds(got, want, where="result"):
    """got holds want: every key of a wanted dict and each item of a wanted list of dicts (recursively), a Has
    text within, anything else equal."""
    if isinstance(want, dict):
        assert isinstance(got, dict), "%s: %r is not a dict" % (where, got)
        for key, item in want.items():
            if item is ABSENT:
                assert key not in got, "%s has %r: %r" % (where, key, got[key])
                continue
            assert key in got, "%s lacks %r: %r" % (where, key, sorted(got))
            assert_holds(got[key], item, "%s[%r]" % (where, key))
    elif isinstance(want, list) and any(isinstance(item, (dict, Has)) for item in want):
        assert isinstance(got, list) and len(got) == len(want), "%s: %r is not %d long" % (where, got, len(want))
        for index, (have, item) in enumerate(zip(got, want)):
            assert_holds(have, item, "%s[%d]" % (where, index))
    elif isinstance(want, Has):
        assert want.within(got), "%s: %r does not hold %r" % (where, got, want)
    else:
        assert got == want, "%s: %r != %r" % (where, got, want)


def assert_runs(argv, runs):
    """Each run (a list of arguments) stands somewhere in argv, its arguments next to each other."""
    for run in runs:
        starts = [i for i in range(len(argv) - len(run) + 1) if argv[i:i + len(run)] == list(run)]
        assert starts, "%r not in %r" % (run, argv)


class Case(object):
    """One row of a module's table: the module args in; the exit code, (part of) the JSON result and the
    `docker exec` argv out. docker: what the fake docker CLI answers; exec_argv None: no exec may run."""

    def __init__(self, id, args, rc=0, result=None, exec_argv=(), docker=None, check_mode=False, given=(), **more):
        self.id, self.args, self.rc, self.result = id, args, rc, result or {}
        self.exec_argv, self.docker, self.check_mode, self.given = exec_argv, docker or {}, check_mode, given
        self.more = more  # what a module's own table adds (checked by its test)

    def __repr__(self):
        return self.id

    def check(self, module, capsys, docker=None, **names):
        """Run the module on this case and check what it returned (names fill the case's "{name}" fields)."""
        if docker is not None:
            path, configure, calls = docker
            configure(**fill(self.docker, names))
            names = dict(names, docker=path)
        rc, result = run_module(module, fill(self.args, names), capsys, check_mode=self.check_mode)
        assert rc == self.rc, result
        assert_holds(result, fill(self.result, names))
        if docker is not None:
            execs = exec_call(calls())
            if self.exec_argv is None:
                assert execs == []
            else:
                assert_runs(execs[0] if execs else [], fill(self.exec_argv, names))
        return result


def cases(*rows):
    """pytest.mark.parametrize over a table of Case rows, each named by its id."""
    return pytest.mark.parametrize("case", rows, ids=[row.id for row in rows])


# ---------------------------------------------------------------- the fake docker CLI

FAKE_DOCKER = textwrap.dedent("""\
    #!%s
    # Fake docker CLI for unit tests: records argv, answers from a JSON config.
    import json, os, sys
    cfg = json.load(open(os.environ["FAKE_DOCKER_CONFIG"]))
    with open(os.environ["FAKE_DOCKER_CALLS"], "a") as calls:
        calls.write(json.dumps(sys.argv[1:]) + "\\n")
    # docker exec -e NAME takes the value from the CLI's environment: record what the container would get
    names = [sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "-e" and "=" not in sys.argv[i + 1]]
    with open(os.environ["FAKE_DOCKER_CALLS"] + ".env", "a") as seen:
        seen.write(json.dumps(dict((n, os.environ.get(n)) for n in names)) + "\\n")
    cmd = sys.argv[1]
    if cmd == "inspect":
        if cfg.get("state") is None:
            sys.stderr.write("Error: No such container: %%s\\n" %% sys.argv[-1])
            sys.exit(1)
        if "{{json .}}" in sys.argv:  # the whole container
            print(json.dumps({"State": cfg["state"], "Config": {"Labels": cfg.get("labels", {})},
                              "Image": cfg.get("image_id")}))
        else:
            print(json.dumps(cfg["state"]))
    elif cmd == "image":  # image inspect --format {{.Id}} <name>
        if cfg.get("images", {}).get(sys.argv[-1]) is None:
            sys.stderr.write("Error: No such image: %%s\\n" %% sys.argv[-1])
            sys.exit(1)
        print(cfg["images"][sys.argv[-1]])
    elif cmd == "logs":
        sys.stderr.write(cfg.get("logs", ""))
    elif cmd == "exec":
        if "state_after_exec" in cfg:  # the container dies while the runtime runs
            cfg["state"] = cfg.pop("state_after_exec")
            json.dump(cfg, open(os.environ["FAKE_DOCKER_CONFIG"], "w"))
        sys.stdout.write(cfg.get("stdout", ""))
        sys.stderr.write(cfg.get("stderr", ""))
        sys.exit(cfg.get("rc", 0))
    """) % sys.executable

RUNNING = {"Status": "running", "Running": True, "Paused": False, "ExitCode": 0, "Error": ""}
EXITED = {"Status": "exited", "Running": False, "Paused": False, "ExitCode": 1, "Error": ""}


def fake_docker(tmp_path, monkeypatch):
    """Write the fake docker CLI; returns (path, configure(**cfg), calls())."""
    path = tmp_path / "docker"
    path.write_text(FAKE_DOCKER)
    path.chmod(0o755)
    config = tmp_path / "docker.json"
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_DOCKER_CONFIG", str(config))
    monkeypatch.setenv("FAKE_DOCKER_CALLS", str(calls))

    def configure(**cfg):
        cfg.setdefault("state", RUNNING)
        config.write_text(json.dumps(cfg))

    def recorded():
        return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []

    configure()
    return str(path), configure, recorded


def exec_call(calls):
    """The `docker exec` calls among the recorded ones."""
    return [c for c in calls if c[0] == "exec"]


# ---------------------------------------------------------------- a run as the host sees it

RUN_ID = "container-run-20261129T160740Z-339c4104"


def host_root(tmp_path):
    """The host's observability root with every subdirectory the role creates."""
    root = tmp_path / "sglang-observability"
    for name in contract.HOST_SUBDIRS:
        (root / name).mkdir(parents=True)
    (root / "telemetry" / "container_runs").mkdir()
    return root


def write_run(root, run_id=RUN_ID, host_key=True):
    """Manifest first, then the pointer (as the init does). Returns the host manifest path."""
    telemetry = str(root / "telemetry")
    cpaths = manifest.container_paths(run_id)
    hroots = {name: str(root / name) for name in contract.HOST_SUBDIRS}
    data = {field: None for field in manifest.REQUIRED_FIELDS}
    data.update(schema_version=contract.SCHEMA_VERSION, container_run_id=run_id,
                paths={"container": cpaths, "host": manifest.host_paths(cpaths, hroots)})
    host_manifest = os.path.join(telemetry, "container_runs", run_id + ".json")
    with open(host_manifest, "w") as handle:
        json.dump(data, handle)
    pointer.write_pointer(cpaths["manifest"], host_manifest if host_key else None, telemetry_root=telemetry)
    return host_manifest


def pointer_path(root):
    return str(root / "telemetry" / contract.POINTER_NAME)

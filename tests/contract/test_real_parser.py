"""Contract tier: the argv the collection builds against the REAL sglang 0.5.23 parser.

The real parser lives in the contract venv (.cache/sglang-contract-venv, Python 3.11, made by
scripts/contract-venv.sh; `make test-contract` runs both). pytest itself runs in the controller
venv, so the parsers run in subprocesses through tests/contract/parser_probe.py. A missing venv
is a failure, not a skip.

Proves:
  (a) each server stage's argv, from `python3 -m sglang_prep argv <stage>`, parses into exactly the
      canonical settings and the stage's switches, and keeps them through resolve_once() (with
      --device cpu added for resolution only, and the environment argv.server_env() gives);
      no store_true flag is ever followed by true/false;
  (b) the stand-in parser (tests/standins) accepts and rejects the same corpus of argv as the real
      one, with the same parsed values and the same error lines, and declares its flags the same way.
"""

import re
import shutil
from pathlib import Path

import pytest
import yaml

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import argv as argv_mod
from contract_probe import TINY_MODEL, require_venv, run_probe, stage_server_args

BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0"}
CORPUS = Path(__file__).with_name("parser_corpus.yaml")


# ---------------------------------------------------------------------------------------- helpers

def error_line(stderr):
    """The argparse error line (`sglang serve: error: ...`), or None."""
    found = [line for line in stderr.splitlines() if "error:" in line]
    return found[-1].strip() if found else None


# ---------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def venv_python():
    return require_venv()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    """A model directory laid out as on a host (<models>/tiny-moe/config.json) and a cache dir."""
    root = tmp_path_factory.mktemp("contract")
    shutil.copytree(TINY_MODEL, root / "models" / "tiny-moe")
    (root / "cache").mkdir()
    return root


@pytest.fixture(scope="session")
def model_dir(workdir):
    return workdir / "models" / "tiny-moe"


@pytest.fixture(scope="session")
def stage_args(model_dir):
    return {stage: stage_server_args(stage, model_dir) for stage in argv_mod.SERVER_STAGES}


@pytest.fixture(scope="session")
def server_env_for_resolution(workdir):
    """argv.server_env(), with its container paths moved under the test's temp dir."""
    env = argv_mod.server_env({})
    return {k: (str(workdir / "env" / k) if v.startswith("/") else v) for k, v in env.items()}


@pytest.fixture(scope="session")
def resolved(venv_python, stage_args, server_env_for_resolution, workdir):
    """Real parse + resolve_once() of every stage's argv (plus one run without the env var)."""
    stages = list(argv_mod.SERVER_STAGES)
    corpus = [{"argv": stage_args[s] + ["--device", "cpu"], "env": server_env_for_resolution} for s in stages]
    corpus.append({"argv": stage_args[stages[0]] + ["--device", "cpu"],
                   "env": {"SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN": "0"}})
    results = run_probe("resolve", corpus, workdir / "cache")["results"]
    out = dict(zip(stages, results[:len(stages)]))
    out["_without_env"] = results[-1]
    return out


# ---------------------------------------------------------------------------------------- (a) our argv, real parser

def test_cli_builds_every_server_stage(stage_args):
    assert set(stage_args) == set(argv_mod.SERVER_STAGES) and stage_args


@pytest.mark.parametrize("stage", argv_mod.SERVER_STAGES)
def test_stage_argv_parses_to_canonical_settings(resolved, stage):
    result = resolved[stage]
    assert result["exit"] == 0, result["stderr"]
    assert "resolve_error" not in result, result["resolve_error"]
    switches = argv_mod.STAGE_SWITCHES[stage]
    for view in ("values", "resolved"):
        got = result[view]
        for field, expected in contract.CANONICAL_SETTINGS.items():
            assert got[field] == expected, "%s: %s is %r, expected %r" % (view, field, got[field], expected)
        assert got["tp_size"] == 1
        assert got["enable_metrics"] is ("--enable-metrics" in switches)
        assert got["enable_torch_compile"] is ("--enable-torch-compile" in switches)
        assert got["enable_trace"] is ("--enable-trace" in switches)
        # CUDA graph on: nothing in our argv turns a phase off
        assert got["disable_cuda_graph"] is False
        assert got["disable_decode_cuda_graph"] is False and got["disable_prefill_cuda_graph"] is False
        assert got["cuda_graph_backend_decode"] in (None, "full", "breakable")
        assert got["cuda_graph_backend_prefill"] in (None, "full", "breakable")
    res = result["resolved"]
    assert res["decode_cuda_graph_backend"] != "disabled"
    # prefill: whatever the platform default is (breakable on CUDA, disabled on this CPU run)
    assert res["prefill_cuda_graph_backend"] == res["platform_default_prefill_backend"]


def test_builder_env_allows_the_canonical_context_length(resolved):
    """Without SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1 the real resolution refuses 272000."""
    assert argv_mod.server_env({})["SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN"] == "1"
    refused = resolved["_without_env"]
    assert refused.get("resolve_error", "").startswith("ValueError: Warning: User-specified context_length (272000)")
    assert "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1" in refused["resolve_error"]


@pytest.mark.parametrize("stage", argv_mod.SERVER_STAGES)
def test_no_store_true_flag_gets_a_value(stage_args, real_parse, stage):
    zero_arg = {name for name, o in real_parse["options"].items() if o["nargs"] == 0}
    args = stage_args[stage]
    for i, arg in enumerate(args):
        name = arg.split("=", 1)[0]
        if name in zero_arg:
            assert "=" not in arg, "store_true flag given a value: %r" % arg
            following = args[i + 1] if i + 1 < len(args) else None
            assert following is None or following.lower() not in BOOL_WORDS, (
                "store_true flag %s followed by %r in %s" % (arg, following, args))


def test_real_parser_rejects_store_true_with_value(real_parse, corpus_index):
    result = real_parse["results"][corpus_index["--enable-metrics false"]]
    assert result["exit"] == 2
    assert error_line(result["stderr"]) == "sglang serve: error: unrecognized arguments: false"


# ---------------------------------------------------------------------------------------- (b) stand-in vs real

def build_corpus(model, stage_args):
    """The stages' argv, then every line of parser_corpus.yaml with {model} filled in."""
    corpus = {"stage %s" % stage: args for stage, args in stage_args.items()}
    with open(CORPUS, encoding="utf-8") as handle:
        rows = yaml.safe_load(handle)
    corpus.update({name: [arg.replace("{model}", str(model)) for arg in args] for name, args in rows.items()})
    return corpus


@pytest.fixture(scope="session")
def corpus(model_dir, stage_args):
    return build_corpus(model_dir, stage_args)


@pytest.fixture(scope="session")
def corpus_index(corpus):
    return {name: i for i, name in enumerate(corpus)}


@pytest.fixture(scope="session")
def real_parse(venv_python, corpus, workdir):
    return run_probe("parse", list(corpus.values()), workdir / "cache")


@pytest.fixture(scope="session")
def standin_parse(venv_python, corpus, workdir):
    return run_probe("parse", list(corpus.values()), workdir / "cache", standin=True)


def test_corpus_is_large_and_mixed(real_parse, corpus):
    exits = [r["exit"] for r in real_parse["results"]]
    assert len(corpus) >= 25
    assert exits.count(0) >= 10 and exits.count(2) >= 10, exits


def test_standin_is_the_stand_in(standin_parse):
    """The -S run really imported the stand-in, not the real sglang."""
    assert "--model-path" in standin_parse["options"]
    assert len(standin_parse["options"]) < 150


@pytest.mark.parametrize("name", list(build_corpus(Path("/models/tiny-moe"),
                                                   {s: [] for s in argv_mod.SERVER_STAGES})))
def test_standin_accepts_and_rejects_like_real(real_parse, standin_parse, corpus_index, name):
    i = corpus_index[name]
    real, standin = real_parse["results"][i], standin_parse["results"][i]
    assert standin["exit"] == real["exit"], "real: %s\nstand-in: %s" % (real["stderr"], standin["stderr"])
    if real["exit"] == 0:
        assert standin["values"] == real["values"]
    else:
        real_error, standin_error = error_line(real["stderr"]), error_line(standin["stderr"])
        assert real_error and standin_error
        assert standin_error == real_error


def test_disable_cuda_graph_warns_like_real(real_parse, standin_parse, corpus_index):
    i = corpus_index["--disable-cuda-graph"]
    pattern = re.compile(r"'--disable-cuda-graph' is deprecated and will be removed in a future release\. "
                         r"Use '--cuda-graph-backend-\{decode,prefill\}=disabled' instead\.")
    assert pattern.search(real_parse["results"][i]["stderr"])
    assert pattern.search(standin_parse["results"][i]["stderr"])


def test_standin_flags_are_declared_like_real(real_parse, standin_parse):
    real, standin = real_parse["options"], standin_parse["options"]
    missing = sorted(set(standin) - set(real))
    assert not missing, "stand-in flags the real parser does not have: %s" % missing
    for name, option in standin.items():
        assert option == real[name], "%s: stand-in %s, real %s" % (name, option, real[name])

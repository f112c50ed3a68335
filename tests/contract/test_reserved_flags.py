"""Contract tier: extra server arguments cannot smuggle in a setting the priming policy owns.

SGLang 0.5.23 builds its parser with argparse's allow_abbrev on, merges `--config <yaml>` into the command
line and lets `--cuda-graph-config <json>` win over the per-phase CUDA-graph flags (sglang-facts.md 10).
Against the REAL parser (the contract venv) this proves, for the check in sglang_prep/server_flags.py:
  - every unambiguous abbreviation of every reserved flag, of --config and of --cuda-graph-config is
    accepted by the real parser, with the same effect as the full flag, and refused by our check;
  - --config with a YAML file and --cuda-graph-config with a JSON turn off the decode CUDA graph (the
    inductor stage's torch.compile runs only inside its capture) in the real parser, and our check
    refuses both;
  - no option of the real parser other than a guarded one is a prefix of a guarded flag, so the
    prefix rule refuses nothing SGLang would read as another flag.
"""

import json

import pytest

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import server_flags
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import argv as argv_mod
from contract_probe import TINY_MODEL, abbreviations, require_venv, run_probe, stage_server_args

# A value for each reserved flag that differs from SGLang's default, so its effect shows in the parse.
VALUES = {
    "--model-path": "/models/other", "--model": "/models/other", "--host": "0.0.0.0", "--port": "30001",
    "--tp-size": "2", "--tensor-parallel-size": "2", "--kv-cache-dtype": "bf16", "--mem-fraction-static": "0.5",
    "--chunked-prefill-size": "2048", "--max-prefill-tokens": "8192",
    "--context-length": "2048", "--cuda-graph-backend-decode": "disabled", "--cuda-graph-backend-prefill": "disabled",
}
DISABLE_DECODE_JSON = '{"decode": {"backend": "disabled"}}'


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    require_venv()
    root = tmp_path_factory.mktemp("reserved")
    (root / "cache").mkdir()
    yaml_file = root / "smuggle.yaml"
    yaml_file.write_text("disable-decode-cuda-graph: true\nenable-trace: true\n")
    return {"cache": root / "cache", "yaml": str(yaml_file), "model": str(TINY_MODEL)}


@pytest.fixture(scope="session")
def options(env):
    return run_probe("parse", [], env["cache"])["options"]


def flag_args(name, flag, options, env):
    if flag == "--config":
        return [name, env["yaml"]]
    if flag == "--cuda-graph-config":
        return [name, DISABLE_DECODE_JSON]
    return [name] if options[flag]["nargs"] == 0 else [name, VALUES[flag]]


@pytest.fixture(scope="session")
def abbreviation_parses(env, options):
    """Real parse of the minimal argv, of each guarded flag in full and of each of its abbreviations."""
    base = ["--model-path", env["model"]]
    cases = [("base", None, base)]
    for flag in server_flags.GUARDED_FLAGS:
        if flag not in options:
            continue
        cases.append(("full", flag, base + flag_args(flag, flag, options, env)))
        for prefix in abbreviations(flag, options):
            cases.append((prefix, flag, base + flag_args(prefix, flag, options, env)))
    results = run_probe("parse", [argv for _kind, _flag, argv in cases], env["cache"])["results"]
    return [(kind, flag, argv, result) for (kind, flag, argv), result in zip(cases, results)]


def test_every_guarded_flag_is_a_real_option(options):
    assert [flag for flag in server_flags.GUARDED_FLAGS if flag not in options] == []
    assert "--tp" in abbreviations("--tp-size", options)  # sglang-facts.md 1: --tp works by prefix matching


def test_no_other_real_option_is_a_prefix_of_a_guarded_flag(options):
    """Else the prefix rule would refuse a flag SGLang reads as something else."""
    clash = sorted(name for name in options if name not in server_flags.GUARDED_FLAGS
                   and any(flag.startswith(name) for flag in server_flags.GUARDED_FLAGS))
    assert clash == []


def test_every_abbreviation_is_accepted_by_sglang_and_refused_by_us(abbreviation_parses):
    base = abbreviation_parses[0][3]
    assert base["exit"] == 0, base["stderr"]
    full = dict((flag, result) for kind, flag, _argv, result in abbreviation_parses if kind == "full")
    checked = 0
    for kind, flag, argv, result in abbreviation_parses:
        if kind == "base":
            continue
        assert result["exit"] == 0, "real parser refused %s: %s" % (argv[2:], result["stderr"][-500:])
        if kind != "full":
            if flag not in server_flags.INDIRECT_FLAGS:  # same effect as the full flag, and not the default
                assert result["values"] == full[flag]["values"] != base["values"], argv[2:]
            checked += 1
        problem = server_flags.extra_arg_problem(argv[2])
        assert problem and repr(argv[2]) in problem, argv[2]
        assert flag in problem
        with pytest.raises(argv_mod.ArgvError):
            argv_mod.check_extra_args(argv[2:])
    assert checked >= 100  # e.g. --mem-fraction, --kv-cache-dt, --cuda-graph-backend-d, --cuda-graph-conf


@pytest.mark.parametrize("example", [["--mem-fraction", "0.5"], ["--kv-cache-dt", "bf16"],
                                     ["--cuda-graph-backend-d", "disabled"], ["--mem-fraction=0.5"]])
def test_the_named_examples_are_refused(example):
    assert server_flags.extra_args_problems(example)


def test_config_and_cuda_graph_config_turn_the_decode_graph_off_and_are_refused(env):
    """What the two options smuggle: the inductor stage's argv plus either one disables decode capture."""
    inductor = stage_server_args("inductor", TINY_MODEL)
    smuggled = {"--config": ["--config", env["yaml"]], "--cuda-graph-config": ["--cuda-graph-config", DISABLE_DECODE_JSON]}
    corpus = [{"argv": inductor + extra + ["--device", "cpu"], "env": dict(argv_mod.server_env({}), SGLANG_CACHE_DIR=str(env["cache"]))}
              for extra in smuggled.values()]
    corpus = [dict(item, env={k: v for k, v in item["env"].items() if not v.startswith("/")}) for item in corpus]
    for item in corpus:
        item["env"]["SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN"] = "1"
    results = run_probe("resolve", corpus, env["cache"])["results"]
    for (flag, extra), result in zip(smuggled.items(), results):
        assert result["exit"] == 0, result["stderr"][-800:]
        assert "resolve_error" not in result, result.get("resolve_error")
        assert result["resolved"]["decode_cuda_graph_backend"] == "disabled", (flag, result["resolved"])
        assert result["resolved"]["enable_torch_compile"] is True
        problems = server_flags.extra_args_problems(extra)
        assert len(problems) == 1 and flag in problems[0]


def test_ordinary_serving_args_pass():
    assert server_flags.extra_args_problems([
        "--attention-backend=fa3", "--log-level", "debug", "--cuda-graph-max-bs-decode=512", "--cuda-graph-bs-decode",
        "1", "2", "--enable-metrics-for-all-schedulers", "--disable-cuda-graph-padding", "--random-seed=7",
        "--moe-runner-backend", "triton", "--torch-compile-max-bs", "16"]) == []


def test_json_value_is_valid():
    assert json.loads(DISABLE_DECODE_JSON)["decode"]["backend"] == "disabled"

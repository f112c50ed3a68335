"""Contract tier: sglang_options.py is SGLang 0.5.23's own option table, and read_args reads argv as its parser does.

server_flags.read_args (every scanner of the runtime) reads extra server arguments from sglang_options.OPTIONS with
argparse's prefix rule. Against the real parser (the contract venv): the table has exactly the real option strings,
each with its dest and arity; and for a corpus of argv, including abbreviations, read_args gives the values the
real parser gives, or refuses where the real parser exits with an error.
"""

import json

import pytest

from contract_probe import VENV_PYTHON, run_probe

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import server_flags, sglang_options

CORPUS = [
    ["--ep-s", "8"], ["--ep", "2"], ["--expert-parallel-size=4"], ["--moe-runner-b", "deep_gemm"],
    ["--json-model-override-args", '{"n_shared_experts": 2}'], ["--dtype", "float32"],
    ["--quantization=moe_wna16"], ["--quant", "fp8"], ["--quantizati", "fp8"], ["--disable-shared-experts-fusion"],
    ["--cuda-graph-bs-decode", "1", "2", "4"], ["--speculative-algo", "EAGLE"], ["--no-such-flag"],
    ["--mamba-radix-cache-strategy", "no_buffer", "--disable-overlap-schedule"], ["--chunked-prefill-size", "-1"],
]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    if not VENV_PYTHON.exists():
        pytest.fail("the contract venv is missing: run scripts/contract-venv.sh")
    corpus = [["--model-path", "/m"] + argv for argv in CORPUS]
    return run_probe("parse", corpus, tmp_path_factory.mktemp("options"))


def test_the_option_table_is_the_real_parsers(real):
    table = dict((name, (o["dest"], 1 if o["nargs"] is None else o["nargs"])) for name, o in real["options"].items())
    if table != sglang_options.OPTIONS:
        regenerated = "\n".join("    %r: %r," % (name, table[name]) for name in sorted(table))
        pytest.fail("sglang_options.OPTIONS differs from the real parser; the real table is:\n" + regenerated)


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=[" ".join(a) for a in CORPUS])
def test_read_args_reads_like_the_real_parser(real, index):
    result = real["results"][index]
    try:
        ours = server_flags.read_args(CORPUS[index])
    except server_flags.ArgsError:
        ours = None
    if result["exit"] != 0:
        assert ours is None, "the real parser refuses %s; read_args read %s" % (CORPUS[index], ours)
        return
    assert ours is not None, "the real parser accepts %s" % CORPUS[index]
    for dest, value in ours.items():
        if dest in result["values"]:
            real_value = result["values"][dest]
            expected = real_value if not isinstance(value, str) else str(real_value)
            assert json.dumps(value if isinstance(value, (bool, list)) else str(value)) == json.dumps(
                expected if isinstance(value, (bool, list)) else str(expected)), (dest, value, real_value)

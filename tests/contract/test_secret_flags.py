"""Contract tier: server_flags.secret_flag() masks exactly the options SGLang 0.5.23 reads a secret from.

Against the REAL parser (the contract venv): every option of SECRET_FLAGS exists and takes one string value;
every option whose destination names an API key or a password is one of them; every abbreviation the real
parser reads as a secret option is masked; no other option of the real parser is, and NOT_SECRET_PREFIXES are
exactly the real options that are a prefix of a secret one.
"""

import re

import pytest

from contract_probe import TINY_MODEL, VENV_PYTHON, abbreviations, clean_env, run_probe

from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import server_flags

SECRET_DEST = re.compile(r"(^|_)(api_key|password|passwd|secret)($|_)")


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    if not VENV_PYTHON.exists():
        pytest.fail("the contract venv %s is missing: run scripts/contract-venv.sh" % VENV_PYTHON.parent.parent)
    cache = tmp_path_factory.mktemp("secret")
    return run_probe("parse", [], cache)["options"]


def test_secret_flags_are_real_value_options(options):
    for flag in server_flags.SECRET_FLAGS:
        assert flag in options, flag
        assert options[flag]["nargs"] is None, (flag, options[flag])


def test_every_secret_option_of_the_real_parser_is_masked(options):
    secret = sorted(name for name in options if SECRET_DEST.search(name.lstrip("-").replace("-", "_")))
    assert secret and set(secret) <= set(server_flags.SECRET_FLAGS), secret


@pytest.mark.parametrize("flag", server_flags.SECRET_FLAGS)
def test_every_abbreviation_of_a_secret_option_is_masked(options, flag):
    prefixes = abbreviations(flag, options)
    assert prefixes
    for prefix in prefixes + [flag]:
        assert server_flags.secret_flag(prefix), prefix
        assert server_flags.redact_args([prefix, "s3cret", prefix + "=s3cret"]) == [
            prefix, server_flags.REDACTED, prefix + "=" + server_flags.REDACTED]


def test_no_other_real_option_is_masked(options):
    masked = sorted(name for name in options if server_flags.secret_flag(name))
    assert masked == sorted(server_flags.SECRET_FLAGS)
    shadowing = sorted(name for name in options if name not in server_flags.SECRET_FLAGS
                       and any(flag.startswith(name) for flag in server_flags.SECRET_FLAGS))
    assert shadowing == sorted(server_flags.NOT_SECRET_PREFIXES)


def test_real_sglang_logs_the_api_key_so_the_runtime_masks_server_output(tmp_path):
    """SGLang logs ``server_args=`` + redact_watermark_secrets(resolved_dict()) at startup (entrypoints/engine.py),
    which keeps api_key: the stage runtime's output pump (container/server.py) must mask it in every log."""
    import subprocess
    code = ("import sys\n"
            "from sglang.srt.server_args import prepare_server_args\n"
            "from sglang.srt.sampling.watermarking.core import redact_watermark_secrets\n"
            "a = prepare_server_args(['--model-path', sys.argv[1], '--api-key', 'sk-planted-4f1c'])\n"
            "print(redact_watermark_secrets(a.resolved_dict()))\n")
    proc = subprocess.run([str(VENV_PYTHON), "-c", code, str(TINY_MODEL)], capture_output=True, text=True,
                          env=clean_env(SGLANG_CACHE_DIR=str(tmp_path)), cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "sk-planted-4f1c" in proc.stdout
    assert server_flags.secret_values(["--api-key", "sk-planted-4f1c"]) == ["sk-planted-4f1c"]

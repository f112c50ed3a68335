"""server_flags.redact_args: the values of SGLang's secret server options never reach a record.

tests/contract/test_secret_flags.py checks the list of secret options against the real parser.
"""


import pytest


from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import server_flags

R = server_flags.REDACTED


@pytest.mark.parametrize("args, shown", [
    (["--api-key", "s3cret"], ["--api-key", R]),
    (["--api-key=s3cret"], ["--api-key=" + R]),
    (["--admin-api-key", "s3cret", "--log-level=info"], ["--admin-api-key", R, "--log-level=info"]),
    (["--ssl-keyfile-password=pw", "--ssl-keyfile", "/k.pem"], ["--ssl-keyfile-password=" + R, "--ssl-keyfile", "/k.pem"]),
    (["--api", "s3cret", "--adm=s3cret"], ["--api", R, "--adm=" + R]),  # argparse abbreviations
    (["--api-key", "--looks-like-a-flag"], ["--api-key", R]),  # whatever follows is the value
    (["--api-key=a=b"], ["--api-key=" + R]),
    (["--attention-backend", "flashinfer", "--api-key"], ["--attention-backend", "flashinfer", "--api-key"]),
    (["--served-model-name", "api-key"], ["--served-model-name", "api-key"]),
])
def test_secret_values_are_masked_in_both_forms(args, shown):
    assert server_flags.redact_args(args) == shown


def test_a_full_server_command_line_keeps_everything_but_the_secret():
    argv = ["python3", "-m", "sglang.launch_server", "--model-path", "/models/m", "--port", "30000",
            "--api-key", "s3cret"]
    assert server_flags.redact_args(argv) == argv[:-1] + [R]


def test_the_digest_form_changes_with_the_secret_and_never_shows_it():
    one = server_flags.redact_args(["--api-key", "s3cret-one"], digest=True)
    two = server_flags.redact_args(["--api-key=s3cret-two"], digest=True)
    assert one != server_flags.redact_args(["--api-key", "s3cret-two"], digest=True)
    assert one == server_flags.redact_args(["--api-key", "s3cret-one"], digest=True)
    assert "s3cret" not in repr(one + two)
    assert one[1].startswith("<redacted sha256:") and two[0].startswith("--api-key=<redacted sha256:")


def test_args_without_a_secret_are_unchanged():
    args = ["--attention-backend=flashinfer", "--cuda-graph-bs-decode", "1", "2"]
    assert server_flags.redact_args(args) == args == server_flags.redact_args(args, digest=True)


def test_secret_values_are_what_a_server_log_must_not_show():
    args = ["--model-path", "/m", "--api-key", "short", "--admin-api-key=longer-one", "--api-key="]
    assert server_flags.secret_values(args) == ["longer-one", "short"]
    assert server_flags.secret_values(["--attention-backend", "flashinfer"]) == []

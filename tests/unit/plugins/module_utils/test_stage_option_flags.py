"""contract.STAGE_OPTION_FLAGS: the one table of the options the host modules pass to the runtime's command line."""

import pytest

from ansible_collections.sglang.prep.plugins.module_utils import _docker_exec as dx
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep import contract
from ansible_collections.sglang.prep.plugins.module_utils.sglang_prep.container import cli


def _stage_parser_actions():
    """{flag: argparse action} of the runtime's ``stage`` subcommand."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # pylint: disable=protected-access
    return dict((flag, action) for action in sub.choices["stage"]._actions for flag in action.option_strings)


@pytest.mark.parametrize("option, flag, form", contract.STAGE_OPTION_FLAGS)
def test_the_runtime_takes_each_flag_into_the_option_of_the_same_name(option, flag, form):
    actions = _stage_parser_actions()
    assert flag in actions, "the runtime's stage subcommand has no %s" % flag
    assert actions[flag].dest == option
    assert option in dx.stage_options_spec()


def test_every_shared_option_the_modules_take_is_in_the_table_or_stays_on_the_host():
    host_only = {"env", "user", "docker_cli"}  # how the module reaches the container, not a runtime option
    assert set(dx.stage_options_spec()) - host_only == set(option for option, _f, _form in contract.STAGE_OPTION_FLAGS)


def _params(**given):
    params = dict((name, spec.get("default")) for name, spec in dx.stage_options_spec().items())
    params.update(model="/models/m", **given)
    return params


def test_the_command_line_is_written_from_the_table():
    argv = dx.stage_options_argv(_params(lock_timeout=5.0, extra_server_args=["--enable-mixed-chunk"],
                                         require_pinned_stack=True, moe_batch_sizes=[1, 2]))
    assert argv == ["--model", "/models/m", "--tp", 1, "--port", contract.SERVER_PORT, "--lock-timeout", 5.0,
                    "--extra-server-arg=--enable-mixed-chunk", "--require-pinned-stack", "--moe-batch-sizes", 1, 2]
    assert cli.build_parser().parse_args(["stage", "deep_gemm"] + [str(a) for a in argv]).lock_timeout == 5.0


def test_a_secret_extra_arg_keeps_all_of_them_off_the_command_line():
    argv = dx.stage_options_argv(_params(extra_server_args=["--api-key", "s3cret", "--enable-mixed-chunk"]))
    assert not any("extra-server-arg" in str(a) or a == "s3cret" for a in argv)

"""Prints the model-zoo table (test_zoo.py) in the terminal summary, so it shows in `make test`'s log."""


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    table = getattr(config, "zoo_table", None)
    if table:
        terminalreporter.section("model zoo: SGLang 0.5.23 vs plan")
        terminalreporter.write_line(table)

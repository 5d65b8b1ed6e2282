"""The chaos scenarios' table, printed at the end of the test session."""

from __future__ import annotations

import pytest

from tests.chaos.harness import table
from tests.chaos.test_chaos import RESULTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The table of every scenario run (posts, published, duplicates, lost, stuck, …)."""
    if RESULTS:
        terminalreporter.section("crash and fault scenarios")
        terminalreporter.write_line(table(RESULTS))

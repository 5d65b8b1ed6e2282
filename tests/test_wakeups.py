"""What a wake-up from another replica sets off here, when it fails."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.app import WAKEUPS
from gateway.storage import policies as policy_sql
from tests.conftest import Gateway, finding_the_database_gone


async def test_a_policy_wake_up_with_the_database_gone_says_so_in_one_line(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The policy read a ``policy`` notification sets off, with the database not answering, is
    one warning with no traceback, as every background loop says it; a failure of another kind
    keeps its traceback. Before: the outage was logged as a crash, traceback and all."""
    gone = finding_the_database_gone()

    async def broken(*_: object, **__: object) -> Any:
        raise RuntimeError("a bug")

    wakeups = gateway.app[WAKEUPS]
    await wakeups.stop()  # only the test wakes it: on PostgreSQL, once listening, it wakes every part
    logged: list[list[tuple[str, str, str | None, bool]]] = []
    for failure in (gone, broken):
        monkeypatch.setattr(policy_sql, "heads", failure)
        with capture_logs() as logs:
            wakeups._heard(None, 0, "byline_test", "policy")  # another replica recorded a policy
            assert wakeups._policy._task is not None
            await wakeups._policy._task  # the policy read it set off
        logged.append([(e["event"], e["log_level"], e.get("error"), "exc_info" in e) for e in logs])
    assert logged == [
        [("wakeup_action_failed", "warning", "database_unavailable", False)],
        [("wakeup_action_failed", "error", None, True)],
    ]

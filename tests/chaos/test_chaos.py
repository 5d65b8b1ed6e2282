"""The crash and fault scenarios of issue 17 at the size CI runs (``make chaos``: full size).

Each runs real ``byline serve`` processes, a real PostgreSQL (or SQLite), real SIGKILLs and a
platform stand-in process; see ``tests/chaos/harness.py`` for what is checked afterwards.
"""

from __future__ import annotations

import pytest

from tests.chaos.harness import Result, Scenario, run
from tests.chaos.scenarios import scenarios
from tests.conftest import PG_DSN

RESULTS: list[Result] = []
"""Every scenario's result, for the table at the end of the session (``conftest.py``)."""

pytestmark = pytest.mark.slow


def _failure(result: Result) -> str:
    return "\n".join([*result.problems[:40], *result.notes])


# Without PostgreSQL (BYLINE_TEST_POSTGRES=off, or none answers: the session says so loudly at
# its end, as for every storage test) only the SQLite scenario runs.
@pytest.mark.parametrize("name", [n for n, s in scenarios().items() if PG_DSN is not None or s.database == "sqlite"])
async def test_scenario(name: str) -> None:
    """Through kills, faults and restarts: no post twice on its platform, none lost or stuck,
    each approval counted once, one policy record per version, and the log verifies."""
    scenario = scenarios()[name]
    result = await run(scenario, say=print)
    RESULTS.append(result)
    assert result.ok, _failure(result)
    # The chaos happened: a run without it proves nothing.
    if scenario.kill_every:
        assert result.kills >= 2, f"only {result.kills} SIGKILL(s)"
    assert result.restarts_of_postgres == scenario.postgres_restarts
    if scenario.fail_rate:
        # Every kind of fault, but a dropped answer: drops are drawn on the creates sent while
        # the faults are on, and a replica holding its claims until it has put in force a policy
        # another one recorded can leave only a few such creates in the small run.
        assert "rate_limited" in result.injected, result.injected
        assert any(k.startswith("failed_") for k in result.injected), result.injected
        if scenario.posts >= 1000:
            assert "dropped" in result.injected, result.injected
    assert result.published >= scenario.posts // 2, "most posts are meant to go out"


async def test_the_harness_catches_duplicates_and_losses() -> None:
    """A platform that forgets Idempotency-Keys and loses answers after storing the status
    gets a second status from Byline's retry, and one that refuses a post for good leaves it
    failed: the harness counts each as a duplicate or a loss, and fails."""
    scenario = Scenario(name="self-check", posts=16, database="sqlite", replicas=1, drop_rate=0.5,
                        honour_keys=False, refuse_rate=0.3, policy_change=False, concurrency=4,
                        drain_seconds=60)
    result = await run(scenario, say=print)
    RESULTS.append(result)
    assert result.duplicates > 0, _failure(result)
    assert result.lost > 0, _failure(result)
    assert not result.ok
    assert any("on its platform" in p and "times" in p for p in result.problems), result.problems
    assert any(" failed: " in p for p in result.problems), result.problems

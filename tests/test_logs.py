"""The gateway's log lines as an operator's log collector reads them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

_LOG_TWO_LINES = """
from gateway.logs import configure
import structlog
configure(fmt="json")
structlog.get_logger("t").info("first", n=1)
structlog.get_logger("t").warning("second", n=2)
"""


def test_json_lines_say_when_in_rfc3339_utc() -> None:
    """Each line is one JSON object with its event, level and a timestamp in RFC 3339 UTC to
    the microsecond, with a Z, of the moment it was logged, in the order logged."""
    before = datetime.now(UTC)
    done = subprocess.run([sys.executable, "-c", _LOG_TWO_LINES], capture_output=True, text=True, check=True)
    after = datetime.now(UTC)
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    said = [(line["event"], line["level"], line["n"]) for line in lines]
    assert said == [("first", "info", 1), ("second", "warning", 2)]
    stamps = [line["timestamp"] for line in lines]
    for stamp in stamps:
        assert stamp.endswith("Z") and len(stamp) == len("2026-12-05T10:29:47.836453Z"), stamp
        moment = datetime.fromisoformat(stamp)
        assert before - timedelta(seconds=1) <= moment <= after + timedelta(seconds=1), (stamp, before, after)
    assert stamps[0] <= stamps[1]

"""Every ``byline`` command starts by building the whole command line's parser; the parser loads
nothing of the gateway's services, web server or settings. An auditor's ``byline audit verify``
and an admin's ``byline token list`` wait for what they use, not for the policy rules' text tools
and the platforms' clients (a second of every start, before the people commands imported them
lazily)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("aiohttp", "pydantic", "structlog", "twitter_text", "gateway.services", "gateway.policy",
         "gateway.settings", "gateway.storage", "gateway.http", "adapters")
"""Modules that only the commands using them should load."""


def _loaded_by_the_parser() -> list[str]:
    script = (
        "import json, sys\n"
        "from gateway.cli import build_parser\n"
        "build_parser().parse_args(['audit', 'verify', '--key', 'k', '--export', 'x'])\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    return list(json.loads(done.stdout))


def test_the_parser_loads_no_service_web_server_or_settings() -> None:
    loaded = _loaded_by_the_parser()
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []
    # The check itself sees what a command loads: the parser's own modules are there.
    assert "gateway.cli" in loaded and "gateway.people_cli" in loaded and "gateway.audit.commands" in loaded


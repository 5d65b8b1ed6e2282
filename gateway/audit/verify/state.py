"""The auditor's state file: the checkpoints it has seen before, by log key.

Each run checks the log against every checkpoint remembered here, so a log rolled back or
rewritten since an earlier run is caught even when it now offers only checkpoints of its own.
It is written (whole, then renamed into place) only after a run whose tree held.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gateway.audit.note import Verifier
from gateway.audit.verify.report import SourceError


def default_state_path() -> Path:
    """``$XDG_STATE_HOME/byline/audit-state.json`` (``~/.local/state`` when unset)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "byline" / "audit-state.json"


def read_state(path: Path | None, key: Verifier) -> list[bytes]:
    """The checkpoint notes remembered for the log of ``key`` (none without a file)."""
    if path is None or not path.exists():
        return []
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        notes = state["logs"].get(key.to_text(), [])
        return [n.encode("utf-8") for n in notes if isinstance(n, str)]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):  # UnicodeError is a ValueError
        raise SourceError(f"the state file {path} is unreadable; move it away to start afresh") from None


def write_state(path: Path, key: Verifier, notes: list[bytes]) -> None:
    """Remember ``notes`` for the log of ``key``, keeping what the file holds for other logs."""
    state: dict[str, Any] = {"logs": {}}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict) and isinstance(loaded.get("logs"), dict):
                state = loaded
        except (OSError, ValueError):
            pass
    state["logs"][key.to_text()] = [n.decode("utf-8") for n in notes]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)

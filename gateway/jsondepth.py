"""How deep JSON text nests, counted on its bytes before any parser runs.

Python's parsers recurse once a level: a body or a log line nested a thousand levels deep
crashes them (or, parsed, whatever walks or pickles the value next). Both the HTTP surfaces and
the auditor's verifier count first and refuse what nests deeper than they ever need.
"""

from __future__ import annotations

import re

# A JSON string (skipped: brackets inside it do not nest) or one bracket. On UTF-8 text only:
# in UTF-8 no byte of a multi-byte character is a quote, a backslash or a bracket.
_NESTING = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def nests_deeper(raw: bytes, limit: int) -> bool:
    """Whether the JSON text ``raw`` opens more than ``limit`` arrays and objects inside each other."""
    depth = 0
    for token in _NESTING.finditer(raw):
        bracket = token.group()
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif bracket in (b"]", b"}"):
            depth -= 1
    return False

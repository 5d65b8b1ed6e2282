"""``python -m tests.chaos [--full] [--keep DIR] [NAME …]``: run the scenarios, print the table,
exit 1 on any duplicate, loss, stuck post, bad policy history or failed verification."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tests.chaos.harness import Result, run, table
from tests.chaos.scenarios import FULL, scenarios


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios named (all by default)."""
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"scenarios to run (default: all of {', '.join(scenarios())})")
    parser.add_argument("--full", action="store_true", default=FULL, help="full size (as make chaos)")
    parser.add_argument("--keep", type=Path, help="keep each run's logs under this directory")
    args = parser.parse_args(argv)
    chosen = scenarios(full=args.full)
    unknown = [n for n in args.names if n not in chosen]
    if unknown:
        parser.error(f"no scenario {', '.join(unknown)}; there are {', '.join(chosen)}")
    results: list[Result] = []
    for name in args.names or list(chosen):
        result = asyncio.run(run(chosen[name], keep=args.keep))
        results.append(result)
        for problem in result.problems[:50]:
            print(f"  PROBLEM: {problem}")
        for note in result.notes:
            print(f"  note: {note}")
    print()
    print(table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

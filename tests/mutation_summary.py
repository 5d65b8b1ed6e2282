"""The summary of a `make mutation` run: killed mutants per area, against a 90% target.

mutmut records each mutant's outcome beside the mutated copy (``mutants/**/*.py.meta``). A
mutant counts as killed when the tests failed (or hung past mutmut's timeout) with it in place.
Survivors that change nothing a caller can observe are listed, each with why, in
``tests/mutation_equivalent.txt`` and count as neither killed nor survived. Exits 1 when an
area is under target, so a weakened test shows.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.90
AREAS = {
    "policy": ("gateway/policy/",),
    "lifecycle": ("gateway/lifecycle.py",),
    "authorization and approvals": ("gateway/services/authorization.py",),
    "replay": ("gateway/audit/replay.py",),
    "gate settings": ("gateway/audit/gates.py",),
    "publisher": ("gateway/services/publisher.py",),
}
KILLED = {1, 3, 36, -24, 24, 37}
SURVIVED = {0}
NO_TESTS = {5, 33}


def equivalent() -> dict[str, str]:
    """Mutant name -> why it cannot be told apart from the original."""
    path = ROOT / "tests" / "mutation_equivalent.txt"
    found: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            name, _, why = line.partition(" ")
            if name and not name.startswith("#"):
                found[name] = why.strip()
    return found


def main() -> int:
    """Print the table and the survivors; 1 when an area misses the target."""
    known = equivalent()
    ok = True
    print(f"{'area':34} {'mutants':>8} {'killed':>7} {'survived':>9} {'untested':>9} {'equiv.':>7} {'score':>7}")
    survivors: list[str] = []
    for area, prefixes in AREAS.items():
        counts: Counter[str] = Counter()
        for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
            source = meta.relative_to(ROOT / "mutants").as_posix().removesuffix(".meta")
            if not source.startswith(prefixes):
                continue
            for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
                if name in known:
                    counts["equivalent"] += 1
                elif code in KILLED:
                    counts["killed"] += 1
                elif code in SURVIVED or code in NO_TESTS:
                    counts["survived" if code in SURVIVED else "untested"] += 1
                    survivors.append(f"{name} ({'survived' if code in SURVIVED else 'no test reaches it'})")
                else:
                    counts["unchecked"] += 1
        judged = counts["killed"] + counts["survived"] + counts["untested"]
        score = counts["killed"] / judged if judged else 0.0
        ok = ok and score >= TARGET and counts["unchecked"] == 0
        total = judged + counts["equivalent"] + counts["unchecked"]
        print(f"{area:34} {total:>8} {counts['killed']:>7} {counts['survived']:>9} {counts['untested']:>9} "
              f"{counts['equivalent']:>7} {score:>7.1%}" + ("" if not counts["unchecked"] else
                                                            f"  ({counts['unchecked']} not run)"))
    if survivors:
        print(f"\n{len(survivors)} mutants not killed (see `mutmut show NAME`):")
        for line in survivors:
            print("  " + line)
    print(f"\ntarget: {TARGET:.0%} killed in each area: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

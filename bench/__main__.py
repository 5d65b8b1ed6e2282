"""Benchmarks: ``python -m bench`` runs all of them; ``python -m bench NAME [options]`` runs one.

The benchmarks, each measured against a baseline in the same run (a shared machine's figures
drift; a ratio taken side by side does not):

- ``append``: the audit log's append rate against plain batched INSERTs (``bench/append.py``);
- ``verify``: ``byline audit verify`` against the same export parsed and leaf-hashed with no
  checks (``bench/verify.py``);
- ``direct``: the direct tier end to end against a bare pass-through proxy (``bench/direct.py``);
- ``scheduler``: 100,000 delayed posts due in the same minute, publish lag and memory
  (``bench/scheduler.py``);
- ``approvals``: co-signed posts approved by concurrent approvers against bare compare-and-set
  UPDATEs (``bench/approvals.py``).

Each prints its details as it goes; at the end, every target with what was measured against it
and whether it was met. The exit status is 0 whatever the figures (they are information: a
target not met is said, not an error); it is 1 only when a benchmark failed to run.
``python -m bench NAME --help`` shows a benchmark's own options.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from bench.report import Verdict, summary

ORDER = ("append", "verify", "direct", "scheduler", "approvals")
"""Every benchmark, in the order ``python -m bench`` runs them."""
QUICK: dict[str, list[str]] = {
    "append": ["--events", "20000", "--rounds", "1"],
    "verify": ["--events", "20000", "--rounds", "1"],
    "approvals": ["--posts", "500", "--rounds", "1"],
}
"""Small sizes for ``--quick`` (a check that everything runs, not a measurement)."""


def _module(name: str) -> Any | None:
    """A benchmark's module, or None when it has not been written (yet)."""
    try:
        return importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bench.{name}":
            return None
        raise


def _call(run: Callable[..., Sequence[Verdict]], argv: list[str], options: dict[str, Any]) -> Sequence[Verdict]:
    """A module's ``run``: given command-line arguments if it takes them (ours), else the
    keyword options it names (``seconds``, ``quick``)."""
    params = inspect.signature(run).parameters
    if "argv" in params:
        return run(argv)
    return run(**{k: v for k, v in options.items() if k in params})


def run_all(args: argparse.Namespace) -> tuple[list[Verdict], list[str]]:
    """Run every benchmark asked for; (their verdicts, the ones that failed to run)."""
    verdicts: list[Verdict] = []
    failed: list[str] = []
    for name in args.only or ORDER:
        print(f"\n== {name} ==", flush=True)
        module = _module(name)
        if module is None or not hasattr(module, "run"):
            print(f"bench/{name}.py is not there yet: not run", flush=True)
            verdicts.append(Verdict(benchmark=name, measured=f"not run (bench/{name}.py missing)",
                                    target="see the README", met=False, ran=False))
            continue
        argv: list[str] = list(QUICK.get(name, [])) if args.quick else []
        if args.rounds is not None and name in ("append", "verify", "approvals"):
            argv += ["--rounds", str(args.rounds)]
        options: dict[str, Any] = {"quick": args.quick}
        if args.seconds is not None:
            options["seconds"] = args.seconds
        started = time.perf_counter()
        try:
            verdicts += _call(module.run, argv, options)
        except Exception:  # one benchmark's failure is said, and the others still run
            traceback.print_exc()
            failed.append(name)
            verdicts.append(Verdict(benchmark=name, measured="failed to run (see above)",
                                    target="see the README", met=False))
        print(f"({name}: {time.perf_counter() - started:.0f} s)", flush=True)
    return verdicts, failed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench`` (all) or ``python -m bench NAME [options]`` (one)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in ORDER:
        name, rest = argv[0], argv[1:]
        module = _module(name)
        if module is None:
            print(f"bench/{name}.py is not there yet: not run")
            return 0
        if name in ("direct", "scheduler"):
            module.main(rest)  # their own options and summary; the figures are information
            return 0
        print(summary(module.run(rest)))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n\n")[0],
        epilog=f"python -m bench NAME --help: one benchmark's options ({', '.join(ORDER)})")
    parser.add_argument("--quick", action="store_true", help="small sizes: a check that each runs, not a measurement")
    parser.add_argument("--rounds", type=int, help="rounds of append, verify and approvals (default: each one's)")
    parser.add_argument("--seconds", type=float, help="the direct benchmark's seconds a point (default: its own)")
    parser.add_argument("--only", nargs="+", choices=ORDER, help="run only these, in this order")
    args = parser.parse_args(argv)
    verdicts, failed = run_all(args)
    print(summary(verdicts))
    if failed:
        print(f"failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

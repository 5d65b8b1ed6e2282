"""The worker processes that check runs of entries while the caller's process joins them in order."""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator
from typing import Any

from gateway.audit.verify.chunk import Chunk
from gateway.audit.verify.sources import Job, run_job


class Workers:
    """Worker processes, forked at once, taking jobs in turn; results come back in job order.

    multiprocessing.Pool would do, but its worker-handler thread wakes up each time a result
    is waiting in the pipe, and with results coming back all the time it spins: nearly a CPU
    second on a million entries, in the process that has the in-order part to do as well.
    """

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        for _ in range(count):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(theirs,), daemon=True)
            proc.start()
            theirs.close()
            self._conns.append(mine)
            self._procs.append(proc)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(None)
            conn.close()
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()

    def map(self, jobs: Iterator[Job], *, ahead: int) -> Iterator[Chunk]:
        """Run each job on the workers in turn (``ahead`` queued on each); yield the results in order."""
        conns = self._conns
        sent = received = 0
        for job in jobs:
            if sent - received >= ahead * len(conns):
                yield self._result(conns[received % len(conns)])
                received += 1
            conns[sent % len(conns)].send(job)
            sent += 1
        while received < sent:
            yield self._result(conns[received % len(conns)])
            received += 1

    @staticmethod
    def _result(conn: Any) -> Chunk:
        try:
            ok, value = conn.recv()
        except EOFError:
            raise RuntimeError("a verification worker process died") from None
        if not ok:
            raise RuntimeError(f"a verification worker failed: {value}")
        chunk: Chunk = value
        return chunk


def _serve(conn: Any) -> None:
    """A worker process: run jobs until told to stop."""
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            result: tuple[bool, Any] = (True, run_job(job))
        except Exception as exc:  # told back to the caller's process, which raises it
            result = (False, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(result)
        except OSError:  # the caller's process stopped listening (it failed, or was stopped)
            return

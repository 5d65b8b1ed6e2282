"""Several worker processes behind one address: ``BYLINE_WORKERS``.

One Python process runs on one core at a time. With ``BYLINE_WORKERS=N``, ``byline serve`` binds
its address, then forks N workers; each runs the whole gateway on the listening sockets it
inherited, and the kernel hands each new connection to whichever worker accepts it first. The
workers share the database as replicas do (see the README's "Several replicas"): each post is
published once, the log is one log, and on SQLite they take turns at the writer
(``gateway.storage.db.WriterTurns``).

The process that forked them only supervises: SIGTERM or SIGINT reaches every worker, which
stops as a single gateway does; when one worker ends by itself, the others are stopped too and
``byline serve`` exits with its status, for the service manager (systemd, Docker, Kubernetes) to
start the gateway again, as it would a single process. A worker whose supervisor dies is sent
SIGTERM (Linux), so none is left behind holding the port.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import structlog

logger = structlog.get_logger("byline.workers")

STOP_SECONDS = 30.0
"""How long the workers have to stop once told to, before they are killed."""

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerSlot:
    """Which worker this process is, and the folder the workers share (their metrics)."""

    index: int
    count: int
    shared: Path


current: WorkerSlot | None = None
"""This process's slot, when it is one of several workers; None for a gateway on its own."""


def _die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent (the supervisor) dies."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def run_workers(count: int, serve: Callable[[], int]) -> int:
    """Fork ``count`` workers, each running ``serve()`` (its exit status is the worker's), and
    supervise them until they have all ended; the status to exit with."""
    global current
    shared = Path(tempfile.mkdtemp(prefix="byline-workers-"))
    children: dict[int, int] = {}  # pid -> worker index
    parent = os.getpid()
    try:
        for index in range(count):
            pid = os.fork()
            if pid == 0:  # the worker
                code = 1
                try:
                    _die_with_parent()
                    if os.getppid() != parent:  # the supervisor died before the request took
                        os._exit(1)
                    current = WorkerSlot(index=index, count=count, shared=shared)
                    code = serve()
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
                except BaseException:
                    logger.exception("worker_crashed", worker=index)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            children[pid] = index
        logger.info("workers_started", workers=count, pids=sorted(children))
        return _supervise(children)
    finally:
        for pid in list(children):  # whatever happened here, no worker outlives the supervisor
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        shutil.rmtree(shared, ignore_errors=True)


def _supervise(children: dict[int, int]) -> int:
    """Wait for the workers; pass SIGTERM and SIGINT on; stop the rest when one ends."""
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        _signal_all(children, signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    status = 0
    deadline: float | None = None
    while children:
        if stopping and deadline is None:
            deadline = time.monotonic() + STOP_SECONDS
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if deadline is not None and time.monotonic() > deadline:
                _signal_all(children, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.05)
            continue
        index = children.pop(pid, None)
        if index is None:
            continue  # a process not ours, reaped as PID 1 must (in a container)
        code = os.waitstatus_to_exitcode(wait_status)
        if not stopping:
            # A worker ended by itself: the gateway is no longer whole; stop the rest.
            logger.error("worker_ended", worker=index, pid=pid, status=code)
            status = code if code > 0 else 1
            stopping.append(0)
            _signal_all(children, signal.SIGTERM)
        elif code not in (0, -signal.SIGTERM):
            status = status or (code if code > 0 else 1)
    return status


def _signal_all(children: dict[int, int], signum: int) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

"""Run the real `byline serve` as a subprocess, as an operator would, for tests from outside."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

STARTED_EVENT = '"gateway_started"'


def children_of(pid: int) -> list[int]:
    """The processes ``pid`` started that are still running (a `byline serve`'s workers); none
    once it has ended."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(child) for child in children.read().split()]
    except OSError:
        return []


class ServeProcess:
    """One `byline serve` process with its own environment and a log file.

    It listens on a port it picks itself (``BYLINE_PORT=0``) and reports in its
    ``gateway_started`` log line, so no other process can take the port in between; each start
    (a restart too) may get another port, which ``port`` and ``base`` then give.
    """

    def __init__(self, workdir: Path, *, db_url: str, policy_dir: Path, **settings: str) -> None:
        self.port: int | None = None
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
        self.env.update(
            BYLINE_DATABASE_URL=db_url, BYLINE_POLICY_DIR=str(policy_dir), BYLINE_PORT="0",
            BYLINE_SCHEDULER_INTERVAL_SECONDS="0.1", BYLINE_LOG_KEY_FILE=str(workdir / "log.key"),
            BYLINE_LOG_FORMAT="json", BYLINE_ALLOW_INSECURE_PLATFORMS="true",
        )
        self.env.update({f"BYLINE_{k.upper()}": v for k, v in settings.items()})
        self.log_path = next(workdir / f"serve-{n}.log" for n in itertools.count()
                             if not (workdir / f"serve-{n}.log").exists())
        self.log_path.touch()
        self.proc: subprocess.Popen[str] | None = None
        self.logs: list[str] = []

    @property
    def base(self) -> str:
        """The gateway's address, once started."""
        assert self.port is not None, "the gateway has not started"
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a `byline` command with this gateway's settings."""
        return subprocess.run([sys.executable, "-m", "gateway", *args], env=self.env,
                              capture_output=True, text=True, check=check)

    def token(self, user: str) -> str:
        """A token made with the CLI, as an admin would: on a database `byline migrate` made
        first, when the gateway has not started yet (the CLI makes none)."""
        self.cli("migrate")
        token = self.cli("token", "create", "--user", user).stdout.strip()
        assert token.startswith("byl_") and "\n" not in token
        return token

    async def start(self) -> None:
        """Start the process, learn its port from its gateway_started line, and wait until
        /readyz answers 200 (30 s at most)."""
        offset = self.log_path.stat().st_size  # what earlier runs logged
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - the server runs beside the test
                [sys.executable, "-m", "gateway", "serve"], env=self.env, stdout=log,
                stderr=subprocess.STDOUT, text=True,
            )
        self.port = None
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.proc.poll() is None, self.log_path.read_text()
                if self.port is None:
                    self.port = self._reported_port(offset)
                else:
                    try:
                        async with session.get(self.base + "/readyz") as resp:
                            if resp.status == 200:
                                return
                    except aiohttp.ClientConnectionError:
                        pass
                assert time.monotonic() < deadline, f"gateway did not become ready:\n{self.log_path.read_text()}"
                await asyncio.sleep(0.05)

    def _reported_port(self, offset: int) -> int | None:
        """The port in this run's gateway_started line, once it has been logged."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            lines = log.read().decode("utf-8", "replace").split("\n")[:-1]  # whole lines only
        for line in lines:
            if STARTED_EVENT in line:
                return int(json.loads(line)["port"])
        return None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no last words, as a crash or an OOM kill (of every process of
        it: its workers first, when it runs several, then their supervisor)."""
        assert self.proc is not None
        for pid in children_of(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self) -> str:
        """Stop gracefully (if running) and return everything it logged."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        return self.log_path.read_text() if self.log_path.exists() else ""

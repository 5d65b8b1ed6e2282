"""Run the real `byline serve` as a subprocess, as an operator would, for tests from outside."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """One `byline serve` process with its own environment and a log file."""

    def __init__(self, workdir: Path, *, db_url: str, policy_dir: Path, **settings: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
        self.env.update(
            BYLINE_DATABASE_URL=db_url, BYLINE_POLICY_DIR=str(policy_dir), BYLINE_PORT=str(self.port),
            BYLINE_SCHEDULER_INTERVAL_SECONDS="0.1", BYLINE_LOG_KEY_FILE=str(workdir / "log.key"),
            BYLINE_LOG_FORMAT="json",
        )
        self.env.update({f"BYLINE_{k.upper()}": v for k, v in settings.items()})
        self.log_path = workdir / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.logs: list[str] = []

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a `byline` command with this gateway's settings."""
        return subprocess.run([sys.executable, "-m", "gateway", *args], env=self.env,
                              capture_output=True, text=True, check=check)

    def token(self, user: str) -> str:
        """A token made with the CLI, as an admin would."""
        token = self.cli("token", "create", "--user", user).stdout.strip()
        assert token.startswith("byl_") and "\n" not in token
        return token

    async def start(self) -> None:
        """Start the process and wait until /readyz answers 200."""
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - the server runs beside the test
                [sys.executable, "-m", "gateway", "serve"], env=self.env, stdout=log,
                stderr=subprocess.STDOUT, text=True,
            )
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.proc.poll() is None, self.log_path.read_text()
                try:
                    async with session.get(self.base + "/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, "gateway did not become ready"
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no clean-up, no last words, as a crash or an OOM kill."""
        assert self.proc is not None
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

"""deploy/ checked as far as a machine without a container runtime can.

The Dockerfile is linted with hadolint and its build stage is replayed in a fresh virtual
environment (the installed gateway then serves its pages and answers the image's own health
check); the compose file is read by the Compose CLI itself (`docker-compose config`, which needs
no daemon) and the proxy's Caddyfile by Caddy (`caddy adapt`); the Kubernetes manifests are
checked against the Kubernetes schemas; the systemd unit with `systemd-analyze`. What cannot be
checked here: the image build itself (no Docker daemon), and the stacks running (see the
README's "Running Byline in production").
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import kubernetes_validate
import pytest
import yaml
import yarl
from aiohttp import web
from dockerfile_parse import DockerfileParser

from gateway.cli import build_parser
from gateway.policy.credentials import CredentialRules
from gateway.policy.loader import check_dir
from gateway.storage.schema import LATEST

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
# The oldest Kubernetes release still maintained when these were written, and the newest known.
K8S_VERSIONS = ("1.32.0", kubernetes_validate.latest_version())
# The Secrets the manifests name, each created by the operator (the README says how).
K8S_SECRETS = {"byline-database", "byline-log-key", "byline-platform-credentials"}


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Byline's settings or this virtual environment."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BYLINE_", "COMPOSE_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != BIN)
    env.update(extra)
    return env


def _commands() -> set[str]:
    """The `byline` commands there are."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert isinstance(sub.choices, dict)
    return set(sub.choices)


# --- the Dockerfile -----------------------------------------------------------------------------


def _stages() -> dict[str, list[dict[str, Any]]]:
    """The Dockerfile's instructions by stage name (comments left out)."""
    stages: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] | None = None
    for ins in DockerfileParser(path=str(DEPLOY / "Dockerfile")).structure:
        if ins["instruction"] == "FROM":
            name = ins["value"].split()[-1] if " AS " in ins["value"].upper() else str(len(stages))
            current = stages.setdefault(name, [])
        if current is not None and ins["instruction"] != "COMMENT":
            current.append(ins)
    return stages


def test_dockerfile_passes_hadolint() -> None:
    """hadolint finds nothing in the Dockerfile (each ignored rule carries its reason beside it)."""
    done = subprocess.run([str(BIN / "hadolint"), "--no-color", str(DEPLOY / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is real: a Dockerfile running as root with an unpinned base and curl is refused."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nCMD byline serve\n")
    done = subprocess.run([str(BIN / "hadolint"), "--no-color", str(bad)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "DL3006" in done.stdout  # the untagged base image


def test_image_runs_as_a_user_with_nothing_secret_baked_in() -> None:
    """Two stages on one base; the image that runs copies only the built virtual environment,
    runs as a numeric non-root user, checks /healthz, and names its key, secrets and policies
    as paths to be mounted, never files copied in."""
    stages = _stages()
    assert list(stages) == ["build", "runtime"]
    bases = {s[0]["value"].split()[0] for s in stages.values()}
    assert bases == {"${PYTHON_IMAGE}"}
    arg = next(i for i in DockerfileParser(path=str(DEPLOY / "Dockerfile")).structure if i["instruction"] == "ARG")
    assert arg["value"].startswith("PYTHON_IMAGE=python:3.11-slim")
    runtime = stages["runtime"]
    copies = [i["value"] for i in runtime if i["instruction"] in ("COPY", "ADD")]
    assert copies == ["--from=build /opt/byline /opt/byline"]
    build_copies = " ".join(i["value"] for i in stages["build"] if i["instruction"] == "COPY")
    assert not re.search(r"secret|\.key|polic|\.env|var/", build_copies), build_copies
    user = [i["value"] for i in runtime if i["instruction"] == "USER"]
    assert len(user) == 1 and user[0].split(":")[0].isdigit() and user[0].split(":")[0] != "0"
    runs = " ".join(i["value"] for i in runtime if i["instruction"] == "RUN")
    assert "g++" not in runs and "-dev" not in runs  # no compiler nor headers where it runs
    env = " ".join(i["value"] for i in runtime if i["instruction"] == "ENV")
    for setting in ("BYLINE_LOG_KEY_FILE=/var/lib/byline/", "BYLINE_SECRETS_DIR=/etc/byline/",
                    "BYLINE_POLICY_DIR=/etc/byline/", "BYLINE_HOST=0.0.0.0"):
        assert setting in env
    health = [i["value"] for i in runtime if i["instruction"] == "HEALTHCHECK"]
    assert len(health) == 1 and "/healthz" in health[0] and "curl" not in health[0]
    assert [i["value"] for i in runtime if i["instruction"] == "CMD"] == ['["byline", "serve"]']


def _env_pairs(value: str) -> Iterator[tuple[str, str]]:
    for word in shlex.split(value):
        name, sep, val = word.partition("=")
        assert sep, f"ENV {value!r}: only the NAME=value form is replayed"
        yield name, val


def _substitute(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def _dockerignored() -> Callable[[str], bool]:
    """Whether the project's .dockerignore keeps a path (relative to the root, with ``/``) out
    of the build context, read as Docker reads it (``**`` for any directories, a directory's
    pattern for everything in it); its lines are all exclusions."""
    patterns = [line.strip().strip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "re-inclusions are not read here"

    def regex(pattern: str) -> re.Pattern[str]:
        # Go's filepath.Match, as Docker uses it: `*` and `?` stay within one path element.
        out = ""
        for piece in re.split(r"(\*\*/|\*|\?)", pattern):
            out += {"**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}.get(piece, re.escape(piece))
        return re.compile(out)

    compiled = [regex(p) for p in patterns]

    def ignored(relative: str) -> bool:
        parts = relative.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]  # a directory's pattern covers all in it
        return any(r.fullmatch(prefix) for r in compiled for prefix in prefixes)

    return ignored


def test_dockerignore_keeps_secrets_out_and_the_package_in() -> None:
    """The build context leaves out keys, secrets, .env files, the local database and the
    virtual environment, and keeps every file of the package."""
    ignored = _dockerignored()
    for path in (".env", "var/byline.db", "var/log.key", "policies/secrets/brand.token", ".venv/bin/python",
                 "gateway/__pycache__/app.cpython-311.pyc", "deploy/secrets/x", ".git/config", "log.key",
                 "deploy/log.key", "tests/x/.env"):
        assert ignored(path), path
    package = [p.relative_to(ROOT).as_posix() for d in ("gateway", "adapters") for p in (ROOT / d).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts]
    assert package and not [p for p in package if ignored(p)]
    assert not ignored("pyproject.toml") and not ignored("README.md")


def replay_build_stage(root: Path) -> tuple[Path, list[str]]:
    """Run the build stage's steps as Docker would, under ``root`` instead of ``/``: the files
    copied from this checkout (less what .dockerignore leaves out), each RUN in ``sh -ec`` with
    the stage's environment (Docker's BuildKit flags left out, pip's cache as on this machine).
    The system packages (apt-get) are the machine's own, as `make install` installs them.
    Returns the virtual environment built and the steps left out."""
    shim = root / "shim"
    shim.mkdir(parents=True)
    (shim / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))  # the image's `python`
    env = _clean_env()
    env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    cwd = root
    skipped = []
    ignored = _dockerignored()

    def leave_out(directory: str, names: list[str]) -> set[str]:
        relative = Path(directory).relative_to(ROOT).as_posix()
        return {n for n in names if ignored(f"{relative}/{n}" if relative != "." else n)}

    for ins in _stages()["build"]:
        kind, value = ins["instruction"], ins["value"]
        if kind in ("FROM", "ARG"):
            continue
        if kind == "ENV":
            for name, val in _env_pairs(value):
                val = _substitute(val, env)
                if val.startswith("/") and os.pathsep not in val and not val.startswith(str(root)):
                    val = str(root / val.lstrip("/"))
                env[name] = val
        elif kind == "WORKDIR":
            cwd = root / value.lstrip("/")
            cwd.mkdir(parents=True, exist_ok=True)
        elif kind == "COPY":
            *sources, target = shlex.split(value)
            assert not any(s.startswith("--") for s in sources), f"COPY {value}: flags are not replayed"
            for source in sources:
                src = ROOT / source
                assert not ignored(source), f"COPY {source}: left out of the build context by .dockerignore"
                dest = cwd / target / src.name if target.endswith("/") else cwd / target
                if src.is_dir():
                    shutil.copytree(src, dest, ignore=leave_out)
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dest)
        elif kind == "RUN":
            command = re.sub(r"^(--[a-z]+=\S+\s+)+", "", value.strip())
            if command.startswith("apt-get"):
                skipped.append(command)
                continue
            done = subprocess.run(["sh", "-ec", command], cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=300)
            assert done.returncode == 0, f"RUN {command}\n{done.stdout}\n{done.stderr}"
        else:
            raise AssertionError(f"the replay does not know the instruction {kind} {value!r}")
    return Path(env["VIRTUAL_ENV"]), skipped


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The virtual environment the Dockerfile's build stage makes, made here."""
    venv, skipped = replay_build_stage(tmp_path_factory.mktemp("image"))
    assert [s.split()[0] for s in skipped] == ["apt-get"]
    return venv


def test_dockerfile_install_steps_make_a_working_byline(replayed: Path, tmp_path: Path) -> None:
    """The build stage's steps, replayed in a clean virtual environment from this checkout,
    install a `byline` whose commands are all there, importing its own copy of the gateway."""
    done = subprocess.run([str(replayed / "bin" / "byline"), "--help"], capture_output=True, text=True,
                          cwd=tmp_path, env=_clean_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("serve", "migrate", "log", "audit", "policy"):
        assert command in done.stdout
    where = subprocess.run([str(replayed / "bin" / "python"), "-c", "import gateway; print(gateway.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=_clean_env(), check=True)
    assert Path(where.stdout.strip()).is_relative_to(replayed)


def _healthcheck_command() -> list[str]:
    health = next(i["value"] for i in _stages()["runtime"] if i["instruction"] == "HEALTHCHECK")
    command = json.loads(health.split("CMD", 1)[1])
    assert isinstance(command, list)
    return [str(c) for c in command]


def test_installed_gateway_serves_its_pages_and_passes_the_image_healthcheck(replayed: Path, tmp_path: Path) -> None:
    """`byline serve` from the replayed install starts on the demo policies, serves a page (its
    templates and static files were installed with it), and the image's HEALTHCHECK command
    passes against it; once it has stopped, the same command fails."""
    env = _clean_env(BYLINE_HOST="127.0.0.1", BYLINE_PORT="0", BYLINE_LOG_FORMAT="json",
                     BYLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'byline.db'}",
                     BYLINE_POLICY_DIR=str(ROOT / "policies"), BYLINE_LOG_KEY_FILE=str(tmp_path / "keys" / "log.key"))
    env["PATH"] = f"{replayed / 'bin'}{os.pathsep}{env['PATH']}"  # as the image's PATH has it
    subprocess.run(["byline", "log", "keygen", "--out", env["BYLINE_LOG_KEY_FILE"]], env=env, cwd=tmp_path,
                   capture_output=True, check=True, timeout=60)
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen(["byline", "serve"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
            for line in (tmp_path / "serve.log").read_text().splitlines():
                if '"gateway_started"' in line:
                    port = int(json.loads(line)["port"])
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=5) as resp:
                    assert resp.status == 200
                    break
            except urllib.error.URLError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        with urllib.request.urlopen(base + "/", timeout=10) as resp:
            assert resp.status == 200
            page = resp.read().decode()
        assert "<html" in page.lower()
        assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', page)
        assert assets, page[:500]
        for asset in assets:
            with urllib.request.urlopen(base + asset, timeout=10) as resp:
                assert resp.status == 200 and resp.read()
        check = _healthcheck_command()
        health_env = dict(env, BYLINE_PORT=str(port))
        done = subprocess.run(check, env=health_env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    done = subprocess.run(check, env=health_env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0


# --- `byline migrate`, which the Kubernetes Job and the compose file run ------------------------


async def _applied(url: str) -> list[int]:
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    conn = await asyncpg.connect(url)
    try:
        return [int(r["version"]) for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()


@pytest.mark.empty_database
async def test_migrate_brings_the_schema_up_to_date_and_stops(db_url: str, tmp_path: Path) -> None:
    """`byline migrate` applies every migration to an empty database, says which version it is
    at, and run again changes nothing."""
    env = _clean_env(BYLINE_DATABASE_URL=db_url)
    for _ in range(2):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "migrate", env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        assert out.decode().strip().endswith(f"schema at version {LATEST}")
        assert await _applied(db_url) == list(range(1, LATEST + 1))


def test_migrate_names_an_unreachable_database_without_its_password(tmp_path: Path) -> None:
    """A database that does not answer: one line naming it (never its password), exit status 1
    (it may answer later; 2 is for a setting to change)."""
    env = _clean_env(BYLINE_DATABASE_URL="postgresql://byline:hunter2@127.0.0.1:1/byline")
    done = subprocess.run([sys.executable, "-m", "gateway", "migrate"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot reach the database PostgreSQL byline@127.0.0.1:1/byline")
    assert "hunter2" not in done.stdout + done.stderr and "Traceback" not in done.stderr


# --- compose ------------------------------------------------------------------------------------


def _compose(*args: str, file: Path = DEPLOY / "compose.yaml") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "docker-compose"), "-f", str(file), *args], capture_output=True, text=True,
                          cwd=DEPLOY, env=_clean_env(HOME="/nonexistent"), timeout=60)


def test_compose_file_follows_the_compose_specification() -> None:
    """The Compose CLI itself reads the file without a complaint (it checks it against the
    Compose specification's schema, then every reference in it)."""
    done = _compose("config", "--quiet")
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_compose_check_is_real(tmp_path: Path) -> None:
    """The same check refuses a file with a condition the specification does not have."""
    bad = tmp_path / "compose.yaml"
    bad.write_text((DEPLOY / "compose.yaml").read_text().replace("service_completed_successfully", "service_done"))
    done = _compose("config", "--quiet", file=bad)
    assert done.returncode != 0 and "condition" in done.stderr


def test_compose_runs_two_replicas_on_one_database_behind_a_proxy() -> None:
    """Two Byline replicas on the one PostgreSQL, after the migration has run, each with its
    own state volume, the policies and platform credentials mounted read-only, the log key as a
    secret; the proxy starts once both are healthy and sends to both."""
    done = _compose("config", "--format", "json")
    assert done.returncode == 0, done.stderr
    model = json.loads(done.stdout)
    services = model["services"]
    replicas = sorted(name for name, s in services.items() if (s.get("command") or [])[-2:] == ["byline", "serve"])
    assert replicas == ["byline-a", "byline-b"]
    states = set()
    for name in replicas:
        s = services[name]
        assert s["read_only"] is True and s["cap_drop"] == ["ALL"]
        assert s["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert s["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert "/readyz" in " ".join(s["healthcheck"]["test"])
        assert s["environment"]["BYLINE_DATABASE_URL"].startswith("postgresql://byline@postgres:")
        assert ":" not in s["environment"]["BYLINE_DATABASE_URL"].split("//")[1].split("@")[0]  # no password
        mounts = {v["target"]: v for v in s["volumes"]}
        assert mounts["/etc/byline/policies"]["read_only"] and mounts["/etc/byline/secrets"]["read_only"]
        states.add(mounts["/var/lib/byline"]["source"])
        assert {x["source"] for x in s["secrets"]} == {"byline_log_key", "db_password"}
        assert "BYLINE_LOG_KEY_FILE" in s["command"][2]
        assert all(not Path(x["target"]).is_relative_to("/etc/byline/secrets") for x in s["secrets"])
    assert len(states) == 2  # the last checkpoint signed is each replica's own file
    assert services["migrate"]["command"][-1].split()[-2:] == ["byline", "migrate"]
    assert {"serve", "migrate"} <= _commands()
    proxy = services["proxy"]
    assert {n: d["condition"] for n, d in proxy["depends_on"].items()} == dict.fromkeys(replicas, "service_healthy")
    caddyfile = next(v["source"] for v in proxy["volumes"] if v["target"] == "/etc/caddy/Caddyfile")
    (proxied,) = _caddy_proxies(Path(caddyfile))
    assert sorted(u["dial"] for u in proxied["upstreams"]) == [f"{name}:8080" for name in replicas]
    assert proxied["health_checks"]["active"]["uri"] == "/readyz"
    assert "healthcheck" in services["postgres"]


def test_compose_start_scripts_install_the_key_and_hand_over_the_password(tmp_path: Path) -> None:
    """Each replica's start script, as Compose hands it to the container (``$$`` as ``$``), copies
    the log key from its secret into the state directory (mode 0600), passes the database
    password as PGPASSWORD and execs `byline serve`; the migration's execs `byline migrate`."""
    done = _compose("config", "--format", "json")
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    (secrets / "byline_log_key").write_text("PRIVATE+KEY+test\n")
    (secrets / "db_password").write_text("s3cret")
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "byline").write_text('#!/bin/sh\necho "byline $* PGPASSWORD=$PGPASSWORD"\n')
    (stub / "byline").chmod(0o755)
    for name, wanted in (("byline-a", "serve"), ("byline-b", "serve"), ("migrate", "migrate")):
        shell, flags, script, *args = services[name]["command"]
        script = script.replace("$$", "$").replace("/run/secrets", str(secrets))
        key = tmp_path / name / "log.key"
        key.parent.mkdir()
        env = _clean_env(BYLINE_LOG_KEY_FILE=str(key))
        env["PATH"] = f"{stub}{os.pathsep}{env['PATH']}"
        run = subprocess.run([shell, flags, script, *args], env=env, capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        assert run.stdout == f"byline {wanted} PGPASSWORD=s3cret\n"
        if wanted == "serve":
            assert key.read_text() == "PRIVATE+KEY+test\n" and key.stat().st_mode & 0o777 == 0o600
        else:
            assert not key.exists()


def _caddy_adapt(caddyfile: Path) -> subprocess.CompletedProcess[str]:
    """Caddy's own reading of a Caddyfile (adapted to its JSON; nothing is started or dialled)."""
    home = "/nonexistent"  # no state of Caddy's is read or kept
    return subprocess.run([str(BIN / "caddy"), "adapt", "--adapter", "caddyfile", "--config", str(caddyfile)],
                          capture_output=True, text=True, timeout=60,
                          env=_clean_env(HOME=home, XDG_DATA_HOME=home, XDG_CONFIG_HOME=home))


def _caddy_proxies(caddyfile: Path) -> list[dict[str, Any]]:
    """The reverse_proxy handlers in the Caddyfile, as Caddy reads it."""
    done = _caddy_adapt(caddyfile)
    assert done.returncode == 0 and '"level":"warn' not in done.stderr, done.stderr
    found: list[dict[str, Any]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("handler") == "reverse_proxy":
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(done.stdout))
    return found


def test_caddy_reads_the_caddyfile_and_refuses_a_bad_one(tmp_path: Path) -> None:
    """Caddy adapts the proxy's Caddyfile without a warning, and refuses one with a misspelt
    subdirective."""
    assert len(_caddy_proxies(DEPLOY / "Caddyfile")) == 1
    bad = tmp_path / "Caddyfile"
    bad.write_text((DEPLOY / "Caddyfile").read_text().replace("health_uri", "health_url"))
    done = _caddy_adapt(bad)
    assert done.returncode != 0 and "health_url" in done.stderr


INTERNAL = ("/metrics", "/metrics/", "/METRICS", "//metrics", "/%6Detrics", "/metrics?name=x", "/readyz",
            "/readyz/", "/ReadyZ", "/./readyz")
"""Ways to ask for the pages that are not for the internet: /metrics (how busy each tier and
platform is) and /readyz (account names and policy hashes)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _runnable_caddyfile(upstream: str) -> str:
    """The proxy's Caddyfile as it is, but for the places it names: the replicas are
    ``upstream``, and Caddy's admin API is off (the site's address comes from BYLINE_DOMAIN)."""
    text = (DEPLOY / "Caddyfile").read_text()
    for shipped, here in (("byline-a:8080 byline-b:8080", upstream), ("admin 127.0.0.1:2019", "admin off")):
        assert shipped in text, shipped
        text = text.replace(shipped, here)
    return text


async def test_caddy_keeps_metrics_and_readyz_from_the_internet(tmp_path: Path) -> None:
    """The shipped Caddyfile, run by Caddy in front of a stand-in replica: /metrics and /readyz,
    however spelt, are answered 404 by Caddy and never reach the replica, whose /readyz still
    answers Caddy's own health checks; /healthz and the API are proxied. It proxied every path."""
    reached: list[str] = []
    checks: list[str] = []

    async def replica(request: web.Request) -> web.Response:
        # Caddy's health checks come from Caddy itself; a proxied request names its client.
        (reached if "X-Forwarded-For" in request.headers else checks).append(request.raw_path)
        return web.Response(text="from the replica")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", replica)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    upstream = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(_runnable_caddyfile(f"{upstream[0]}:{upstream[1]}"))
    port = _free_port()
    home = str(tmp_path / "caddy-home")
    caddy = await asyncio.create_subprocess_exec(
        str(BIN / "caddy"), "run", "--adapter", "caddyfile", "--config", str(caddyfile),
        env=_clean_env(BYLINE_DOMAIN=f"http://127.0.0.1:{port}", HOME=home, XDG_DATA_HOME=home,
                       XDG_CONFIG_HOME=home),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while True:
                assert caddy.returncode is None, "caddy stopped"
                try:
                    async with session.get(f"{base}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, "caddy did not start"
                await asyncio.sleep(0.1)
            for path in INTERNAL:
                async with session.get(yarl.URL(base + path, encoded=True)) as resp:
                    assert (path, resp.status) == (path, 404), await resp.text()
            for path in ("/healthz", "/v1/posts", "/api/v1/instance"):
                async with session.get(f"{base}{path}") as resp:
                    assert (path, resp.status, await resp.text()) == (path, 200, "from the replica")
    finally:
        caddy.terminate()
        await caddy.wait()
        await runner.cleanup()
    assert "/healthz" in reached and [p for p in reached if p != "/healthz"] == ["/v1/posts", "/api/v1/instance"]
    assert checks and set(checks) == {"/readyz"}  # Caddy's health checks still reach the replicas


# --- Kubernetes ---------------------------------------------------------------------------------


def _manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_match_the_schemas(version: str) -> None:
    """Every manifest is valid against the Kubernetes schemas, strictly (no unknown field)."""
    docs = _manifests()
    assert {d["kind"] for d in docs} == {"Deployment", "PodDisruptionBudget", "Service", "ConfigMap", "Job"}
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_schema_check_is_real() -> None:
    """The schema check refuses a misspelt field."""
    deployment = next(d for d in _manifests() if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_kubernetes_deployment_is_replicated_probed_and_locked_down() -> None:
    """Two or more replicas, readiness on /readyz and liveness on /healthz, resources, a
    non-root read-only container; the budget and the Service select its pods; every secret is a
    reference to a Secret by name, none is committed."""
    docs = {d["kind"]: d for d in _manifests()}
    deployment = docs["Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    (byline,) = pod["containers"]
    assert byline["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert byline["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert byline["resources"]["requests"] and byline["resources"]["limits"]["memory"]
    assert byline["args"] == ["byline", "serve"]
    job_pod = docs["Job"]["spec"]["template"]["spec"]
    for container in [*pod["containers"], *pod["initContainers"], *job_pod["containers"]]:
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    env = {e["name"]: e for e in byline["env"]}
    assert env["BYLINE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "byline-database"
    key_file = Path(env["BYLINE_LOG_KEY_FILE"]["value"])
    mounts = {m["mountPath"]: m for m in byline["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # The key's directory is writable (the last checkpoint signed is kept beside it), and the
    # init container puts the key there from its Secret.
    state = mounts[str(key_file.parent)]
    assert not state.get("readOnly") and "emptyDir" in volumes[state["name"]]
    (init,) = pod["initContainers"]
    assert init["command"][-1] == str(key_file)
    # Neither the key nor its Secret is where a policy may name a credential.
    secrets_dir = Path(env["BYLINE_SECRETS_DIR"]["value"])
    assert not key_file.is_relative_to(secrets_dir)
    assert not any(Path(m["mountPath"]).is_relative_to(secrets_dir) for m in init["volumeMounts"])
    assert mounts[env["BYLINE_POLICY_DIR"]["value"]]["readOnly"]
    assert volumes[mounts[env["BYLINE_POLICY_DIR"]["value"]]["name"]]["configMap"]["name"] == "byline-policies"
    assert mounts[env["BYLINE_SECRETS_DIR"]["value"]]["readOnly"]
    named = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    named |= {e["valueFrom"]["secretKeyRef"]["name"] for e in byline["env"] if "valueFrom" in e}
    assert named == K8S_SECRETS
    assert "Secret" not in {d["kind"] for d in _manifests()}
    job = docs["Job"]["spec"]["template"]["spec"]["containers"][0]
    assert job["args"] == ["byline", "migrate"] and "migrate" in _commands()


def test_kubernetes_init_container_puts_the_key_where_the_signer_writes(tmp_path: Path) -> None:
    """The init container's command, run with its mounts here, copies the key from the
    Secret's mount into the state directory the gateway's BYLINE_LOG_KEY_FILE names, mode 0600."""
    pod = next(d for d in _manifests() if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    mounts = [m["mountPath"] for m in init["volumeMounts"]]
    secret_mount = next(m for m in init["volumeMounts"] if m.get("readOnly"))["mountPath"]
    places = {m: tmp_path / m.strip("/").replace("/", "_") for m in mounts}
    for place in places.values():
        place.mkdir()
    (places[secret_mount] / "log.key").write_text("PRIVATE+KEY+test\n")
    command = list(init["command"])
    for mount, place in places.items():
        command = [c.replace(mount, str(place)) for c in command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    key = Path(env["BYLINE_LOG_KEY_FILE"])
    copied = places[str(key.parent)] / key.name
    assert copied.read_text() == "PRIVATE+KEY+test\n" and copied.stat().st_mode & 0o777 == 0o600


def _kubelet_volume(where: Path, files: dict[str, str]) -> Path:
    """A directory laid out as the kubelet mounts a ConfigMap or Secret: each file a symlink
    through ``..data`` to a timestamped directory."""
    stamp = where / "..2026_01_01_00_00_00.000000001"
    stamp.mkdir(parents=True)
    for name, text in files.items():
        (stamp / name).write_text(text)
        (where / name).symlink_to(Path("..data") / name)
    (where / "..data").symlink_to(stamp.name)
    return where


def test_policy_configmap_loads_as_the_kubelet_mounts_it(tmp_path: Path) -> None:
    """The example policy in the ConfigMap is valid, and so is its credential reference, once
    both are mounted the kubelet's way (files behind symlinks) where the Deployment mounts them."""
    deployment = next(d for d in _manifests() if d["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    configmap = next(d for d in _manifests() if d["kind"] == "ConfigMap")
    secrets_dir = tmp_path / "secrets"
    # The mount points as directories here: the policies name their credentials by absolute path.
    policies = {name: text.replace(env["BYLINE_SECRETS_DIR"] + "/", f"{secrets_dir}/")
                for name, text in configmap["data"].items()}
    names = re.findall(rf"file:{re.escape(str(secrets_dir))}/(\S+)", " ".join(policies.values()))
    assert names
    _kubelet_volume(secrets_dir, dict.fromkeys(names, "token\n"))
    policy_dir = _kubelet_volume(tmp_path / "policies", policies)
    good, issues = check_dir(policy_dir, rules=CredentialRules(
        policy_dir=policy_dir, secrets_dir=secrets_dir, log_key_file=tmp_path / "state" / "log.key"))
    assert issues == []
    assert sorted(good) == sorted(Path(n).stem for n in configmap["data"])


# --- systemd ------------------------------------------------------------------------------------


def _unit() -> dict[str, dict[str, list[str]]]:
    """The unit's sections and their settings (a key may be given more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in (DEPLOY / "systemd" / "byline.service").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, line
        key, sep, value = line.partition("=")
        assert sep, f"not a setting: {raw!r}"
        current.setdefault(key, []).append(value)
    return sections


def test_systemd_unit_is_hardened_and_keeps_the_key_out_of_the_credentials() -> None:
    """The unit runs `byline serve` as a user of its own, restarts it on failure (not on a
    setting to fix), writes nowhere but its state directory, keeps the log key there and hands
    platform credentials over as systemd credentials, in a directory that never holds the key."""
    unit = _unit()
    service = unit["Service"]
    program, *args = service["ExecStart"][0].split()
    assert (program.rsplit("/", 1)[-1], args) == ("byline", ["serve"])
    assert service["DynamicUser"] == ["yes"] or service.get("User")
    assert service["Restart"] == ["on-failure"] and service["RestartPreventExitStatus"] == ["2"]
    assert service["ProtectSystem"] == ["strict"] and service["NoNewPrivileges"] == ["yes"]
    assert service["StateDirectory"] == ["byline"]
    env = dict(v.split("=", 1) for v in service["Environment"])
    assert env["BYLINE_LOG_KEY_FILE"].startswith("/var/lib/byline/")
    assert env["BYLINE_DATABASE_URL"].startswith("sqlite:////var/lib/byline/")
    assert env["BYLINE_SECRETS_DIR"] == "%d"
    credentials = [c.split(":", 1)[0] for c in service["LoadCredential"]]
    assert credentials and not any("log" in c and "key" in c for c in credentials)
    assert "multi-user.target" in unit["Install"]["WantedBy"]
    assert {"Service", "Unit", "Install"} == set(unit)
    assert "serve" in _commands()


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing to say about the unit (installed where the dev
    environment's `byline` is), and `systemd-analyze security` rates its exposure low. Where
    systemd-analyze is missing, the test above is what checks the unit."""
    tool = shutil.which("systemd-analyze")
    unit = tmp_path / "byline.service"
    text = (DEPLOY / "systemd" / "byline.service").read_text()
    assert "/opt/byline/bin/byline" in text
    unit.write_text(text.replace("/opt/byline/bin/byline", str(BIN / "byline")))
    if tool is None:
        # No systemd here: the unit's settings are all known ones, at least by their spelling.
        known = {"Description", "Wants", "After", "Type", "ExecStart", "WantedBy"}
        assert known <= {k for section in _unit().values() for k in section}
        return
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    done = subprocess.run([tool, "security", "--offline=yes", "--threshold=20", str(unit)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:]
    unit.write_text(text.replace("/opt/byline/bin/byline", str(BIN / "byline")).replace("ProtectSystem=strict",
                                                                                         "ProtectSytem=strict"))
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert "ProtectSytem" in done.stderr  # the check is real: a misspelt setting is reported

# Byline: `make serve` and `make test` each install what they need into .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BLUESKY_HARNESS := tests/platforms/bluesky

# The tests start hundreds of `byline` processes, and each imports the gateway: from its compiled
# modules (__pycache__, ignored by git) it takes about 0.2 s less CPU than compiling it again, which
# an environment that sets PYTHONDONTWRITEBYTECODE would make every process do.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install serve test lint bluesky-harness browser clients wrk bench fuzz chaos mutation clean deploy-check

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# PyICU (the confusable skeletons that policy rules match on) builds against ICU's headers:
# Debian's libicu-dev and pkg-config, installed here when missing.
$(STAMP): pyproject.toml | $(BIN)/python
	@pkg-config --exists icu-uc icu-i18n 2>/dev/null || { \
	  if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libicu-dev pkg-config; }
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/byline serve --demo

# Lint and types first (cheap), then every test. Each storage test runs on SQLite and on the
# PostgreSQL at postgresql://postgres@127.0.0.1:5432/postgres when one answers there (or at
# BYLINE_TEST_POSTGRES_DSN, which then must answer); without one the run ends by saying loudly
# that it ran on SQLite only. BYLINE_TEST_POSTGRES=off: SQLite only, on
# purpose. .ci/run starts PostgreSQL first and fails without it.
# The Bluesky adapter is tested against a real PDS from npm (tests/platforms/bluesky), and the
# sign-in page in Debian's Chromium (tests/browser); real client libraries from npm drive the
# Mastodon API (tests/clients/node). The crash and fault scenarios (tests/chaos: real processes,
# SIGKILL, a private PostgreSQL restarted) run here small, in about a minute and a half;
# `make chaos` runs them full size.
# The tests run in PYTEST_WORKERS processes (pytest-xdist), each taking the next test as it
# frees up: most of a test's time is waiting (on sockets, PostgreSQL, subprocesses), so two on
# two cores take well under half the time of one. PYTEST_WORKERS=0: one process, as before.
PYTEST_WORKERS ?= 2
test: lint bluesky-harness browser clients wrk
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# deploy/ alone, as `make test` checks it (tests/test_deploy.py): hadolint on the Dockerfile and
# its build stage replayed in a fresh virtual environment (about a minute, with pip's cache),
# the compose file read by the Compose CLI, the Caddyfile by Caddy, the Kubernetes manifests
# against their schemas, the systemd unit with systemd-analyze. The image itself is not built.
deploy-check: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_deploy.py $(PYTEST_ARGS)

bluesky-harness:
	bash $(BLUESKY_HARNESS)/install.sh

browser:
	bash tests/browser/install.sh

clients:
	bash tests/clients/node/install.sh

lint: $(STAMP)
	$(BIN)/ruff check gateway adapters tests $(wildcard bench)
	$(BIN)/mypy

# Every benchmark (direct, scheduler, approvals, append and verify), each against its baseline
# in the same run, and which targets were met (see the README's "Measured figures"). The
# direct tier's load generator is wrk, from Debian's packages, installed here when missing;
# PostgreSQL is used when one answers where `make test` looks for it.
# `python -m bench NAME --help` runs one with its own options; BENCH_ARGS=--quick, all small.
bench: $(STAMP) wrk
	$(BIN)/python -m bench $(BENCH_ARGS)

# wrk, from Debian's packages, when missing: the benchmarks' load generator, which `make test`
# runs too (each benchmark once at a tiny size, so that none rots between `make bench` runs).
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; }

# The random tests at full size: the co-signing state machine runs ten times as many sequences
# as in `make test`, and the fuzzers in tests/fuzz (schemathesis on the OpenAPI document, the
# Mastodon and XRPC surfaces, mutated policy files) ten to twenty-five times as many cases, on
# SQLite and on PostgreSQL (found as `make test` finds it).
fuzz: $(STAMP)
	BYLINE_TEST_STATE_MACHINE_EXAMPLES=300 BYLINE_TEST_STATE_MACHINE_STEPS=40 \
	BYLINE_TEST_FUZZ_OPENAPI_EXAMPLES=200 BYLINE_TEST_FUZZ_MASTODON_EXAMPLES=1000 \
	BYLINE_TEST_FUZZ_XRPC_EXAMPLES=1500 BYLINE_TEST_FUZZ_POLICY_EXAMPLES=5000 \
	BYLINE_TEST_FUZZ_POLICY_GATEWAY_EXAMPLES=400 \
	  $(BIN)/python -m pytest -q tests/test_voice_state_machine.py tests/fuzz $(PYTEST_ARGS)

# The crash and fault scenarios at full size (tests/chaos; `make test` runs them small): three
# replicas on PostgreSQL SIGKILLed every few seconds, the same against a failing platform, a
# private PostgreSQL restarted mid-run, and one SQLite gateway killed at random; 5,000 posts in
# the first two, 2,000 in the others. Prints the table; fails on any duplicate, loss or stuck post.
chaos: $(STAMP)
	BYLINE_CHAOS_SIZE=full $(BIN)/python -m tests.chaos $(CHAOS_ARGS)

# Mutation testing of the rule side (policy, lifecycle, posts, the verifier's replay and gate settings) and of the
# publisher's claims: see the README's "Mutation testing" for the last summary. Not part of `make test`: it takes
# a while.
mutation: $(STAMP)
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 || true
	$(BIN)/python -m tests.mutation_summary

clean:
	rm -rf $(VENV) var

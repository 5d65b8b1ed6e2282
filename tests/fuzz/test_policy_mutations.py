"""Mutated policy files: the loader never crashes, and never puts a refused file in force.

Every policy file Byline ships or tests with (the demo set in ``policies/``, the tests'
``TEST_POLICIES``, and one for a real platform with a credential and a rate) is mutated at
random: bytes flipped, cut, inserted or repeated; YAML keys deleted, renamed or added; values
swapped for other types, huge or negative numbers, empty or long strings, Unicode (bidi
controls, NUL, zero-width and confusable letters); YAML's own tricks (tags, anchors, several
documents, tabs). What must hold:

* ``parse_policy`` and ``load_file`` either return a policy or raise ``PolicyFileError`` with
  issues that name the file; ``check_dir`` (``byline policy check``) never raises.
* After a good directory is in force, a reload with one mutated file never raises: a refused
  file leaves the previous policy in force, to the object, and its error is reported; an
  accepted one is in force exactly as its bytes say.
* In a running gateway (on both databases), the reload and its log entries never fail, the
  refusal shows at ``GET /v1/policies/errors`` and on the account's policy, the old policy
  still decides posts; an accepted file decides posts without failing; and putting the file
  back brings the gateway back to where it was.

``BYLINE_TEST_FUZZ_POLICY_EXAMPLES`` and ``BYLINE_TEST_FUZZ_POLICY_GATEWAY_EXAMPLES`` size it.
"""

from __future__ import annotations

import hashlib
import math
import textwrap
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.appkeys import POLICIES, REGISTRY
from gateway.policy.credentials import CredentialRules
from gateway.policy.loader import PolicyFileError, PolicyRegistry, check_dir, load_file, parse_policy
from gateway.policy.models import Policy
from tests.conftest import BACKENDS, TEST_POLICIES, USERS, make_policy_dir
from tests.fuzz.live import Live, examples, live_gateway

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_POLICY = """
    account: brand
    platform: mastodon
    handle: "@brand@mastodon.example"
    instance: https://mastodon.example
    credentials: file:secrets/brand.token
    tier: co-signed
    owner: alice
    writers: [alice, carol]
    suggesters: [dave]
    delay: 1h30m
    approvals:
      required: 1
      from: [bob, carol]
      expire_after: 2d
    max_length: 400
    rate_limit: 30/h
    retry_attempts: 5
    disclosure: "—{author}"
    rules:
      - name: breaking-news
        action: hold
        any_words: [fired, scandal]
        reason: Check the full story first
      - name: ok-launch
        action: allow
        regex: "(?i)^we launch"
        reason: Launch posts are fine
"""


def _sources() -> dict[str, str]:
    """Every valid policy file to start from: name -> text."""
    found = {p.stem: p.read_text(encoding="utf-8") for p in sorted((ROOT / "policies").glob("*.yaml"))}
    found.update({name: textwrap.dedent(text).lstrip() for name, text in TEST_POLICIES.items()})
    found["brand"] = textwrap.dedent(PLATFORM_POLICY).lstrip()
    return found


SOURCES = _sources()
NAMES = sorted(SOURCES)

# -- mutations ------------------------------------------------------------------------------

ODD_TEXT = st.sampled_from((
    "", " ", "\u202eevil", "a\x00b", "\u200b", "ｆｉｒｅｄ", "fіred", "x" * 5000, "💩", "名前", "null", "~", "yes",
    "1h30", "30x", "-1m", "99999999999999999999d", "9" * 5000 + "s", "1/0", "0/h", "-3/h",
    "99999999999999999999/s", "env:", "file:", "file:../../etc/passwd", "file:/etc/shadow", "env:1X",
    "http://mastodon.example", "https://", "javascript:alert(1)", "(?=x)", "(a", "\\1", "[", "*", "co-signed",
    "{author}", "{", "{0}", "{author.__class__}", "%s", "'", '"', "\t", "\r\n", "---", "...",
))
ODD_NUMBER = st.one_of(
    st.sampled_from((0, -1, 1, 2, 10 ** 6, 10 ** 30, -(10 ** 30), 2 ** 63, 2 ** 64, 1e308, -1e308,
                     math.inf, -math.inf, math.nan, 0.5, True, False)),
    st.integers(), st.floats(),
)
ODD_VALUE = st.recursive(
    st.one_of(st.none(), ODD_TEXT, ODD_NUMBER, st.just(date(2026, 1, 1)), st.just(datetime(2026, 1, 1, 12)),
              st.text(max_size=30)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(ODD_TEXT, st.text(max_size=8)),
                                                                        inner, max_size=3)),
    max_leaves=6,
)


# Values aimed at what each key is read as: durations, rates, counts, patterns, places.
DURATIONS = st.sampled_from(("0", "0s", "1s", "59m", "24h", "1h30m", "-1m", "1.5h", "1H", "99999999999999999999d",
                             "9" * 5000 + "s", "1d1d", "", "forever", "1y", 0, -1, 10 ** 20, 1.5))
RATES = st.sampled_from(("30/h", "0/h", "1/s", "-1/h", "1/0", "99999999999999999999/s", "9" * 5000 + "/d", "30/y",
                         "30", "/h", {"count": 1, "seconds": 10 ** 20}, {"count": -1, "seconds": 0}))
COUNTS = st.one_of(ODD_NUMBER, st.sampled_from(("1", "two", None, [1])))
PATTERNS = st.sampled_from(("(?i)\\bx\\b", "(?=x)", "(a", "\\1", "a{1000000}", "(a*)*b", "[", "\\pL", "", "." * 3000))
PLACES = st.sampled_from(("env:BRAND", "env:", "file:secrets/brand.token", "file:../log.key", "file:/etc/passwd",
                          "file:secrets/../../x", "https://mastodon.example", "http://mastodon.example",
                          "http://127.0.0.1:1", "https://", "ftp://x", "secret-in-the-file"))
BY_KEY: dict[str, st.SearchStrategy[Any]] = {
    "delay": DURATIONS, "expire_after": DURATIONS, "rate_limit": RATES, "required": COUNTS, "max_length": COUNTS,
    "retry_attempts": COUNTS, "regex": PATTERNS, "credentials": PLACES, "instance": PLACES, "pds": PLACES,
    "api": PLACES, "tier": st.sampled_from(("direct", "delayed", "co-signed", "cosigned", "managed", "Managed", "")),
    "action": st.sampled_from(("allow", "hold", "block", "Block", "")),
    "platform": st.sampled_from(("sandbox", "mastodon", "bluesky", "x", "twitter", "")),
}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a loaded YAML document."""
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for n, value in enumerate(node):
            out += _paths(value, (*prefix, n))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def structural(draw: st.DrawFn, text: str) -> str:
    """The document with keys deleted, renamed or added, and values of other types or sizes."""
    doc = yaml.safe_load(text)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _parent(doc, path), path[-1]
        how = draw(st.sampled_from(("delete", "replace", "replace", "rename", "add", "wrap")))
        if how == "delete":
            del parent[last]
        elif how == "replace":
            aimed = BY_KEY.get(str(last)) if isinstance(last, str) else None
            parent[last] = draw(aimed if aimed is not None and draw(st.booleans()) else ODD_VALUE)
        elif how == "rename" and isinstance(parent, dict):
            parent[draw(st.one_of(ODD_TEXT, st.text(max_size=10)))] = parent.pop(last)
        elif how == "add" and isinstance(parent, dict):
            parent[draw(st.one_of(st.sampled_from(("tier", "owner", "approvals", "extra", "rules")),
                                  st.text(max_size=10)))] = draw(ODD_VALUE)
        else:
            parent[last] = [parent[last]] if draw(st.booleans()) else {"value": parent[last]}
    try:
        return yaml.safe_dump(doc, allow_unicode=draw(st.booleans()), sort_keys=False)
    except (yaml.YAMLError, ValueError):
        return text  # a value PyYAML cannot write (it happens with some floats and keys)


@st.composite
def bytewise(draw: st.DrawFn, text: str) -> bytes:
    """The file's bytes with some flipped, cut, inserted or repeated."""
    data = bytearray(text.encode("utf-8"))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(("flip", "flip", "cut", "insert", "repeat", "truncate")))
        if how == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            del data[at: at + draw(st.integers(1, 20))]
        elif how == "insert":
            data[at:at] = draw(st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from(
                (b"\t", b": ", b"- ", b"\n  ", b"#", b"&a ", b"*a", b"!!binary ", b"\xff", b"\x00", b"'", b'"'))))
        elif how == "repeat":
            line_end = data.find(b"\n", at)
            start = data.rfind(b"\n", 0, at) + 1
            data[start:start] = data[start:line_end + 1 if line_end >= 0 else len(data)]
        else:
            del data[at:]
    return bytes(data)


YAML_TRICKS = (
    "%YAML 1.1\n---\n{text}", "{text}\n---\naccount: other\n", "--- !!map\n{text}", "{text}\nowner: !!binary aGk=\n",
    "{text}\nwriters: &w [alice]\nsuggesters: *w\n", "? [a, b]\n: c\n{text}", "{text}\ndelay: !!float 1e309\n",
    "{text}\nrules: !!set {{a, b}}\n", "!!python/object:os.system\n{text}", "{text}\n\tmax_length: 3\n",
    "{text}\napprovals: {{required: 1, from: [bob], required: 2}}\n", "[{text}]", "{text}\nowner: 2026-01-01\n",
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """One source file's name, and its bytes after random mutations."""
    name = draw(st.sampled_from(NAMES))
    text = SOURCES[name]
    how = draw(st.sampled_from(("structure", "structure", "bytes", "tricks", "both")))
    if how == "structure":
        return name, draw(structural(text)).encode("utf-8", "surrogatepass")
    if how == "bytes":
        return name, draw(bytewise(text))
    if how == "tricks":
        return name, draw(st.sampled_from(YAML_TRICKS)).format(text=text).encode()
    return name, draw(bytewise(draw(structural(text))))


SETTINGS = settings(
    max_examples=examples("POLICY_EXAMPLES", 200), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)

# -- the loader on its own ----------------------------------------------------------------------


def _rules(directory: Path) -> CredentialRules:
    return CredentialRules(policy_dir=directory)


def _write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / f"{name}.yaml"
    path.write_bytes(data)
    return path


@pytest.fixture
def good_dir(tmp_path: Path) -> Path:
    """A directory holding every source policy, all valid."""
    directory = tmp_path / "policies"
    directory.mkdir()
    for name, text in SOURCES.items():
        _write(directory, name, text.encode())
    (directory / "secrets").mkdir()
    (directory / "secrets" / "brand.token").write_text("a-platform-token-for-the-brand\n")
    good, issues = check_dir(directory, rules=_rules(directory))
    assert issues == [] and sorted(good) == NAMES
    return directory


def test_every_source_is_valid_to_start_with(good_dir: Path) -> None:
    """The mutations start from files the loader accepts (else they would test nothing)."""
    for name in NAMES:
        assert load_file(good_dir / f"{name}.yaml", rules=_rules(good_dir)).policy.account == name


def test_the_loader_never_crashes_and_keeps_the_policy_in_force(good_dir: Path) -> None:
    """parse/load/check refuse a mutated file with issues naming it, or accept it; a reload never puts a
    refused file in force, reports it, and an accepted one is in force as its bytes say."""
    rules = _rules(good_dir)
    registry = PolicyRegistry(good_dir, rules=rules)
    registry.reload()
    assert sorted(registry.policies) == NAMES

    @SETTINGS
    @given(change=mutated())
    def run(change: tuple[str, bytes]) -> None:
        name, data = change
        path = _write(good_dir, name, data)
        try:
            before = dict(registry.policies)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None:
                try:
                    parsed: Policy | None = parse_policy(text, name=path.name, expected_account=name, rules=rules)
                except PolicyFileError as exc:
                    parsed = None
                    assert exc.issues and all(i.file == path.name and i.message for i in exc.issues), exc.issues
            good, issues = check_dir(good_dir, rules=rules)  # byline policy check
            assert all(isinstance(i.message, str) and i.message for i in issues)

            registry.reload()
            in_force = registry.policies.get(name)
            if path.name in registry.errors:
                assert registry.errors[path.name], "a refusal names its problems"
                assert in_force is before[name], "a refused file must leave the previous policy in force"
                assert name not in good
            else:
                assert in_force is not None and in_force.sha256 == hashlib.sha256(data).hexdigest()
                assert text is not None and parsed == in_force.policy
                assert good[name].sha256 == in_force.sha256
                in_force.policy.summary()  # what the log records of it
        finally:
            _write(good_dir, name, SOURCES[name].encode())
            registry.reload()
            assert registry.errors == {}

    run()


# -- in a running gateway ---------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    """A gateway serving the tests' policies and the platform one."""
    directory = make_policy_dir(tmp_path, {**TEST_POLICIES, "brand": PLATFORM_POLICY})
    (directory / "secrets").mkdir()
    (directory / "secrets" / "brand.token").write_text("a-platform-token-for-the-brand\n")
    with live_gateway(request.param, tmp_path, directory) as gw:
        yield gw


GATEWAY_NAMES = sorted({*TEST_POLICIES, "brand"})


def test_a_gateway_reloading_mutated_files_keeps_going(live: Live) -> None:
    """A reload of a mutated file never fails; a refusal is reported and the old policy still decides;
    putting the file back leaves no error."""
    gw = live.gateway
    registry = gw.app[REGISTRY]
    directory: Path = registry.directory
    originals = {name: (directory / f"{name}.yaml").read_bytes() for name in GATEWAY_NAMES}

    @settings(SETTINGS, max_examples=examples("POLICY_GATEWAY_EXAMPLES", 40))
    @given(change=mutated().filter(lambda c: c[0] in GATEWAY_NAMES))
    def run(change: tuple[str, bytes]) -> None:
        name, data = change
        before = registry.policies[name]
        _write(directory, name, data)
        try:
            live.run(gw.sync_policies())
            refused = f"{name}.yaml" in registry.errors
            # Refused files are shown to the people with a role on the account (by the policy in force).
            status, errors = live.call(before.policy.owner, "GET", "/v1/policies/errors")
            assert status == 200, errors
            assert refused == any(e["file"] == f"{name}.yaml" for e in errors["errors"]), errors
            if refused:
                assert registry.policies[name] is before
                owner = before.policy.owner
                status, shown = live.call(owner, "GET", f"/v1/accounts/{name}/policy")
                assert status == 200, shown
                assert shown["sha256"] == before.sha256 and shown["refused"], shown
                status, post = live.call(owner, "POST", "/v1/posts", {"account": name, "text": "Still decided"})
                assert status in (201, 422), post  # 422 only if the old policy's rules say so
            else:
                # An accepted policy is in force, and it decides posts (whatever it says) without failing.
                in_force = registry.policies[name]
                assert in_force.sha256 == hashlib.sha256(data).hexdigest()
                for user in ("alice", in_force.policy.owner if in_force.policy.owner in USERS else "bob"):
                    status, post = live.call(user, "POST", "/v1/posts", {"account": name, "text": "Decided anew"})
                    assert status < 500, post
                assert live.run(gw.tick()) >= 0
        finally:
            _write(directory, name, originals[name])
            live.run(gw.sync_policies())
            assert registry.errors == {} and live.gateway.app[POLICIES].errors() == []

    run()

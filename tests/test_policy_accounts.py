"""One platform account, one policy file: a second file for the same real account is refused.

``brand-quick.yaml`` (direct) beside the co-signed ``brand.yaml``, both with the brand's
credentials on its instance, would let anyone writing for brand-quick publish alone as the
co-signed account. The policy in force stays, the newcomer is refused naming both files; two
newcomers at once are both refused. Gateway tests run on both databases.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import aiohttp
import pytest

import gateway.services.policies as policy_service
from gateway.clock import ManualClock
from gateway.policy.loader import PolicyRegistry, check_dir, load_file, parse_policy
from tests.conftest import make_policy_dir, started_gateway, write_policy
from tests.test_operator import DEMO_TOKEN, _demo_run, _env, byline, serving_demo

BRAND = """
    account: brand
    platform: mastodon
    instance: https://mastodon.example.org
    credentials: env:BRAND_TOKEN
    handle: "@brand"
    tier: co-signed
    owner: alice
    writers: [alice, carol]
    approvals:
      required: 1
      from: [bob, dave]
"""
QUICK = """
    account: brand-quick
    platform: mastodon
    instance: https://mastodon.example.org
    credentials: env:BRAND_TOKEN
    tier: direct
    owner: carol
"""
SOLO = """
    account: solo
    platform: sandbox
    tier: direct
    owner: erin
"""


def _fresh(tmp_path: Path, name: str) -> Path:
    """A new directory of its own under ``tmp_path``, for one more policy directory in it."""
    (tmp_path / name).mkdir()
    return tmp_path / name


def _keys(text: str, account: str = "a") -> set[tuple[str, ...]]:
    from gateway.policy.loader import platform_accounts  # new with the rule: the other tests run before it

    policy = parse_policy(textwrap.dedent(f"account: {account}\ntier: direct\nowner: alice\n") + text,
                          name=f"{account}.yaml", expected_account=account)
    return set(platform_accounts(policy, Path("policies")))


def test_the_same_account_is_recognized_however_it_is_written() -> None:
    """Addresses compare as servers (case, default port, trailing slash), file credentials as
    paths; Bluesky's handle on one PDS is one account; an X token is one account at any address;
    a sandbox account is its own."""
    mastodon = "platform: mastodon\ninstance: https://mastodon.example.org\ncredentials: env:T\n"
    assert _keys(mastodon) & _keys(mastodon.replace("https://mastodon.example.org", "https://Mastodon.Example.ORG:443/"))
    assert not _keys(mastodon) & _keys(mastodon.replace("env:T", "env:U"))
    assert not _keys(mastodon) & _keys(mastodon.replace("mastodon.example.org", "other.example.org"))
    files = "platform: mastodon\ninstance: https://m.example\ncredentials: file:secrets/brand\n"
    assert _keys(files) & _keys(files.replace("file:secrets/brand", "file:./secrets/../secrets/brand"))
    bluesky = "platform: bluesky\npds: https://bsky.social\ncredentials: env:A\nhandle: '@brand.example'\n"
    assert _keys(bluesky) & _keys(bluesky.replace("env:A", "env:B").replace("@brand", "Brand"))
    assert not _keys(bluesky) & _keys(bluesky.replace("env:A", "env:B").replace("bsky.social", "pds.example"))
    x = "platform: x\ncredentials: env:X_TOKEN\n"
    assert _keys(x) & _keys(x + "api: https://api.example\n")
    assert _keys("platform: sandbox\n") == set()


def test_policy_check_refuses_both_new_files_naming_each_other(tmp_path: Path) -> None:
    """Neither file is in force yet: both are refused, each naming the other, and other files load."""
    directory = make_policy_dir(tmp_path, {"brand": BRAND, "brand-quick": QUICK, "solo": SOLO})
    good, issues = check_dir(directory)
    assert sorted(good) == ["solo"]
    assert [str(i) for i in issues] == [
        "brand-quick.yaml: credentials: names the same mastodon account as brand.yaml (credentials env:BRAND_TOKEN "
        "on https://mastodon.example.org): one platform account has one policy file; neither is used until one "
        "of them is removed",
        "brand.yaml: credentials: names the same mastodon account as brand-quick.yaml (credentials env:BRAND_TOKEN "
        "on https://mastodon.example.org): one platform account has one policy file; neither is used until one "
        "of them is removed",
    ]


def test_files_are_judged_against_the_versions_in_force_when_given(tmp_path: Path) -> None:
    """As a gateway judges them: brand in force keeps it and refuses brand-quick alone; both in
    force together (recorded before the rule) are both refused, as the gateway removes both."""
    directory = make_policy_dir(tmp_path, {"brand": BRAND, "brand-quick": QUICK, "solo": SOLO})
    brand, quick = load_file(directory / "brand.yaml"), load_file(directory / "brand-quick.yaml")

    good, issues = check_dir(directory, in_force={"brand": brand})
    assert (sorted(good), [i.file for i in issues]) == (["brand", "solo"], ["brand-quick.yaml"])
    assert good["brand"] == brand
    assert issues[0].message.endswith("brand.yaml is in force for it, so this file is refused")

    good, issues = check_dir(directory, in_force={"brand": brand, "brand-quick": quick})
    assert (sorted(good), [i.file for i in issues]) == (["solo"], ["brand-quick.yaml", "brand.yaml"])
    assert all(i.message.endswith("neither is used until one of them is removed") for i in issues)


def test_another_port_or_path_on_one_host_is_another_server() -> None:
    """A server is its scheme, host, port (but the default) and path: another port or another
    path is another server, a trailing slash is not; a credential file whose name holds a colon
    is one file however its path is written."""
    mastodon = "platform: mastodon\ninstance: https://m.example/social\ncredentials: env:T\n"
    assert not _keys(mastodon) & _keys(mastodon.replace("m.example", "m.example:8443"))
    assert not _keys(mastodon) & _keys(mastodon.replace("/social", "/other"))
    assert _keys(mastodon) & _keys(mastodon.replace("/social", "/social/"))
    files = "platform: mastodon\ninstance: https://m.example\ncredentials: file:secrets/brand:2\n"
    assert _keys(files) & _keys(files.replace("file:secrets/", "file:./secrets/"))


def test_the_policy_in_force_stays_and_the_newcomer_is_refused(tmp_path: Path) -> None:
    """A registry with brand in force refuses brand-quick, names brand.yaml, and loads it once
    brand's file is gone and its removal has taken effect."""
    directory = make_policy_dir(tmp_path, {"brand": BRAND})
    registry = PolicyRegistry(directory=directory)
    registry.reload()
    brand = registry.get("brand")
    write_policy(directory, "brand-quick", QUICK)
    assert registry.reload() == []
    assert registry.get("brand") == brand and registry.get("brand-quick") is None
    (issue,) = registry.errors["brand-quick.yaml"]
    assert "same mastodon account as brand.yaml" in issue.message and "brand.yaml is in force" in issue.message
    (directory / "brand.yaml").unlink()
    assert [c.kind for c in registry.reload()] == ["removed"]
    assert [(c.account, c.kind) for c in registry.reload()] == [("brand-quick", "loaded")]
    assert registry.errors == {}


def test_a_file_changed_to_speak_as_another_account_keeps_its_policy_in_force(tmp_path: Path) -> None:
    """brand-quick posts as its own account; its file is then changed to carry brand's token.
    The change is refused, naming brand.yaml, and brand-quick's policy in force stays as it was
    (a refused file leaves what was in force, here too); brand's stays as well."""
    own = QUICK.replace("env:BRAND_TOKEN", "env:QUICK_TOKEN")
    directory = make_policy_dir(tmp_path, {"brand": BRAND, "brand-quick": own})
    registry = PolicyRegistry(directory=directory)
    assert [(c.account, c.kind) for c in registry.reload()] == [("brand", "loaded"), ("brand-quick", "loaded")]
    brand, quick = registry.get("brand"), registry.get("brand-quick")
    write_policy(directory, "brand-quick", QUICK)
    assert registry.reload() == []
    assert registry.get("brand") == brand and registry.get("brand-quick") == quick
    (issue,) = registry.errors["brand-quick.yaml"]
    assert "same mastodon account as brand.yaml" in issue.message


def test_two_files_naming_one_credential_file_two_ways_are_both_refused(tmp_path: Path) -> None:
    """``file:secrets/token`` and ``file:./secrets/token`` are one credential, read from the
    policy directory: two new files naming it on one instance are both refused."""
    one = QUICK.replace("env:BRAND_TOKEN", "file:secrets/token")
    directory = make_policy_dir(tmp_path, {"one": one.replace("brand-quick", "one"),
                                           "two": one.replace("brand-quick", "two").replace("secrets/", "./secrets/")})
    good, issues = check_dir(directory)
    assert good == {} and [i.file for i in issues] == ["one.yaml", "two.yaml"]
    registry = PolicyRegistry(directory=directory)
    assert registry.reload() == [] and registry.policies == {}
    assert sorted(registry.errors) == ["one.yaml", "two.yaml"]


async def _errors(gw: object, user: str = "alice") -> dict[str, str]:
    status, body = await gw.call(user, "GET", "/v1/policies/errors")  # type: ignore[attr-defined]
    assert status == 200, body
    return {e["file"]: e["message"] for e in body["errors"]}


async def _policy(gw: object, account: str) -> tuple[int, dict[str, object]]:
    status, body = await gw.call("alice", "GET", f"/v1/accounts/{account}/policy")  # type: ignore[attr-defined]
    return status, body


async def test_a_gateway_keeps_the_account_in_force_and_refuses_the_second_file(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """The co-signed brand stays in force when brand-quick.yaml appears, on a reload and after a
    restart; brand-quick is refused in /v1/policies/errors naming brand.yaml, and has no policy."""
    directory = make_policy_dir(tmp_path, {"brand": BRAND, "solo": SOLO})
    async with started_gateway(db_url, directory, clock, admins="erin") as gw:
        write_policy(directory, "brand-quick", QUICK)
        assert await gw.sync_policies() == []
        errors = await _errors(gw, "erin")
        assert list(errors) == ["brand-quick.yaml"] and "as brand.yaml" in errors["brand-quick.yaml"]
        status, body = await _policy(gw, "brand")
        assert status == 200 and body["policy"]["tier"] == "co-signed"  # type: ignore[index]
        assert (await _policy(gw, "brand-quick"))[0] == 404
    async with started_gateway(db_url, directory, clock, admins="erin") as gw:
        assert list(await _errors(gw, "erin")) == ["brand-quick.yaml"]
        status, body = await _policy(gw, "brand")
        assert status == 200 and body["policy"]["tier"] == "co-signed"  # type: ignore[index]
        assert (await _policy(gw, "brand-quick"))[0] == 404


async def test_a_replica_without_the_first_file_refuses_the_second(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """The check runs against the versions in force in the database: a replica whose directory
    holds only brand-quick.yaml does not record it while brand (another replica's) is in force."""
    first = make_policy_dir(tmp_path, {"brand": BRAND}, "policies-a")
    second = make_policy_dir(tmp_path, {"brand-quick": QUICK}, "policies-b")
    async with started_gateway(db_url, first, clock) as a, started_gateway(db_url, second, clock, admins="erin") as b:
        assert await b.sync_policies() == []
        assert "as brand.yaml" in (await _errors(b, "erin"))["brand-quick.yaml"]
        assert (await _policy(a, "brand-quick"))[0] == 404
        assert (await _policy(b, "brand-quick"))[0] == 404


async def test_two_versions_in_force_for_one_account_are_both_removed(
    db_url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both recorded before this rule: the next reload records both removed (no gateway enforces
    either), until the admin deletes one file, whose partner is then recorded again."""
    directory = make_policy_dir(tmp_path, {"brand": BRAND, "brand-quick": QUICK})
    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr(policy_service, "shared_accounts", lambda *a, **k: {})
        async with started_gateway(db_url, directory, clock):
            pass
    async with started_gateway(db_url, directory, clock, admins="erin") as gw:
        assert (await _policy(gw, "brand"))[0] == 404
        assert (await _policy(gw, "brand-quick"))[0] == 404
        assert set(await _errors(gw, "erin")) == {"brand.yaml", "brand-quick.yaml"}
        assert await gw.sync_policies() == []
        (directory / "brand-quick.yaml").unlink()
        assert await gw.sync_policies() == ["brand"]
        status, body = await _policy(gw, "brand")
        assert status == 200 and body["policy"]["tier"] == "co-signed"  # type: ignore[index]


async def test_serve_lists_the_second_file_alone_where_the_first_is_in_force(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """With brand in force in the database, `byline serve` used to list both brand.yaml and
    brand-quick.yaml as refused ("neither is used") at start, though the gateway it started
    kept brand: it lists brand-quick.yaml alone, naming brand.yaml as the one in force, counts
    brand among the accounts it serves, and the gateway does just that."""
    directory = make_policy_dir(tmp_path, {"brand": BRAND, "solo": SOLO})
    async with started_gateway(db_url, directory, clock):
        pass  # brand recorded in force
    write_policy(directory, "brand-quick", QUICK)

    async with serving_demo(_env(tmp_path, db_url, directory), tmp_path / "serve.log") as output:
        port = next(json.loads(line)["port"] for line in output.splitlines() if '"gateway_started"' in line)
        token = dict(DEMO_TOKEN.findall(output))["alice"]
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}",
                                         headers={"Authorization": f"Bearer {token}"}) as http:
            seen = {}
            for account in ("brand", "brand-quick"):
                async with http.get(f"/v1/accounts/{account}/policy") as answer:
                    seen[account] = answer.status

    assert [line for line in output.splitlines() if line.startswith("policy refused:")] == [
        "policy refused: brand-quick.yaml: credentials: names the same mastodon account as brand.yaml (credentials "
        "env:BRAND_TOKEN on https://mastodon.example.org): one platform account has one policy file; brand.yaml is "
        "in force for it, so this file is refused",
    ], output
    assert f"  policies:  {directory}, 2 account(s)  (BYLINE_POLICY_DIR)\n" in output, output
    assert seen == {"brand": 200, "brand-quick": 404}


async def test_token_create_binds_the_account_in_force_beside_a_refused_second_file(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """`byline token create --account brand` judged the files among themselves and refused
    brand (in force, and served by the gateway) for the newcomer naming its platform account:
    it judges them as the gateway does, and refuses the newcomer alone."""
    directory = make_policy_dir(tmp_path, {"brand": BRAND, "solo": SOLO})
    async with started_gateway(db_url, directory, clock):
        pass  # brand recorded in force
    write_policy(directory, "brand-quick", QUICK)
    env = _env(tmp_path, db_url, directory)

    made = await byline(env, "token", "create", "--user", "alice", "--account", "brand")
    assert made.code == 0, made.text
    refused = await byline(env, "token", "create", "--user", "alice", "--account", "brand-quick")
    assert refused.code != 0
    assert "brand.yaml is in force for it" in refused.err, refused.text


async def test_serve_lists_both_new_files_naming_one_account_as_refused(tmp_path: Path, db_url: str) -> None:
    """Neither file in force yet (a new database): both are listed as refused, as the gateway
    refuses both."""
    directory = make_policy_dir(tmp_path, {"brand": BRAND, "brand-quick": QUICK, "solo": SOLO})

    output = await _demo_run(_env(tmp_path, db_url, directory), tmp_path / "serve.log")

    refused = [line for line in output.splitlines() if line.startswith("policy refused:")]
    assert [line.split(":")[1].strip() for line in refused] == ["brand-quick.yaml", "brand.yaml"], output
    assert all(line.endswith("neither is used until one of them is removed") for line in refused), output


def _by_file(text: str, name: str) -> str:
    """A policy of this module with its token in a file of the secrets directory instead."""
    return text.replace("env:BRAND_TOKEN", f"file:secrets/{name}")


def test_a_file_changed_to_speak_as_another_keeps_its_version_in_force_in_a_check(tmp_path: Path) -> None:
    """``check_dir`` against the versions in force, tokens in files: brand-quick in force as its
    own account, its file now naming brand's token, is refused and keeps its version in force,
    as a gateway keeps it; brand keeps its own."""
    directory = make_policy_dir(tmp_path, {"brand": _by_file(BRAND, "brand"),
                                           "brand-quick": _by_file(QUICK, "quick")})
    brand, own = load_file(directory / "brand.yaml"), load_file(directory / "brand-quick.yaml")
    write_policy(directory, "brand-quick", _by_file(QUICK, "brand"))
    good, issues = check_dir(directory, in_force={"brand": brand, "brand-quick": own})
    assert good == {"brand": brand, "brand-quick": own}
    assert [i.file for i in issues] == ["brand-quick.yaml"]
    assert "same mastodon account as brand.yaml" in issues[0].message


def test_two_versions_in_force_for_one_account_are_both_refused_even_with_a_file_gone(tmp_path: Path) -> None:
    """Both in force for one platform account (recorded before the rule), brand-quick's file
    since removed: neither is judged good, and the check says so rather than failing."""
    directory = make_policy_dir(tmp_path, {"brand": _by_file(BRAND, "brand"),
                                           "brand-quick": _by_file(QUICK, "brand")})
    brand, quick = load_file(directory / "brand.yaml"), load_file(directory / "brand-quick.yaml")
    (directory / "brand-quick.yaml").unlink()
    good, issues = check_dir(directory, in_force={"brand": brand, "brand-quick": quick})
    assert good == {}
    assert sorted(i.file for i in issues) == ["brand-quick.yaml", "brand.yaml"]


def test_a_registry_keeps_the_version_in_force_with_tokens_in_files(tmp_path: Path) -> None:
    """As ``test_a_file_changed_to_speak_as_another_account_keeps_its_policy_in_force``, with
    each token in a file of the secrets directory."""
    directory = make_policy_dir(tmp_path, {"brand": _by_file(BRAND, "brand"),
                                           "brand-quick": _by_file(QUICK, "quick")})
    registry = PolicyRegistry(directory=directory)
    assert [(c.account, c.kind) for c in registry.reload()] == [("brand", "loaded"), ("brand-quick", "loaded")]
    brand, quick = registry.get("brand"), registry.get("brand-quick")
    write_policy(directory, "brand-quick", _by_file(QUICK, "brand"))
    assert registry.reload() == []
    assert registry.get("brand") == brand and registry.get("brand-quick") == quick
    assert list(registry.errors) == ["brand-quick.yaml"]


def test_a_path_differing_by_its_last_letters_is_another_server() -> None:
    """Only a trailing slash is dropped from a server's path: ``/socialX`` is not ``/social``."""
    mastodon = "platform: mastodon\ninstance: https://m.example/social\ncredentials: env:T\n"
    assert not _keys(mastodon) & _keys(mastodon.replace("/social", "/socialX"))
    assert not _keys(mastodon) & _keys(mastodon.replace("/social", "/social/X/"))
    assert _keys(mastodon) & _keys(mastodon.replace("/social", "/social/"))


_X = """
    account: {name}
    platform: x
    credentials: env:X_TOKEN
    tier: direct
    owner: alice
"""


def test_two_x_files_with_one_token_are_refused_naming_the_credential(tmp_path: Path) -> None:
    """On X a token is one account, whatever the API address: the issue is at ``credentials``
    and names the token alone."""
    directory = make_policy_dir(tmp_path, {"one": _X.format(name="one"),
                                           "two": _X.format(name="two") + "    api: https://api.example\n"})
    good, issues = check_dir(directory)
    assert good == {}
    assert [(i.file, i.key, i.message) for i in issues] == [
        ("one.yaml", "credentials", "names the same x account as two.yaml (credentials env:X_TOKEN): one platform "
                                    "account has one policy file; neither is used until one of them is removed"),
        ("two.yaml", "credentials", "names the same x account as one.yaml (credentials env:X_TOKEN): one platform "
                                    "account has one policy file; neither is used until one of them is removed"),
    ]


def test_three_files_for_one_account_each_name_the_two_others(tmp_path: Path) -> None:
    texts = {name: QUICK.replace("brand-quick", name) for name in ("a", "b", "c")}
    good, issues = check_dir(make_policy_dir(tmp_path, texts))
    assert good == {}
    assert [i.message.split(" (")[0] for i in issues] == [
        "names the same mastodon account as b.yaml, c.yaml", "names the same mastodon account as a.yaml, c.yaml",
        "names the same mastodon account as a.yaml, b.yaml"]


def test_two_bluesky_files_with_one_handle_and_two_credentials_are_refused(tmp_path: Path) -> None:
    """The handle is what signs in on a PDS: two files with one handle speak as one account,
    whatever credential each names."""
    sky = "account: {name}\nplatform: bluesky\npds: https://pds.example\ncredentials: env:{token}\n" \
          "handle: '@brand.example'\ntier: direct\nowner: alice\n"
    directory = make_policy_dir(tmp_path, {"a": sky.format(name="a", token="A"), "b": sky.format(name="b", token="B")})
    good, issues = check_dir(directory)
    assert good == {}
    assert [(i.file, i.key) for i in issues] == [("a.yaml", "handle"), ("b.yaml", "handle")]


def test_sandbox_accounts_are_their_own_whatever_credentials_they_name(tmp_path: Path) -> None:
    """A sandbox account speaks as nobody elsewhere: two naming one credential both load."""
    solo = SOLO.replace("tier: direct", "tier: direct\n    credentials: env:SHARED_TOKEN")
    good, issues = check_dir(make_policy_dir(tmp_path, {"solo": solo, "solo-two": solo.replace("solo", "solo-two")}))
    assert (sorted(good), issues) == (["solo", "solo-two"], [])


def test_two_bluesky_files_with_one_handle_written_two_ways_name_it_as_bluesky_reads_it(tmp_path: Path) -> None:
    """One handle written ``@Brand.example`` and ``brand.example`` on one PDS (its address
    written two ways) is one account; the issue names the handle as Bluesky reads it."""
    sky = "account: {name}\nplatform: bluesky\ncredentials: env:{token}\nhandle: '{handle}'\ntier: direct\n" \
          "owner: alice\npds: {pds}\n"
    directory = make_policy_dir(tmp_path, {
        "a": sky.format(name="a", token="A", handle="@Brand.example", pds="https://bsky.social"),
        "b": sky.format(name="b", token="B", handle="brand.example", pds="https://BSKY.social/"),
    })
    good, issues = check_dir(directory)
    assert good == {}
    assert [(i.file, i.key, i.message) for i in issues] == [
        (f"{name}.yaml", "handle", f"names the same bluesky account as {other}.yaml (handle @brand.example on "
                                   "https://bsky.social): one platform account has one policy file; neither is used "
                                   "until one of them is removed")
        for name, other in (("a", "b"), ("b", "a"))
    ]


def test_two_mastodon_files_with_one_handle_and_two_tokens_both_load(tmp_path: Path) -> None:
    """On Mastodon the credential says whose account it is, not the ``handle`` (words for the
    byline): one handle and two tokens on one instance is two accounts, each loaded."""
    own = QUICK.replace("env:BRAND_TOKEN", "env:QUICK_TOKEN")
    own = own.replace("tier: direct", 'tier: direct\n    handle: "@brand"')
    good, issues = check_dir(make_policy_dir(tmp_path, {"brand": BRAND, "brand-quick": own}))
    assert (sorted(good), issues) == (["brand", "brand-quick"], [])


def test_two_env_names_holding_one_token_are_one_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ``env:`` names set to one token speak as one account, as one name would: brand-quick
    (direct) on ``env:QUICK_TOKEN`` beside the co-signed brand on ``env:BRAND_TOKEN``, both
    holding the brand's token, is refused, naming the references and never the token; with two
    tokens both load; on X at any address. A name that is not set names no account here."""
    token = "brand-token-4f1c9a2e77"
    monkeypatch.setenv("BRAND_TOKEN", token)
    monkeypatch.setenv("QUICK_TOKEN", token)
    quick = QUICK.replace("env:BRAND_TOKEN", "env:QUICK_TOKEN")
    good, issues = check_dir(make_policy_dir(_fresh(tmp_path, "one"), {"brand": BRAND, "brand-quick": quick}))
    assert sorted(good) == [] and sorted(i.file for i in issues) == ["brand-quick.yaml", "brand.yaml"]
    said = " ".join(i.message for i in issues)
    assert "env:QUICK_TOKEN" in said and "env:BRAND_TOKEN" in said and token not in said
    good, issues = check_dir(make_policy_dir(_fresh(tmp_path, "kept"), {"brand-quick": quick}), in_force=check_dir(
        make_policy_dir(_fresh(tmp_path, "first"), {"brand": BRAND}))[0])
    assert (sorted(good), [i.file for i in issues]) == ([], ["brand-quick.yaml"])
    elsewhere = quick.replace("https://mastodon.example.org", "https://other.example.org")
    two_servers = make_policy_dir(_fresh(tmp_path, "two-servers"), {"brand": BRAND, "brand-quick": elsewhere})
    good, issues = check_dir(two_servers)
    assert (sorted(good), issues) == (["brand", "brand-quick"], [])  # one token string, two instances' accounts
    x_brand = "account: xb\nplatform: x\napi: https://api.x.com\ncredentials: env:BRAND_TOKEN\ntier: co-signed\n" \
              "owner: alice\nwriters: [alice]\napprovals:\n  required: 1\n  from: [bob]\n"
    x_quick = "account: xq\nplatform: x\napi: https://x.example.net\ncredentials: env:QUICK_TOKEN\ntier: direct\n" \
              "owner: carol\n"
    good, issues = check_dir(make_policy_dir(_fresh(tmp_path, "x"), {"xb": x_brand, "xq": x_quick}))
    assert sorted(good) == [] and all("the token env:" in i.message for i in issues), issues
    monkeypatch.setenv("secrets/quick", token)  # a name only as a file's path: not read as one
    in_file = quick.replace("env:QUICK_TOKEN", "file:secrets/quick")
    good, issues = check_dir(make_policy_dir(_fresh(tmp_path, "file"), {"brand": BRAND, "brand-quick": in_file}))
    assert (sorted(good), issues) == (["brand", "brand-quick"], [])
    monkeypatch.setenv("QUICK_TOKEN", "another-token-0b3d5e")
    good, issues = check_dir(make_policy_dir(_fresh(tmp_path, "two-tokens"), {"brand": BRAND, "brand-quick": quick}))
    assert (sorted(good), issues) == (["brand", "brand-quick"], [])
    monkeypatch.delenv("QUICK_TOKEN")
    good, issues = check_dir(make_policy_dir(_fresh(tmp_path, "unset"), {"brand": BRAND, "brand-quick": quick}))
    assert (sorted(good), issues) == (["brand", "brand-quick"], [])


async def test_a_gateway_refuses_a_second_file_whose_env_name_holds_the_accounts_token(
    db_url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over HTTP: the co-signed brand stays in force when brand-quick.yaml appears naming another
    ``env:`` name set to the brand's token; brand-quick has no policy, so nobody posts alone as
    the brand through it, and /v1/policies/errors says why without the token."""
    monkeypatch.setenv("BRAND_TOKEN", "brand-token-4f1c9a2e77")
    monkeypatch.setenv("QUICK_TOKEN", "brand-token-4f1c9a2e77")
    directory = make_policy_dir(tmp_path, {"brand": BRAND, "solo": SOLO})
    async with started_gateway(db_url, directory, clock, admins="erin") as gw:
        write_policy(directory, "brand-quick", QUICK.replace("env:BRAND_TOKEN", "env:QUICK_TOKEN"))
        assert await gw.sync_policies() == []
        errors = await _errors(gw, "erin")
        assert list(errors) == ["brand-quick.yaml"] and "as brand.yaml" in errors["brand-quick.yaml"]
        assert "brand-token-4f1c9a2e77" not in json.dumps(errors)
        assert (await _policy(gw, "brand-quick"))[0] == 404
        status, body = await gw.call("carol", "POST", "/v1/posts", {"account": "brand-quick", "text": "Alone"})
        assert status == 404, body

"""Policy files: strict validation with file, line and key; live reload; every change recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.policy.loader import PolicyFileError, load_file, parse_policy
from tests.conftest import TEST_POLICIES as POLICIES
from tests.conftest import Gateway, write_policy

BASE = textwrap.dedent(POLICIES["cosigned"]).lstrip()


def _issues(text: str, name: str = "cosigned") -> list[str]:
    with pytest.raises(PolicyFileError) as info:
        parse_policy(textwrap.dedent(text), name=f"{name}.yaml", expected_account=name)
    return [str(i) for i in info.value.issues]


def test_the_contract_keys_load() -> None:
    """Every key of the documented format loads, with defaults where it is silent."""
    policy = parse_policy(BASE, name="cosigned.yaml", expected_account="cosigned")
    assert policy.tier.value == "co-signed"
    assert policy.approvals is not None and policy.approvals.required == 2
    assert policy.approvals.from_ == ("bob", "carol", "dave")
    assert policy.delay.total_seconds() == 60
    direct = parse_policy(textwrap.dedent(POLICIES["direct"]), name="direct.yaml", expected_account="direct")
    assert direct.writers == ("alice",)
    assert [r.name for r in direct.rules] == ["breaking-news", "no-slurs"]


def test_unknown_key_is_named_with_its_line() -> None:
    """A misspelled key is an error naming the file, the line and the key."""
    text = BASE.replace("delay: 1m", "delay: 1m\ndelya: 5m")
    assert _issues(text) == ["cosigned.yaml:8: delya: unknown key"]


def test_nested_unknown_key_and_bad_type() -> None:
    """Errors deep in the file point at the right line and dotted key."""
    text = BASE.replace("required: 2", "required: two\n  quorum: 1")
    issues = _issues(text)
    assert "cosigned.yaml:9: approvals.required: Input should be a valid integer" in issues
    assert "cosigned.yaml:10: approvals.quorum: unknown key" in issues


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("tier: co-signed", "tier: sometimes"), "tier: Input should be 'direct', 'delayed', 'co-signed' or 'managed'"),
        (("account: cosigned", "account: other"), "account: must equal the file name: cosigned"),
        (("delay: 1m", "delay: soon"), "delay: a duration such as 30s, 15m, 24h, 2d or 1h30m"),
        (
            ("required: 2", "required: 3"),
            "cosigned.yaml:9: approvals.required: approvals.required is 3 but posts by carol can only be approved by 2",
        ),
        (("platform: sandbox", "platform: mastodon"), "platform mastodon needs credentials"),
        (("owner: alice", "owner: 12"), "owner: Input should be a valid string"),
    ],
)
def test_tier_and_value_errors(change: tuple[str, str], expected: str) -> None:
    """Bad values and impossible tier settings are refused with a plain message."""
    issues = _issues(BASE.replace(*change))
    assert any(expected in i for i in issues), issues


def test_an_approver_named_twice_counts_once() -> None:
    """``from: [bob, carol, bob]`` where two approvals are asked: carol's posts would have bob
    alone, named twice; the file is refused, counting him once."""
    text = BASE.replace("from: [bob, carol, dave]", "from: [bob, carol, bob]")
    assert text != BASE
    issues = _issues(text)
    assert any("approvals.required is 2 but posts by carol can only be approved by 1" in i for i in issues), issues


def test_tier_requirements() -> None:
    """Delayed needs a delay; co-signed needs approvals; managed keeps the owner out of writers."""
    delayed = textwrap.dedent(POLICIES["delayed"]).replace("delay: 10m", "delay: 0s")
    assert any("delayed account needs delay" in i for i in _issues(delayed, "delayed"))
    cosigned = "\n".join(line for line in BASE.splitlines() if not line.startswith(("approvals", "  ")))
    assert any("co-signed account needs approvals" in i for i in _issues(cosigned))
    managed = textwrap.dedent(POLICIES["managed"]).replace("writers: [bob, carol]", "writers: [dave, bob]")
    assert any("owner only suggests" in i for i in _issues(managed, "managed"))


def test_duplicate_key_and_bad_yaml() -> None:
    """A key given twice, and YAML that does not parse, are errors with lines."""
    assert "cosigned.yaml:8: delay: key appears twice" in _issues(BASE.replace("delay: 1m", "delay: 1m\ndelay: 2m"))
    assert any(i.startswith("cosigned.yaml:") and "not valid YAML" in i for i in _issues(BASE + "\n  - : ]["))


def test_bad_regex_is_refused() -> None:
    """A rule whose regex does not compile is refused when loaded, not when a post arrives."""
    text = textwrap.dedent(POLICIES["direct"]).replace('"(?i)\\\\bexample-slur\\\\b"', '"([unclosed"')
    assert any("regex does not compile" in i for i in _issues(text, "direct"))


def test_policy_check_cli(tmp_path: Path, policy_dir: Path) -> None:
    """`byline policy check DIR` exits 0 on a good directory and 1 listing every error of a bad one."""
    ok = subprocess.run([sys.executable, "-m", "gateway", "policy", "check", str(policy_dir)],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "ok  cosigned.yaml: co-signed on sandbox" in ok.stdout
    write_policy(policy_dir, "broken", "account: broken\nplatform: sandbox\ntier: direct\nowner: x\ncolour: red\n")
    write_policy(policy_dir, "worse", "account: nope\nplatform: myspace\ntier: direct\nowner: x\n")
    bad = subprocess.run([sys.executable, "-m", "gateway", "policy", "check", str(policy_dir)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "broken.yaml:5: colour: unknown key" in bad.stderr
    assert "worse.yaml:2: platform:" in bad.stderr
    assert "worse.yaml:1: account: must equal the file name: worse" in bad.stderr
    assert "3 problem(s)" in bad.stderr


async def test_a_hold_that_expires_at_once_is_refused(gateway: Gateway, policy_dir: Path) -> None:
    """``expire_after: 0s`` would let every held post expire unseen: the file is refused with its
    line and key, nothing is recorded, and a post is held under the policy still in force."""
    write_policy(policy_dir, "cosigned", textwrap.dedent(POLICIES["cosigned"]).replace("expire_after: 24h",
                                                                                        "expire_after: 0s"))
    assert await gateway.sync_policies() == []
    status, body = await gateway.call("bob", "GET", "/v1/accounts/cosigned/policy")
    assert status == 200
    assert body["refused"] == [{
        "file": "cosigned.yaml", "line": 11, "key": "approvals.expire_after",
        "message": "a held post needs time to be approved: a duration greater than 0s, such as 24h",
    }]
    assert [e["type"] for e in await _policy_events(gateway, "cosigned")] == ["policy.loaded"]
    post = await gateway.submit("alice", "cosigned", "held a day")
    assert post["state"] == "held"
    held_for = datetime.fromisoformat(post["expires_at"]) - datetime.fromisoformat(post["created_at"])
    assert held_for == timedelta(hours=24)


async def _policy_events(gateway: Gateway, account: str) -> list[dict[str, object]]:
    from gateway.appkeys import DB

    async with gateway.app[DB].read() as txn:
        rows = await txn.fetchall(
            "SELECT entry FROM log_entries WHERE chain = ? ORDER BY idx", f"policy:{account}"
        )
    return [json.loads(bytes(r["entry"])) for r in rows]


async def test_reload_valid_invalid_and_recorded(gateway: Gateway, policy_dir: Path) -> None:
    """A valid change takes effect and is logged; an invalid file is refused and the old policy stays."""
    events = await _policy_events(gateway, "delayed")
    assert [e["type"] for e in events] == ["policy.loaded"]
    assert await gateway.sync_policies() == []  # nothing changed, nothing recorded

    direct = textwrap.dedent(POLICIES["delayed"]).replace("tier: delayed", "tier: direct")
    write_policy(policy_dir, "delayed", direct.replace("delay: 10m", "delay: 0s"))
    assert await gateway.sync_policies() == ["delayed"]
    events = await _policy_events(gateway, "delayed")
    assert [e["type"] for e in events] == ["policy.loaded", "policy.changed"]
    changed = events[1]["data"]
    assert isinstance(changed, dict)
    assert changed["changed"] == ["delay_seconds", "tier"]
    assert changed["previous_sha256"] == events[0]["data"]["sha256"]  # type: ignore[index]
    assert events[1]["prev"]["index"] > 0  # type: ignore[index]
    post = await gateway.submit("bob", "delayed", "now direct")
    assert post["publish_at"] <= post["created_at"]

    broken = "account: delayed\nplatform: sandbox\ntier: delayed\nowner: bob\ndelay: [oops\n"
    write_policy(policy_dir, "delayed", broken)
    assert await gateway.sync_policies() == []
    status, body = await gateway.call("bob", "GET", "/v1/accounts/delayed/policy")
    assert status == 200
    assert body["policy"]["tier"] == "direct"  # the last good policy is still in force
    assert body["refused"] and "not valid YAML" in body["refused"][0]["message"]
    status, body = await gateway.call("bob", "GET", "/v1/policies/errors")
    assert status == 200 and body["errors"][0]["file"] == "delayed.yaml"
    assert [e["type"] for e in await _policy_events(gateway, "delayed")] == ["policy.loaded", "policy.changed"]

    (policy_dir / "managed.yaml").unlink()
    assert await gateway.sync_policies() == ["managed"]
    assert [e["type"] for e in await _policy_events(gateway, "managed")] == ["policy.loaded", "policy.removed"]
    status, body = await gateway.call("bob", "POST", "/v1/posts", {"account": "managed", "text": "hi"})
    assert status == 404 and body["error"] == "unknown_account"


UPGRADED = """
    account: upgraded
    platform: sandbox
    tier: co-signed
    owner: alice
    writers: [alice, carol]
    delay: 1m
    approvals:
      required: 1
      from: [bob, dave]
      expire_after: {hold}
"""


@pytest.mark.parametrize(("text", "hold", "then", "changed"), [
    ("kept", "12h", "12h", ["delay_seconds"]),
    ("kept", "12h", "24h", ["delay_seconds", "expire_after_seconds"]),
    ("kept", "24h", "24h", ["delay_seconds"]),
    ("gone", "24h", "24h", ["delay_seconds"]),
    ("gone", "12h", "12h", ["delay_seconds", "expire_after_seconds"]),
])
async def test_the_first_change_after_an_upgrade_lists_what_changed(
    gateway: Gateway, policy_dir: Path, db_url: str, text: str, hold: str, then: str, changed: list[str],
) -> None:
    """A version recorded by an earlier Byline, whose summary says neither how long a hold lasts
    nor its disclosure: the first change after the upgrade (its delay) lists what changed, those
    compared with what that version's text said, not every part the summary gained; the hold's
    length is listed where it did change. Where the version's text is not kept, it is compared
    with the day a hold lasted where a policy did not say: a policy that said 12 h then, and
    says it still, is listed as changed, as nothing kept can tell. Before, every case listed
    expire_after_seconds."""
    from tests.audit.logtools import Attacker

    write_policy(policy_dir, "upgraded", UPGRADED.format(hold=hold))
    assert await gateway.sync_policies() == ["upgraded"]
    (recorded,) = await Attacker(db_url).fetch("SELECT summary FROM policy_heads WHERE account = ?", "upgraded")
    earlier = {k: v for k, v in json.loads(recorded[0]).items() if k not in ("expire_after_seconds", "disclosure")}
    await Attacker(db_url).run(
        ("UPDATE policy_heads SET summary = ? WHERE account = ?", (json.dumps(earlier), "upgraded")),
        ("UPDATE policy_versions SET summary = ? WHERE account = ?", (json.dumps(earlier), "upgraded")),
        *([("UPDATE policy_versions SET body = NULL WHERE account = ?", ("upgraded",))] if text == "gone" else []),
    )
    write_policy(policy_dir, "upgraded", UPGRADED.format(hold=then).replace("delay: 1m", "delay: 2m"))
    assert await gateway.sync_policies() == ["upgraded"]
    events = await _policy_events(gateway, "upgraded")
    assert [e["type"] for e in events] == ["policy.loaded", "policy.changed"]
    assert events[1]["data"]["changed"] == changed  # type: ignore[index]


SPOKEN = """
    account: spoken
    platform: mastodon
    instance: https://Social.Example/
    handle: "@{handle}"
    credentials: env:SPOKEN_TOKEN
    tier: delayed
    owner: alice
    delay: {delay}
"""


@pytest.mark.parametrize(("text", "handle", "changed"), [
    ("kept", "brand", ["delay_seconds"]),
    ("kept", "other", ["delay_seconds", "speaks_as"]),
    ("gone", "brand", ["delay_seconds"]),
])
async def test_the_first_change_after_an_upgrade_names_the_platform_account_only_where_it_changed(
    gateway: Gateway, policy_dir: Path, db_url: str, text: str, handle: str, changed: list[str],
) -> None:
    """A version recorded by a Byline whose summaries did not say which platform account a
    policy speaks as: the first change after the upgrade (its delay) lists ``speaks_as`` only
    where the account did change (compared with that version's kept text), and, where no text
    is kept, not at all: every Mastodon, Bluesky and X account would otherwise be reported
    as speaking as another account."""
    from tests.audit.logtools import Attacker

    write_policy(policy_dir, "spoken", SPOKEN.format(handle="brand", delay="1m"))
    assert await gateway.sync_policies() == ["spoken"]
    (recorded,) = await Attacker(db_url).fetch("SELECT summary FROM policy_heads WHERE account = ?", "spoken")
    summary = json.loads(recorded[0])
    assert summary["speaks_as"] == "https://social.example @brand"
    earlier = {k: v for k, v in summary.items() if k != "speaks_as"}
    await Attacker(db_url).run(
        ("UPDATE policy_heads SET summary = ? WHERE account = ?", (json.dumps(earlier), "spoken")),
        ("UPDATE policy_versions SET summary = ? WHERE account = ?", (json.dumps(earlier), "spoken")),
        *([("UPDATE policy_versions SET body = NULL WHERE account = ?", ("spoken",))] if text == "gone" else []),
    )
    write_policy(policy_dir, "spoken", SPOKEN.format(handle=handle, delay="2m"))
    assert await gateway.sync_policies() == ["spoken"]
    events = await _policy_events(gateway, "spoken")
    assert [e["type"] for e in events] == ["policy.loaded", "policy.changed"]
    assert events[1]["data"]["changed"] == changed  # type: ignore[index]
    assert "SPOKEN_TOKEN" not in json.dumps(events)


def test_load_file_hash_and_account(tmp_path: Path) -> None:
    """A loaded file carries its SHA-256, which is what the log records."""
    import hashlib

    path = write_policy(tmp_path, "cosigned", POLICIES["cosigned"])
    loaded = load_file(path)
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("from: [bob, carol, dave]", "from: [bob carol, dave]"),
         "cosigned.yaml:10: approvals.from: entry 1, 'bob carol', is not a user name"),
        (("writers: [alice, carol]", 'writers: [alice, ""]'),
         "cosigned.yaml:6: writers: entry 2, '', is not a user name"),
        (("from: [bob, carol, dave]", 'from: ["Bob", " carol", dave]'),
         "cosigned.yaml:10: approvals.from: entry 2, ' carol', is not a user name"),
        (("delay: 1m", "delay: 1m\nsuggesters: [erin, \"dave\\n\"]"),
         "cosigned.yaml:8: suggesters: entry 2, 'dave\\n', is not a user name"),
        # The names the gateway writes in the log for itself: a writer so named would post as
        # the policy file's announcement does, with no role, approval or disclosure line.
        (("writers: [alice, carol]", "writers: [alice, policy-file]"),
         "cosigned.yaml:6: writers: entry 2, 'policy-file', is a name Byline keeps for itself"),
        (("from: [bob, carol, dave]", "from: [bob, system]"),
         "cosigned.yaml:10: approvals.from: entry 2, 'system', is a name Byline keeps for itself"),
        (("owner: alice", "owner: policy-file"), "cosigned.yaml:5: owner: 'policy-file' is a name Byline keeps"),
    ],
)
def test_people_are_named_as_the_owner_is(change: tuple[str, str], expected: str) -> None:
    """Writers, approvers and suggesters are user names like the owner: one approver named
    "bob carol" would leave every post waiting for an approval nobody can give."""
    issues = _issues(BASE.replace(*change))
    assert any(i.startswith(expected) for i in issues), issues


def test_a_link_out_of_the_policy_directory_is_refused(tmp_path: Path) -> None:
    """A policy file that is a symlink to a file outside the directory is refused, by the
    registry and by `byline policy check` (check_dir); a link that points elsewhere inside is not."""
    from gateway.policy.loader import PolicyRegistry, check_dir

    elsewhere = write_policy(tmp_path, "direct", POLICIES["direct"])  # beside the directory, not in it
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "direct.yaml").symlink_to(elsewhere)
    write_policy(directory, "delayed", POLICIES["delayed"])
    (directory / "delayed-too.yaml").symlink_to("delayed.yaml")  # inside: loads, if it validates
    message = "is a link to a file outside the policy directory: refused; put the policy itself in the directory"
    registry = PolicyRegistry(directory=directory)
    registry.reload()
    assert registry.get("direct") is None
    assert [str(i) for i in registry.errors["direct.yaml"]] == [f"direct.yaml: {message}"]
    assert [(i.line, i.key) for i in registry.errors["direct.yaml"]] == [(None, "")]  # the file, no key in it
    assert registry.get("delayed") is not None
    assert [i.key for i in registry.errors["delayed-too.yaml"]] == ["account"]  # read, and judged on its words
    good, issues = check_dir(directory)
    assert "direct" not in good and f"direct.yaml: {message}" in [str(i) for i in issues]

@pytest.mark.parametrize("swapped", ["the file", "its directory"])
@pytest.mark.parametrize("reader", ["registry", "check"])
def test_a_link_swapped_between_the_check_and_the_read_is_not_followed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swapped: str, reader: str,
) -> None:
    """``direct.yaml`` links inside the directory (as a ConfigMap's ``..data`` does) and is
    checked there; before it is read, whoever may write in the directory points the file's
    link, or the directory it leads through, at a policy outside it, owned by mallory. The
    registry (the gateway's reload) and ``byline policy check`` read what was checked, or
    nothing, saying why: never mallory's policy (before: read along the new link, put in force)."""
    from gateway.policy import loader

    directory = tmp_path / "policies"
    stamped = directory / "..2026_01_01"
    stamped.mkdir(parents=True)
    (directory / "..data").symlink_to(stamped.name)
    write_policy(stamped, "direct", POLICIES["direct"])
    (directory / "direct.yaml").symlink_to("..data/direct.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_policy(elsewhere, "direct", POLICIES["direct"].replace("owner: alice", "owner: mallory"))
    checked = loader.check_inside

    def then_swapped(path: Path, inside: Path) -> Path:
        real = checked(path, inside)
        if swapped == "the file":
            path.unlink()
            path.symlink_to(elsewhere / "direct.yaml")
        else:
            stamped.rename(stamped.with_name("..old"))
            stamped.symlink_to(elsewhere, target_is_directory=True)
        return real

    monkeypatch.setattr(loader, "check_inside", then_swapped)
    if reader == "registry":
        registry = loader.PolicyRegistry(directory=directory)
        registry.reload()
        good, issues = registry.policies, [i for found in registry.errors.values() for i in found]
    else:
        good, issues = loader.check_dir(directory)
    assert [p.policy.owner for p in good.values()] == (["alice"] if swapped == "the file" else [])
    assert [str(i) for i in issues] == ([] if swapped == "the file" else
                                        ["direct.yaml: cannot read: its path became a link after it was checked"])


def test_a_link_to_nothing_or_to_itself_is_refused_as_unreadable_and_the_rest_load(tmp_path: Path) -> None:
    """A policy file that is a link to nothing (its target deleted) or a loop of links cannot be
    read: the registry and `byline policy check` say so of it, with no line nor key to point at
    and no path of the server's, where they passed it over without a word; every other file
    loads. An account whose file turns into a link to nothing keeps its version in force, as for
    any file that cannot be read, and the error says why."""
    from gateway.policy.loader import PolicyRegistry, check_dir

    directory = tmp_path / "policies"
    directory.mkdir()
    write_policy(directory, "delayed", POLICIES["delayed"])
    (directory / "direct.yaml").symlink_to("gone.yaml")  # inside, but nothing there
    (directory / "looped.yaml").symlink_to("looped.yaml")
    registry = PolicyRegistry(directory=directory)
    registry.reload()
    assert sorted(registry.policies) == ["delayed"]
    assert sorted(registry.errors) == ["direct.yaml", "looped.yaml"]
    said = {"direct.yaml": "cannot read: a link to nothing (No such file or directory)",
            "looped.yaml": "cannot read: a loop of links"}
    assert {name: [(i.line, i.key, i.message) for i in issues] for name, issues in registry.errors.items()} == {
        name: [(None, "", message)] for name, message in said.items()
    }
    assert str(tmp_path) not in str(registry.errors)  # where a link leads is the server's, not the pages'
    good, issues = check_dir(directory)
    assert sorted(good) == ["delayed"]
    assert sorted(str(i) for i in issues) == [f"{name}: {message}" for name, message in said.items()]

    (directory / "delayed.yaml").rename(directory / "kept.yaml")
    (directory / "delayed.yaml").symlink_to("kept-then-deleted.yaml")
    registry.reload()
    assert registry.get("delayed") is not None and "delayed.yaml" in registry.errors


def test_a_policy_file_gone_before_its_place_is_checked_says_so_plainly(tmp_path: Path) -> None:
    """A file listed, then deleted before its place is checked (an editor's swap, a ``git``
    checkout): it cannot be read, and the words say why without calling it a link."""
    from gateway.policy.loader import check_inside

    with pytest.raises(PolicyFileError) as info:
        check_inside(tmp_path / "gone.yaml", tmp_path)
    assert [str(i) for i in info.value.issues] == ["gone.yaml: cannot read: No such file or directory"]


def test_a_configmap_s_links_stay_inside_and_load(tmp_path: Path) -> None:
    """A Kubernetes ConfigMap volume: each file links to ``..data/``, itself a link to a
    timestamped directory inside the mount; every policy loads."""
    from gateway.policy.loader import PolicyRegistry, check_dir

    directory = tmp_path / "policies"
    stamped = directory / "..2026_01_01_00_00_00.000000001"
    stamped.mkdir(parents=True)
    (directory / "..data").symlink_to(stamped.name)
    for name in ("direct", "delayed"):
        write_policy(stamped, name, POLICIES[name])
        (directory / f"{name}.yaml").symlink_to(f"..data/{name}.yaml")
    registry = PolicyRegistry(directory=directory)
    registry.reload()
    assert sorted(registry.policies) == ["delayed", "direct"] and registry.errors == {}
    good, issues = check_dir(directory)
    assert sorted(good) == ["delayed", "direct"] and issues == []


def test_a_policy_file_being_written_is_read_once_it_is_left_alone(tmp_path: Path) -> None:
    """An editor (or `git`) writes a policy in two steps: a valid first half without its rules,
    then the rest; or it removes the file and writes it anew. Until the file has been left alone
    for the settling time, the content read before stays in force: the half without the rules,
    or the moment without the file, is never taken."""
    from gateway.policy.loader import PolicyRegistry

    now = [1_000_000.0]
    full = textwrap.dedent(POLICIES["direct"]).split("rules:")[0] + textwrap.dedent("""\
        rules:
          - {name: news, action: hold, any_words: [fired], reason: Check it}
    """)
    path = tmp_path / "direct.yaml"
    path.write_text(full)
    os.utime(path, (now[0] - 60, now[0] - 60))
    registry = PolicyRegistry(directory=tmp_path, settle=1.0, now=lambda: now[0])
    registry.reload()
    first = registry.get("direct")
    assert first is not None and [r.name for r in first.policy.rules] == ["news"]  # read at once the first time

    path.write_text(full.split("rules:")[0])  # the first half: valid, and without the rule
    os.utime(path, (now[0] - 0.2, now[0] - 0.2))
    assert registry.reload() == [] and registry.get("direct") is first
    path.write_text(full + "# edited\n")
    os.utime(path, (now[0], now[0]))
    now[0] += 0.5
    assert registry.reload() == [] and registry.get("direct") is first
    now[0] += 1.0
    changed = registry.reload()
    assert [c.kind for c in changed] == ["changed"]
    got = registry.get("direct")
    assert got is not None and [r.name for r in got.policy.rules] == ["news"] and got.text.endswith("# edited\n")

    path.unlink()  # replaced by removing it first
    assert registry.reload() == [] and registry.get("direct") is got
    path.write_text(full)
    os.utime(path, (now[0] - 60, now[0] - 60))
    now[0] += 5
    assert [c.kind for c in registry.reload()] == ["changed"]  # back as it was first, never gone
    path.unlink()
    assert registry.reload() == []
    now[0] += 1.5
    assert [c.kind for c in registry.reload()] == ["removed"]  # gone a while: gone


# ---- a refused file leaves the files after it read (the mutation run of the rule side) ---------


def _valid(account: str) -> str:
    return POLICIES["direct"].replace("account: direct", f"account: {account}")


def test_the_files_after_a_refused_one_are_read_still(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link out of the directory, a file that cannot be read and a file being written each
    stand alone: the files sorted after them are read and put in force all the same."""
    from gateway.policy.loader import PolicyRegistry

    outside = write_policy(tmp_path, "a0", _valid("a0"))
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "a0.yaml").symlink_to(outside)
    write_policy(directory, "a1", _valid("a1"))
    write_policy(directory, "a2", _valid("a2"))
    now = [time.time()]
    registry = PolicyRegistry(directory=directory, settle=60.0, now=lambda: now[0])
    now[0] += 120
    registry.reload()
    assert sorted(registry.policies) == ["a1", "a2"]
    unreadable = directory / "a1.yaml"
    opening = os.open

    def refuse(path: Path, flags: int, *args: int, **kwargs: int) -> int:
        if Path(path).name == unreadable.name:
            raise PermissionError(13, "Permission denied", str(path))
        return opening(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)  # the tests run as root, whom file modes do not stop
    write_policy(directory, "a3", _valid("a3"))
    registry.reload()
    assert sorted(registry.policies) == ["a1", "a2", "a3"]
    assert registry.errors["a1.yaml"][0].message == "cannot read: Permission denied"
    monkeypatch.undo()
    write_policy(directory, "a1", _valid("a1") + "# being written\n")  # in force, changed a moment ago
    write_policy(directory, "a4", _valid("a4"))
    now[0] = time.time()
    registry.reload()
    assert sorted(registry.policies) == ["a1", "a2", "a3", "a4"]


def test_a_policy_file_of_the_size_limit_is_read_and_one_byte_more_is_not(tmp_path: Path) -> None:
    from gateway.policy.loader import MAX_POLICY_BYTES, PolicyRegistry

    text = _valid("full")
    padded = text + "#" * (MAX_POLICY_BYTES - len(text.encode()) - 1) + "\n"
    (tmp_path / "full.yaml").write_text(padded, encoding="utf-8")
    (tmp_path / "over.yaml").write_text(_valid("over") + "#" * MAX_POLICY_BYTES + "\n", encoding="utf-8")
    registry = PolicyRegistry(directory=tmp_path)
    registry.reload()
    assert len(padded.encode()) == MAX_POLICY_BYTES
    assert sorted(registry.policies) == ["full"]
    size = (tmp_path / "over.yaml").stat().st_size
    assert [str(i) for i in registry.errors["over.yaml"]] == [
        f"over.yaml: is {size} bytes, over the limit of {MAX_POLICY_BYTES} for a policy file"]


def test_a_policy_file_that_grew_after_its_size_was_read_is_refused_by_what_was_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its size said it was small; what was read is over the limit: refused, saying the bytes read."""
    from gateway.policy.loader import MAX_POLICY_BYTES, PolicyRegistry

    path = tmp_path / "grew.yaml"
    path.write_text(_valid("grew") + "#" * MAX_POLICY_BYTES + "\n", encoding="utf-8")
    read = len(path.read_bytes())
    stat = Path.stat

    def small(self: Path, **kwargs: object) -> os.stat_result:
        found = stat(self, **kwargs)  # type: ignore[arg-type]
        if self != path:
            return found
        fields = list(found)
        fields[6] = 100  # st_size, as it was a moment before it grew
        return os.stat_result(fields)

    monkeypatch.setattr(Path, "stat", small)
    registry = PolicyRegistry(directory=tmp_path)
    registry.reload()
    assert registry.policies == {}
    assert [str(i) for i in registry.errors["grew.yaml"]] == [
        f"grew.yaml: is {read} bytes, over the limit of {MAX_POLICY_BYTES} for a policy file"]


def test_a_duration_of_the_limit_is_taken() -> None:
    from gateway.policy.models import MAX_DURATION, parse_duration

    assert parse_duration(f"{MAX_DURATION.days}d") == MAX_DURATION


def test_an_oversized_file_leaves_the_files_after_it_read(tmp_path: Path) -> None:
    from gateway.policy.loader import MAX_POLICY_BYTES, PolicyRegistry

    (tmp_path / "a-over.yaml").write_text(_valid("a-over") + "#" * MAX_POLICY_BYTES + "\n", encoding="utf-8")
    write_policy(tmp_path, "b", _valid("b"))
    registry = PolicyRegistry(directory=tmp_path)
    registry.reload()
    assert sorted(registry.policies) == ["b"] and sorted(registry.errors) == ["a-over.yaml"]


def test_a_file_gone_a_moment_leaves_one_gone_a_while_removed(tmp_path: Path) -> None:
    """Two files removed, one long enough ago to count as gone, one a moment ago (replaced by
    removing it first): the first account goes, the second stays in force."""
    from gateway.policy.loader import PolicyRegistry

    for name in ("a", "b"):
        write_policy(tmp_path, name, _valid(name))
    now = [1_000_000.0]
    registry = PolicyRegistry(directory=tmp_path, settle=60.0, now=lambda: now[0])
    registry.reload()
    (tmp_path / "b.yaml").unlink()
    registry.reload()
    now[0] += 120
    (tmp_path / "a.yaml").unlink()
    assert [(c.account, c.kind) for c in registry.reload()] == [("b", "removed")]
    assert sorted(registry.policies) == ["a"]


@pytest.mark.parametrize(("name", "flagged"), [("brand.yml", True), ("brand.YAML", True), ("brand.Yaml", True),
                                               (".brand.yml", False), ("brand.yaml", False)])
def test_a_file_named_almost_as_a_policy_is_said_to_be_misnamed(tmp_path: Path, name: str, flagged: bool) -> None:
    from gateway.policy.loader import misnamed_files

    (tmp_path / name).write_text(_valid("brand"), encoding="utf-8")
    assert [i.file for i in misnamed_files(tmp_path)] == ([name] if flagged else [])


_BAD_NAME = "is not a user name (letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64)"


@pytest.mark.parametrize(("owners", "message"), [
    ("[alice, bob carol]", f"entry 2, 'bob carol', {_BAD_NAME}: list each person apart, as in [bob, carol]"),
    ("[alice, Bob!]", f"entry 2, 'Bob!', {_BAD_NAME}"),
])
def test_a_list_of_people_says_which_entry_and_how_to_list_them(owners: str, message: str) -> None:
    """A name with a space or a comma in it is two people written as one: the refusal says to
    list each apart; any other bad name is refused without that hint."""
    text = POLICIES["cosigned"].replace("writers: [alice, carol]", f"writers: {owners}")
    with pytest.raises(PolicyFileError) as info:
        parse_policy(textwrap.dedent(text), name="cosigned.yaml", expected_account="cosigned")
    (issue,) = [i for i in info.value.issues if i.key == "writers"]
    assert issue.message == message


def test_a_duration_a_day_past_the_limit_is_refused_saying_the_limit() -> None:
    from gateway.policy.models import MAX_DURATION, parse_duration

    with pytest.raises(ValueError, match=rf"^a duration of at most {MAX_DURATION.days}d$"):
        parse_duration(f"{MAX_DURATION.days + 1}d")

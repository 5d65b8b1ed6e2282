"""Policy files are parsed with bounds first: size, then what aliases expand to, each refused
quickly with a clear error; a refused file is not parsed again until it changes. Gateway tests
run on both databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import pytest

import gateway.policy.loader as loader
from gateway.clock import ManualClock
from gateway.policy.loader import PolicyFileError, PolicyRegistry, load_file
from tests.conftest import TEST_POLICIES, make_policy_dir, started_gateway, write_policy


def _bomb(account: str, levels: int = 7) -> str:
    """A "billion laughs" file: 600 bytes, 10^levels values once its aliases are expanded."""
    lines = [f"account: {account}", "platform: sandbox", "tier: direct", "owner: alice",
             "x0: &a0 [q,q,q,q,q,q,q,q,q,q]"]
    lines += [f"x{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _refused(path: Path) -> list[str]:
    with pytest.raises(PolicyFileError) as info:
        load_file(path)
    return [str(i) for i in info.value.issues]


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    """The bomb is refused in well under a second, without its values being walked or built."""
    path = tmp_path / "bomb7.yaml"
    path.write_text(_bomb("bomb7"), encoding="utf-8")
    started = time.monotonic()
    issues = _refused(path)
    assert time.monotonic() - started < 1.0
    assert issues == ["bomb7.yaml: holds more than 100000 values with its aliases (*name) expanded, or an alias "
                      "inside itself: no policy needs that many"]


def test_merge_bombs_and_aliases_inside_themselves_are_refused(tmp_path: Path) -> None:
    """Merge keys (``<<``) that multiply, and a list that holds itself, are refused the same way."""
    head = "account: m\nplatform: sandbox\ntier: direct\nowner: alice\n"
    merges = head + "a0: &a0 {k0: 1, k1: 2, k2: 3, k3: 4, k4: 5, k5: 6, k6: 7, k7: 8, k8: 9, k9: 10}\n" + "".join(
        f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 10)}]}}\n" for i in range(1, 8))
    (tmp_path / "m.yaml").write_text(merges, encoding="utf-8")
    assert "holds more than 100000 values" in _refused(tmp_path / "m.yaml")[0]
    (tmp_path / "m.yaml").write_text(head + "writers: &w [alice, *w]\n", encoding="utf-8")
    assert "an alias inside itself" in _refused(tmp_path / "m.yaml")[0]
    for whole in ("&r [*r]\n", "&r {a: *r}\n"):  # the whole file inside itself, nothing around it
        (tmp_path / "m.yaml").write_text(whole, encoding="utf-8")
        assert [i for i in _refused(tmp_path / "m.yaml") if "an alias inside itself" in i], whole


def _values(padding: int) -> str:
    """A policy whose aliases expand to ``67_914 + padding + 2`` values (with padding), counted as
    the limit counts them: one for each mapping, list and scalar, a mapping's keys included. The
    last pair comes after the padding, so the count passes the limit on the file's last value."""
    head = "account: n\nplatform: sandbox\ntier: direct\nowner: alice\n"  # 1 mapping + 8 scalars: 9
    lists = "x0: &a0 [q,q,q,q,q,q,q,q,q,q]\n"  # key 1 + list 11: 12
    lists += "".join(f"x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 4))  # 112, 1,112, 11,112
    lists += "x4: [*a3, *a3, *a3, *a3, *a3]\n"  # key 1 + list 1 + 5 x 11,111: 55,557; 67,914 in all
    return head + lists + ("" if not padding else f"pad: [{','.join(['q'] * (padding - 2))}]\nz: q\n")


@pytest.mark.parametrize(("padding", "refused"), [(0, False), (32_084, False), (32_085, True)])
def test_aliases_used_again_are_counted_once_each_up_to_the_limit(tmp_path: Path, padding: int, refused: bool) -> None:
    """A file that reuses its parts by alias loads while what they stand for, expanded, is at
    most 100,000 values (each mapping, list and scalar one), and is refused from one more."""
    path = tmp_path / "n.yaml"
    path.write_text(_values(padding), encoding="utf-8")
    size = [i for i in _refused(path) if "values with its aliases" in i]  # x0...: unknown keys all the same
    assert size == (["n.yaml: holds more than 100000 values with its aliases (*name) expanded, or an alias "
                     "inside itself: no policy needs that many"] if refused else [])


@pytest.mark.parametrize(("text", "size"), [
    ("q" * (loader.MAX_POLICY_BYTES + 1), loader.MAX_POLICY_BYTES + 1),
    ("é" * (loader.MAX_POLICY_BYTES // 2 + 1), loader.MAX_POLICY_BYTES + 2),  # fewer characters than bytes
])
def test_a_policy_text_past_the_size_limit_is_refused_by_its_bytes(text: str, size: int) -> None:
    """Text handed to the parser itself (not read from a file) is measured in UTF-8 bytes, as a
    file is: one of fewer characters than the limit but more bytes is refused all the same."""
    with pytest.raises(PolicyFileError) as info:
        loader.parse_policy(text, name="big.yaml", expected_account="big")
    assert [str(i) for i in info.value.issues] == [
        f"big.yaml: is {size} bytes, over the limit of {loader.MAX_POLICY_BYTES} for a policy file"]


def test_a_file_past_the_size_limit_is_refused_unparsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file over 256 KiB is refused with its size, and never handed to the YAML parser."""
    path = write_policy(tmp_path, "big", "account: big\nplatform: sandbox\ntier: direct\nowner: alice\n"
                        + "# padding\n" * 30_000)
    monkeypatch.setattr(loader.yaml, "SafeLoader", None)  # any parse would fail loudly
    size = path.stat().st_size
    assert _refused(path) == [f"big.yaml: is {size} bytes, over the limit of 262144 for a policy file"]
    registry = PolicyRegistry(directory=tmp_path)
    registry.reload()
    assert [str(i) for i in registry.errors["big.yaml"]] == [
        f"big.yaml: is {size} bytes, over the limit of 262144 for a policy file"]


def test_a_refused_file_is_parsed_again_only_once_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rereading the directory every second does not parse an unchanged refused file again."""
    write_policy(tmp_path, "broken", "account: broken\nplatform: sandbox\ntier: direct\nowner: x\ncolour: red\n")
    parsed: list[str] = []
    parse = loader.parse_policy

    def counting(text: str, **kwargs: object) -> object:
        parsed.append(str(kwargs["name"]))
        return parse(text, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "parse_policy", counting)
    registry = PolicyRegistry(directory=tmp_path)
    for _ in range(3):
        registry.reload()
        assert [str(i) for i in registry.errors["broken.yaml"]] == ["broken.yaml:5: colour: unknown key"]
    assert parsed == ["broken.yaml"]
    write_policy(tmp_path, "broken", "account: broken\nplatform: sandbox\ntier: direct\nowner: x\n")
    registry.reload()
    assert parsed == ["broken.yaml", "broken.yaml"] and registry.errors == {}


async def test_a_bomb_leaves_the_last_good_policy_in_force(db_url: str, tmp_path: Path, clock: ManualClock) -> None:
    """The bomb written over direct.yaml is refused within a second; the last good policy stays
    in force and the error, naming no line or key, is shown to the account's people."""
    policy_dir = make_policy_dir(tmp_path, TEST_POLICIES)
    async with started_gateway(db_url, policy_dir, clock) as gw:
        write_policy(policy_dir, "direct", _bomb("direct"))
        started = time.monotonic()
        assert await gw.sync_policies() == []
        assert time.monotonic() - started < 1.0
        status, body = await gw.call("alice", "GET", "/v1/accounts/direct/policy")
        assert status == 200 and body["policy"]["tier"] == "direct"
        assert [r["name"] for r in body["policy"]["rules"]] == ["breaking-news", "no-slurs"]
        assert body["refused"] == [{
            "file": "direct.yaml", "line": None, "key": "",
            "message": "holds more than 100000 values with its aliases (*name) expanded, or an alias inside "
                       "itself: no policy needs that many",
        }]
        resp = await gw.client.get("/healthz")
        assert resp.status == 200


def test_a_file_of_exactly_the_limit_loads_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    """The size limit is inclusive: a policy file of 256 KiB loads, and at 256 KiB and one byte
    ``byline policy check`` refuses it with its size (an issue of the whole file, under no key)."""
    text = "account: a\nplatform: sandbox\ntier: direct\nowner: alice\n# "
    path = tmp_path / "a.yaml"
    path.write_text(text + "x" * (loader.MAX_POLICY_BYTES - len(text) - 1) + "\n")
    assert load_file(path).policy.account == "a"
    path.write_text(text + "x" * (loader.MAX_POLICY_BYTES - len(text)) + "\n")
    with pytest.raises(PolicyFileError) as refused:
        load_file(path)
    assert refused.value.issues == [loader.PolicyIssue(
        file="a.yaml", line=None, key="",
        message=f"is {loader.MAX_POLICY_BYTES + 1} bytes, over the limit of {loader.MAX_POLICY_BYTES} "
                "for a policy file",
    )]


def test_a_policy_path_that_cannot_be_read_says_why(tmp_path: Path) -> None:
    """A path that is no file (here a directory named like a policy) is refused as unreadable,
    with the reason and without the server's path, as an issue of the whole file."""
    path = tmp_path / "a.yaml"
    path.mkdir()
    with pytest.raises(PolicyFileError) as refused:
        load_file(path)
    assert refused.value.issues == [loader.PolicyIssue(
        file="a.yaml", line=None, key="", message="cannot read: not a regular file (a directory)",
    )]


def test_a_pipe_named_like_a_policy_is_refused_unread(tmp_path: Path) -> None:
    """A named pipe is no policy file: refused as one that cannot be read, at once, whether or
    not anything writes into it (reading it would wait for a writer that may never come)."""
    path = tmp_path / "a.yaml"
    os.mkfifo(path)
    started = time.monotonic()
    with pytest.raises(PolicyFileError) as refused:
        load_file(path)
    assert time.monotonic() - started < 1.0
    assert [i.message for i in refused.value.issues] == ["cannot read: not a regular file (a pipe, socket or device)"]


def _release(fifo: Path) -> None:
    """Let a reader blocked on ``fifo`` go (a writer opens it and closes it at once)."""
    with contextlib.suppress(OSError):  # nobody is reading it: nothing to release
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


async def test_a_link_to_a_pipe_stops_no_change_of_another_account(
    db_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """Someone who may write one file in the policy directory links it to a named pipe inside
    it. The reread names that file as unreadable, and goes on: the admin's change of another
    account's tier in the same reread takes effect and is recorded, as every later one does."""
    policy_dir = make_policy_dir(tmp_path, TEST_POLICIES)
    (policy_dir / "spool").mkdir()
    fifo = policy_dir / "spool" / "pipe"
    os.mkfifo(fifo)
    async with started_gateway(db_url, policy_dir, clock, admins="alice") as gw:
        (policy_dir / "quick.yaml").symlink_to("spool/pipe")
        delayed = TEST_POLICIES["direct"].replace("tier: direct", "tier: delayed\n        delay: 1h")
        write_policy(policy_dir, "direct", delayed)
        try:
            recorded = await asyncio.wait_for(gw.sync_policies(), timeout=10)
        finally:
            _release(fifo)
        assert recorded == ["direct"]
        status, body = await gw.call("alice", "GET", "/v1/accounts/direct/policy")
        assert (status, body["policy"]["tier"]) == (200, "delayed")
        status, body = await gw.call("alice", "GET", "/v1/policies/errors")
        assert (status, body["errors"]) == (200, [{
            "file": "quick.yaml", "line": None, "key": "",
            "message": "cannot read: not a regular file (a pipe, socket or device)",
        }])


def _solo(account: str, owner: str = "alice") -> str:
    return f"account: {account}\nplatform: sandbox\ntier: direct\nowner: {owner}\n"


def test_reading_the_directory_names_each_files_change_once_left_alone(tmp_path: Path) -> None:
    """``read`` names what changed in the files (loaded, changed with what was read before,
    removed) and takes an edit once the file has been left alone for the settle time, to the
    second, and a removal once the file has been gone that long."""
    clock = [1000.0]
    directory = make_policy_dir(tmp_path, {"a": _solo("a"), "b": _solo("b")})
    registry = PolicyRegistry(directory=directory, settle=5.0, now=lambda: clock[0])
    assert [(c.account, c.kind, c.old) for c in registry.read()] == [("a", "loaded", None), ("b", "loaded", None)]
    a, b = registry.files["a"], registry.files["b"]
    (directory / "a.yaml").write_text(_solo("a", owner="carol"))
    os.utime(directory / "a.yaml", (1000.0, 1000.0))
    assert registry.read() == []  # written this very second: perhaps half-way
    clock[0] = 1005.0
    changed = registry.read()
    assert changed == [loader.PolicyChange(account="a", kind="changed", old=a, new=registry.files["a"])]
    assert registry.files["a"].policy.owner == "carol"
    (directory / "b.yaml").unlink()
    assert registry.read() == []  # gone a moment: perhaps being replaced
    clock[0] = 1010.0
    assert registry.read() == [loader.PolicyChange(account="b", kind="removed", old=b, new=None)]

"""The verifier's checks one by one, on hand-made logs written as export files."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.audit.entry import MAX_ENTRY_BYTES
from gateway.audit.note import Signer
from gateway.audit.verify import ExportSource, UrlSource, verify
from gateway.audit.verify.sources import SourceError
from gateway.audit.verify.state import read_state
from tests.audit.synthetic import SyntheticLog, messages, summary


def _log() -> SyntheticLog:
    log = SyntheticLog()
    log.policy("solo", summary(owner="alice", writers=["alice"]), "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    log.submit("2", author="alice", account="solo", sha="s1")
    log.add("post.cancelled", actor="alice", account="solo", post="2", data={"state": "cancelled"})
    return log


def test_non_canonical_entry_is_named(tmp_path: Path) -> None:
    """An entry re-encoded with whitespace is not its canonical form, even though it parses."""
    log = _log()
    entries = list(log.entries)
    entries[2] = json.dumps(json.loads(entries[2])).encode()
    report = log.verify(tmp_path / "x.export", entries=entries)
    assert messages(report)[0] == "entry 2: leaf hash does not match entry bytes"
    assert "entry 2: not in RFC 8785 canonical form (re-encoding gives different bytes)" in messages(report)


def test_text_checks(tmp_path: Path) -> None:
    """A text that does not hash to its commitment is named; an erased one is counted, not failed."""
    log = _log()
    digests = list(log.texts)
    salt, _ = log.texts[digests[0]]
    log.texts[digests[0]] = (salt, "words that were never posted")
    log.texts[digests[1]] = (salt, None)
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == ["entry 1: text does not match its hash"]
    assert (report.texts_checked, report.texts_erased) == (1, 1)
    del log.texts[digests[0]]
    report = log.verify(tmp_path / "y.export")
    assert messages(report)[0].startswith("entry 1: the text it commits to (")


def test_malformed_entry_is_named(tmp_path: Path) -> None:
    """Canonical JSON that is not an entry (a field missing) is named."""
    log = _log()
    log.add("post.cancelled", actor="alice", account="solo", post="1", data={"state": "cancelled"})
    body = json.loads(log.entries[-1])
    del body["ts"]
    log.entries[-1] = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == ["entry 4: has the wrong fields (missing ['ts'], unexpected [])"]


def test_broken_chain_link_is_named(tmp_path: Path) -> None:
    """A prev link that skips the previous event of its post is named."""
    log = _log()
    log.add("post.cancelled", actor="alice", account="solo", post="1", data={"state": "cancelled"})
    body = json.loads(log.entries[-1])
    body["prev"]["index"] = 0
    log.entries[-1] = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == ["entry 4: links to entry 0 but the previous entry of post 1 is 1"]


def test_link_from_the_first_entry_of_a_chain_is_named(tmp_path: Path) -> None:
    """A post's first entry that claims a previous one, even one that cannot exist, is named."""
    log = _log()
    log.add("post.cancelled", actor="alice", account="solo", post="3", data={"state": "cancelled"})
    body = json.loads(log.entries[-1])
    body["prev"] = {"index": -1, "leaf": base64.b64encode(bytes(32)).decode()}
    log.entries[-1] = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    report = log.verify(tmp_path / "x.export")
    assert "entry 4: links to entry -1 but is the first entry of post 3" in messages(report)


def test_odd_values_where_the_replay_looks_do_not_stop_it(tmp_path: Path) -> None:
    """Canonical entries carrying objects where the replay expects words are read, not fatal."""
    log = _log()
    log.add("post.approved", actor="alice", account="solo", post="1", data={"version": 1, "state": {"x": [1]}})
    log.add("post.approved", actor="alice", account="solo", post="2", data={"version": 1, "state": ["held"]})
    report = log.verify(tmp_path / "x.export")
    assert report.size == 6
    # Read through to the end: each odd entry still gets the checks that apply to it.
    assert messages(report) == [
        "entry 4: post.approved of post 1, which was scheduled: its life does not go that way",
        "entry 4: alice approved post 1 but is not one of its approvers",
        "entry 5: post.approved of post 2, which was cancelled: its life does not go that way",
        "entry 5: alice approved post 2 but is not one of its approvers",
    ]


def test_checkpoint_by_another_key_is_refused(tmp_path: Path) -> None:
    """A log signed by a key other than the one the auditor trusts fails before anything else."""
    log = _log()
    path = log.write(tmp_path / "x.export")
    stranger = Signer.generate(log.signer.name).verifier()
    report = verify(ExportSource(path), stranger)
    assert not report.ok
    assert messages(report)[0].startswith("checkpoint offered by the log: note has no signature from a known key")


def test_state_file_catches_a_forked_history(tmp_path: Path) -> None:
    """A checkpoint remembered from an earlier run must still hold; a rewritten past fails."""
    state = tmp_path / "state.json"
    log = _log()
    key = log.signer.verifier()
    assert verify(ExportSource(log.write(tmp_path / "a.export")), key, state_path=state).ok
    log.submit("3", author="alice", account="solo", sha="s1")
    assert verify(ExportSource(log.write(tmp_path / "b.export")), key, state_path=state).ok
    remembered = json.loads(state.read_text())["logs"][key.to_text()]
    assert [int(n.split("\n")[1]) for n in remembered] == [4, 5]
    fork = SyntheticLog()
    fork.signer = log.signer
    fork.policy("solo", summary(owner="alice", writers=["alice"]), "s1")
    for n in range(6):
        fork.submit(f"9{n}", author="alice", account="solo", sha="s1")
    report = verify(ExportSource(fork.write(tmp_path / "c.export")), key, state_path=state)
    assert [str(f) for f in report.findings if f.index is None] == [
        "the first 4 entries do not give the root of the checkpoint seen before (state file) "
        "(size 4): the log is not consistent with it",
        "the first 5 entries do not give the root of the checkpoint seen before (state file) "
        "(size 5): the log is not consistent with it",
    ]
    assert len(json.loads(state.read_text())["logs"][key.to_text()]) == 2


def test_entries_after_the_checkpoint_are_said_to_be_unsigned(tmp_path: Path) -> None:
    """Entries past the latest checkpoint are checked but covered by no signature: the verdict
    says how many in its first line instead of a bare "ok", and ``require_signed`` fails them."""
    log = _log()
    path = log.write(tmp_path / "tail.export", signed=2)
    key = log.signer.verifier()

    report = verify(ExportSource(path), key, workers=1)

    assert (report.ok, report.size, report.unsigned) == (True, 4, 2)
    assert report.summary().splitlines()[:2] == [
        f"ok, but 2 entries are NOT yet signed: the first 2 verified against {path} are under its signed "
        "checkpoint; entries 2–3 come after it: checked, but no signature covers them yet",
        "  (normal between checkpoints: verify again after the next one, or pass --require-signed to fail them)",
    ]
    strict = verify(ExportSource(path), key, workers=1, require_signed=True)
    assert messages(strict) == [
        "entry 2: not signed: the latest checkpoint covers 2 entries, and the 2 after it no signature covers yet"
    ]
    assert strict.summary().startswith("FAILED: first bad entry: entry 2: not signed")
    whole = verify(ExportSource(log.write(tmp_path / "whole.export")), key, workers=1, require_signed=True)
    assert (whole.ok, whole.unsigned) == (True, 0)
    assert whole.summary().startswith(f"ok: 4 entries verified against {tmp_path / 'whole.export'}, all under "
                                      "its signed checkpoint\n")


def test_two_workers_find_the_same_as_one(tmp_path: Path) -> None:
    """The per-entry checks give the same report in worker processes as in-process."""
    log = _log()
    for n in range(3000):
        log.submit(f"1{n}", author="alice" if n != 1234 else "mallory", account="solo", sha="s1")
    path = log.write(tmp_path / "x.export")
    one = verify(ExportSource(path), log.signer.verifier(), workers=1)
    two = verify(ExportSource(path), log.signer.verifier(), workers=2)
    assert messages(one) == messages(two) == [
        "entry 1238: mallory submitted a post to solo but was not a writer under its policy (policy s1)"
    ]
    assert one.size == two.size == 3004


def test_an_entry_nested_too_deep_is_named_with_workers(tmp_path: Path) -> None:
    """An entry whose data nests 600 levels deep is named as no entry, with the verifier's two
    worker processes as with none (before, a worker crashed sending its facts back, and verify
    ended in a traceback)."""
    log = _log()
    deep: object = "x"
    for _ in range(600):
        deep = [deep]
    bad = log.add("post.approved", actor="alice", account="solo", post="1", data={"version": 1, "state": deep})
    for workers in (1, 2):
        report = verify(ExportSource(log.write(tmp_path / f"deep{workers}.export")), log.signer.verifier(),
                        workers=workers)
        assert messages(report) == [f"entry {bad}: nests arrays and objects deeper than 64 levels: not an entry"]


def test_an_export_or_state_file_that_is_not_text_is_said_so(tmp_path: Path) -> None:
    """A checkpoint in an export, or a state file, holding a lone surrogate, or an export line
    nested past Python's parser, is a clear refusal, not a traceback."""
    log = _log()
    path = log.write(tmp_path / "x.export")
    head, rest = path.read_bytes().split(b"\n", 1)
    for name, record in (("surrogate", b'{"checkpoint": "\\ud800"}'), ("deep", b"[" * 100_000)):
        odd = tmp_path / f"{name}.export"
        odd.write_bytes(head + b"\n" + record + b"\n" + rest)
        with pytest.raises(SourceError, match="export: "):
            ExportSource(odd)
    state = tmp_path / "state.json"
    key = log.signer.verifier()
    state.write_text(json.dumps({"logs": {key.to_text(): ["\ud800"]}}), encoding="utf-8")
    with pytest.raises(SourceError, match="state file"):
        read_state(state, key)


async def test_a_server_answering_nonsense_for_entries_is_said_so(tmp_path: Path) -> None:
    """``--url`` against a server whose /log/entries holds no list of entries: a clear refusal
    (before, a TypeError's traceback)."""
    async def nonsense(request: web.Request) -> web.Response:
        return web.json_response({"entries": 5, "texts": 7})

    app = web.Application()
    app.router.add_get("/log/{tail:.*}", nonsense)
    server = TestServer(app)
    await server.start_server()
    try:
        source = UrlSource(str(server.make_url("")).rstrip("/"))
        with pytest.raises(SourceError, match="holds no list of entries"):
            await asyncio.to_thread(source._page, 0, 1)
    finally:
        await server.close()



def test_a_salt_that_is_not_sixteen_bytes_of_hex_is_named(tmp_path: Path) -> None:
    """A text kept with no salt, or with one that is no hex, is named even where its hash would
    match without one (before, a salt that was no hex was read as none, and none was taken)."""
    log = _log()
    edited = log.add("post.edited", actor="alice", account="solo", post="1",
                     data={"version": 2, "text_hash": log.commit("kept with no salt", salt=b""), "state": "scheduled"})
    report = log.verify(tmp_path / "none.export")
    assert messages(report) == [f"entry {edited}: the salt of the text it commits to is not 16 bytes in hex"]

    log = _log()
    first_salt = next(iter(log.texts.values()))[0].hex()  # the text entry 1 commits to
    path = log.write(tmp_path / "letters.export")
    path.write_text(path.read_text(encoding="utf-8").replace(first_salt, "zz" * 16, 1), encoding="utf-8")
    assert messages(verify(ExportSource(path), log.signer.verifier())) == [
        "entry 1: the salt of the text it commits to is not 16 bytes in hex"]


def _reencoded(raw: bytes, **changes: object) -> bytes:
    """An entry with ``changes`` to its top-level fields, canonical again (ASCII text and integers)."""
    return json.dumps(json.loads(raw) | changes, sort_keys=True, separators=(",", ":")).encode()


def test_a_first_entry_with_an_empty_ts_is_named(tmp_path: Path) -> None:
    """The first entry of a run has no earlier ts to be equal to: an empty one is malformed, not
    taken for the previous entry's."""
    log = _log()
    log.entries[0] = _reencoded(log.entries[0], ts="")
    assert "entry 0: has a malformed ts" in messages(log.verify(tmp_path / "x.export"))


@pytest.mark.parametrize("over", [0, 1])
def test_an_entry_is_named_only_past_the_size_limit(tmp_path: Path, over: int) -> None:
    """An entry of exactly the limit's bytes passes; one byte more is named with its size."""
    log = _log()
    body = json.loads(log.entries[-1])
    short = MAX_ENTRY_BYTES - len(_reencoded(log.entries[-1], data=body["data"] | {"pad": ""}))
    log.entries[-1] = _reencoded(log.entries[-1], data=body["data"] | {"pad": "x" * (short + over)})
    assert len(log.entries[-1]) == MAX_ENTRY_BYTES + over
    found = [m for m in messages(log.verify(tmp_path / "x.export")) if "limit" in m]
    expected = [f"entry 3: is {MAX_ENTRY_BYTES + 1} bytes, over the {MAX_ENTRY_BYTES}-byte limit"] if over else []
    assert found == expected


def test_entries_after_a_malformed_one_are_still_checked(tmp_path: Path) -> None:
    """An entry that gives no fields does not end the checks of the entries after it."""
    log = _log()
    log.entries[1] = _reencoded(log.entries[1], ts="yesterday")
    log.entries[3] = _reencoded(log.entries[3], actor=7)
    found = messages(log.verify(tmp_path / "x.export"))
    assert [m for m in found if "has " in m] == ["entry 1: has a malformed ts", "entry 3: has no actor"]


def test_entries_after_an_unreadable_line_are_still_checked(tmp_path: Path) -> None:
    """An export line that is no entry record is named, and the entries after it are checked."""
    log = _log()
    log.entries[3] = _reencoded(log.entries[3], actor=7)
    path = log.write(tmp_path / "x.export")
    lines = path.read_bytes().split(b"\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(b"1\t"))
    lines[at] = b"1\tnot a record"
    path.write_bytes(b"\n".join(lines))
    found = messages(verify(ExportSource(path), log.signer.verifier(), workers=1))
    assert "entry 3: has no actor" in found
    assert any(m.endswith("export line is not an entry record") for m in found)


def test_a_text_hash_that_is_no_text_is_named_not_looked_up(tmp_path: Path) -> None:
    """A forged text_hash that is a list names its text as missing; looked up as a key, it would
    stop the verifier."""
    log = _log()
    log.entries[2] = _reencoded(log.entries[2], data=json.loads(log.entries[2])["data"] | {"text_hash": []})
    assert "entry 2: the text it commits to ([]…) is missing" in messages(log.verify(tmp_path / "x.export"))

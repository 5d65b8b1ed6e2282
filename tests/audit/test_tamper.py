"""`byline audit verify` passes an honest log and fails, naming what it found, on each tampering.

Each test builds a real log through the HTTP API of a real gateway, tampers with it the way
someone with full control of the database (or of the export file) would, and runs the real CLI
in a subprocess: against an export file, and against the live server.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.appkeys import CHECKPOINTS
from tests.audit.logtools import Attacker, byline, cli_env, populate
from tests.conftest import Gateway


async def _export(gw: Gateway, db_url: str, out: Path) -> None:
    result = await byline("audit", "export", "--out", str(out), env=cli_env(BYLINE_DATABASE_URL=db_url))
    assert result.code == 0, result.text


async def _verify(gw: Gateway, *where: str, state: Path | None = None) -> tuple[int, str]:
    key = gw.app[CHECKPOINTS].verifier_key()
    state_args = ["--state", str(state)] if state else ["--no-state"]
    result = await byline("audit", "verify", "--key", key, *where, *state_args, "--no-progress")
    return result.code, result.text


def _url(gw: Gateway) -> str:
    return str(gw.client.make_url("")).rstrip("/")


async def test_honest_log_verifies_from_export_and_url(gateway: Gateway, db_url: str, tmp_path: Path) -> None:
    """An untouched log verifies: export file and live server, both exit 0 and agree on the size."""
    await populate(gateway)
    size = await gateway.log_size()
    out = tmp_path / "log.export"
    await _export(gateway, db_url, out)
    code, text = await _verify(gateway, "--export", str(out))
    assert code == 0, text
    assert f"ok: {size} entries" in text
    code, text = await _verify(gateway, "--url", _url(gateway))
    assert code == 0, text
    assert f"ok: {size} entries" in text
    fetched = tmp_path / "fetched.export"
    result = await byline("audit", "export", "--url", _url(gateway), "--out", str(fetched))
    assert result.code == 0, result.text
    def entries(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if line[:1].isdigit()]

    # The public API withholds the words of posts that never went out, and their salts (with a
    # salt, a guess of the words could be confirmed); everything else agrees.
    got, want = [line.split("\t") for line in entries(fetched)], [line.split("\t") for line in entries(out)]
    assert [g[:2] + g[4:] for g in got] == [w[:2] + w[4:] for w in want]
    for g, w in zip(got, want, strict=True):
        assert (g[2], g[3]) in ((w[2], w[3]), ("withheld", "null")), (g, w)
    assert any(g[2:4] == ["withheld", "null"] and w[3] != "null" for g, w in zip(got, want, strict=True))
    code, text = await _verify(gateway, "--export", str(fetched))
    assert code == 0 and f"ok: {size} entries" in text, text


async def test_entries_not_yet_signed_are_said_so(gateway: Gateway, db_url: str, tmp_path: Path) -> None:
    """An export with entries after its latest checkpoint: the real CLI exits 0 but its verdict
    says how many entries no signature covers yet, and `--require-signed` makes them fail."""
    await populate(gateway)
    signed = await gateway.log_size()
    await gateway.submit("alice", "direct", "After the checkpoint")
    await gateway.submit("alice", "direct", "And after that")
    size = await gateway.log_size()
    assert size >= signed + 2
    out = tmp_path / "log.export"
    await _export(gateway, db_url, out)

    code, text = await _verify(gateway, "--export", str(out))

    assert code == 0, text
    assert text.startswith(f"ok, but {size - signed} entries are NOT yet signed: the first {signed} verified "
                           f"against {out} are under its signed checkpoint; entries {signed}–{size - 1} come "
                           "after it"), text
    code, text = await _verify(gateway, "--export", str(out), "--require-signed")
    assert code == 1, text
    assert text.startswith(f"FAILED: first bad entry: entry {signed}: not signed: the latest checkpoint covers "
                           f"{signed} entries, and the {size - signed} after it no signature covers yet"), text


async def test_changed_byte_in_a_stored_entry_is_named(gateway: Gateway, db_url: str, tmp_path: Path) -> None:
    """One byte changed in one stored entry: both checks fail and name that entry."""
    await populate(gateway)
    victim = 7
    raw = await Attacker(db_url).entry(victim)
    changed = raw[:-3] + bytes([raw[-3] ^ 0x01]) + raw[-2:]
    assert changed != raw and len(changed) == len(raw)
    await Attacker(db_url).run(("UPDATE log_entries SET entry = ? WHERE idx = ?", (changed, victim)))
    out = tmp_path / "log.export"
    await _export(gateway, db_url, out)
    code, text = await _verify(gateway, "--export", str(out))
    assert code == 1, text
    assert f"first bad entry: entry {victim}: leaf hash does not match entry bytes" in text
    code, text = await _verify(gateway, "--url", _url(gateway))
    assert code == 1, text
    assert f"entry {victim}: leaf hash does not match entry bytes" in text


async def test_a_changed_stored_leaf_hash_is_named_from_the_tiles(
    gateway: Gateway, db_url: str, tmp_path: Path
) -> None:
    """The hash stored beside an entry changed, the entry left alone: the entries still give the
    signed root, but the level-0 tile (and every proof through that hash) does not. `verify --url`
    names the entry from the tile (before, it read no tile and said ok); an export names it too."""
    await populate(gateway)
    victim = 5
    stored = (await Attacker(db_url).fetch("SELECT leaf_hash FROM log_entries WHERE idx = ?", victim))[0][0]
    await Attacker(db_url).run(
        ("UPDATE log_entries SET leaf_hash = ? WHERE idx = ?", (bytes([stored[0] ^ 1]) + bytes(stored[1:]), victim))
    )
    code, text = await _verify(gateway, "--url", _url(gateway))
    assert code == 1, text
    assert text.startswith(f"FAILED: first bad entry: entry {victim}: the log's tile tile/0/000.p/"), text
    assert "holds another leaf hash for this entry than its bytes give" in text
    out = tmp_path / "log.export"
    await _export(gateway, db_url, out)
    code, text = await _verify(gateway, "--export", str(out))
    assert code == 1, text
    assert f"first bad entry: entry {victim}: leaf hash does not match entry bytes" in text


async def test_deleted_last_entry_is_named(gateway: Gateway, db_url: str, tmp_path: Path) -> None:
    """The last entry deleted after it was signed: verify says which entry is missing."""
    await populate(gateway)
    size = await gateway.log_size()
    await Attacker(db_url).run(("DELETE FROM log_entries WHERE idx = ?", (size - 1,)))
    out = tmp_path / "log.export"
    await _export(gateway, db_url, out)
    code, text = await _verify(gateway, "--export", str(out))
    assert code == 1, text
    assert f"entry {size - 1}: missing: the signed checkpoint covers {size} entries" in text
    code, text = await _verify(gateway, "--url", _url(gateway))
    assert code == 1, text
    assert f"entry {size - 1}: missing" in text


async def test_reordered_entries_are_named(gateway: Gateway, db_url: str, tmp_path: Path) -> None:
    """Two entries swapped with their hashes: the chain links give the first one away."""
    ids = await populate(gateway)
    rows = await Attacker(db_url).fetch(
        "SELECT idx, entry, leaf_hash FROM log_entries WHERE post_id = ? ORDER BY idx", ids["cosigned"]
    )
    (a, entry_a, leaf_a), (b, entry_b, leaf_b) = rows[1], rows[2]
    await Attacker(db_url).run(
        ("UPDATE log_entries SET entry = ?, leaf_hash = ? WHERE idx = ?", (bytes(entry_b), bytes(leaf_b), a)),
        ("UPDATE log_entries SET entry = ?, leaf_hash = ? WHERE idx = ?", (bytes(entry_a), bytes(leaf_a), b)),
    )
    out = tmp_path / "log.export"
    await _export(gateway, db_url, out)
    for where in (["--export", str(out)], ["--url", _url(gateway)]):
        code, text = await _verify(gateway, *where)
        assert code == 1, text
        assert f"first bad entry: entry {a}: links to entry" in text, text
        assert "do not give the root of the checkpoint" in text


async def test_swapped_signature_is_caught(gateway: Gateway, db_url: str, tmp_path: Path) -> None:
    """The latest checkpoint carrying an older checkpoint's signature fails to verify."""
    old = await gateway.app[CHECKPOINTS].sign_now()
    await populate(gateway)
    new = await gateway.app[CHECKPOINTS].sign_now()
    forged = new.split(b"\n\n")[0] + b"\n\n" + old.split(b"\n\n")[1]
    size = int(new.split(b"\n")[1])
    await Attacker(db_url).run(("UPDATE log_checkpoints SET note = ? WHERE size = ?", (forged, size)))
    code, text = await _verify(gateway, "--url", _url(gateway))
    assert code == 1, text
    assert "checkpoint offered by the log: bad signature for key byline.local/log" in text
    out = tmp_path / "log.export"
    await _export(gateway, db_url, out)
    code, text = await _verify(gateway, "--export", str(out))
    assert code == 1, text
    assert "bad signature for key byline.local/log" in text


async def test_tampered_export_file_is_caught(gateway: Gateway, db_url: str, tmp_path: Path) -> None:
    """Editing the export file itself: a changed byte, a dropped last line, two lines swapped."""
    await populate(gateway)
    out = tmp_path / "log.export"
    await _export(gateway, db_url, out)
    lines = out.read_bytes().splitlines(keepends=True)
    first = next(n for n, line in enumerate(lines) if line[:1].isdigit())
    fields = lines[first + 3].split(b"\t")
    assert fields[4].startswith(b'{"account":')  # entries are readable in an export
    fields[4] = fields[4].replace(b'"v":1', b'"v":2')
    changed = tmp_path / "changed.export"
    changed.write_bytes(b"".join([*lines[: first + 3], b"\t".join(fields), *lines[first + 4 :]]))
    code, text = await _verify(gateway, "--export", str(changed))
    assert code == 1 and "first bad entry: entry 3: leaf hash does not match entry bytes" in text, text

    truncated = tmp_path / "truncated.export"
    truncated.write_bytes(b"".join(lines[:-1]))
    size = len(lines) - first
    code, text = await _verify(gateway, "--export", str(truncated))
    assert code == 1 and f"entry {size - 1}: missing" in text, text

    swapped = tmp_path / "swapped.export"
    swapped.write_bytes(b"".join([*lines[:first + 5], lines[first + 6], lines[first + 5], *lines[first + 7:]]))
    code, text = await _verify(gateway, "--export", str(swapped))
    assert code == 1 and "first bad entry: entry 5: out of order" in text, text


async def test_restored_older_copy_fails_against_remembered_checkpoints(
    gateway: Gateway, db_url: str, tmp_path: Path
) -> None:
    """An auditor who saw a bigger checkpoint before catches a rolled-back log."""
    await populate(gateway)
    state = tmp_path / "audit-state.json"
    code, text = await _verify(gateway, "--url", _url(gateway), state=state)
    assert code == 0, text
    seen = json.loads(state.read_text())
    assert len(next(iter(seen["logs"].values()))) == 1
    size = await gateway.log_size()
    keep = size - 5
    # What restoring an older copy does to the log tables, done in place.
    rows = await Attacker(db_url).fetch("SELECT size, root FROM log_checkpoints ORDER BY size")
    older = [r for r in rows if r[0] <= keep]
    assert older, rows
    await Attacker(db_url).run(
        ("DELETE FROM log_entries WHERE idx >= ?", (keep,)),
        ("DELETE FROM log_checkpoints WHERE size > ?", (keep,)),
    )
    code, text = await _verify(gateway, "--url", _url(gateway), state=state)
    assert code == 1, text
    assert "fewer than the" in text and "rolled back" in text

"""Hand-made logs: entries encoded and chained as the appender does, signed, written as an export.

For the rules a real gateway never breaks: a log that breaks them can only be made by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.audit import merkle
from gateway.audit.entry import Prev, encode_entry, text_commitment
from gateway.audit.export import write_checkpoint, write_entries, write_header
from gateway.audit.note import Checkpoint, Signer, sign_note
from gateway.audit.replay import POLICY_GRACE_SECONDS
from gateway.audit.verify import ExportSource, Report, verify
from gateway.types import iso

ORIGIN = "test.example/log"


def summary(
    *,
    owner: str,
    writers: list[str],
    approvers: list[str] | None = None,
    required: int = 0,
    suggesters: list[str] | None = None,
    tier: str = "direct",
    disclosure: str | None = None,
    expire_after: int | None = None,
) -> dict[str, Any]:
    """A policy summary, as ``Policy.summary()`` records it (``expire_after``: its
    ``expire_after_seconds``, which summaries recorded before it was added leave out)."""
    return {
        "tier": tier, "platform": "sandbox", "owner": owner, "writers": sorted(writers),
        "approvers": sorted(approvers or []), "required": required,
        "suggesters": sorted(suggesters or []), "delay_seconds": 0, "disclosure": disclosure, "rules": [],
        **({} if expire_after is None else {"expire_after_seconds": expire_after}),
    }


class SyntheticLog:
    """Entries appended by hand; ``write`` signs the tree and writes an export file."""

    def __init__(self) -> None:
        self.signer = Signer.generate(ORIGIN)
        self.entries: list[bytes] = []
        self.texts: dict[str, tuple[bytes, str | None]] = {}
        self._chains: dict[str, Prev] = {}
        self._ts = 1_767_268_800_000_000
        self.words: dict[str, str | None] = {}
        """Each post's current words, as its last post.submitted, edited or revised committed."""

    def add(
        self,
        type: str,
        *,
        actor: str,
        account: str | None = None,
        post: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> int:
        """Append one event, linked to the previous one of its chain; return its index."""
        chain = f"policy:{account}" if type.startswith("policy.") else (f"post:{post}" if post else None)
        prev = self._chains.get(chain) if chain else None
        self._ts += 1_000_000
        raw = encode_entry(type=type, ts=self._ts, actor=actor, account=account, post=post,
                           data=data or {}, prev=prev)
        index = len(self.entries)
        self.entries.append(raw)
        if chain:
            self._chains[chain] = Prev(index=index, leaf=merkle.leaf_hash(raw))
        digest = (data or {}).get("text_hash")
        if post is not None and type in ("post.submitted", "post.edited", "post.revised") and digest in self.texts:
            self.words[post] = self.texts[digest][1]
        return index

    def commit(self, text: str, *, salt: bytes = b"0123456789abcdef") -> str:
        """Keep a text beside the log; return the hash an entry carries."""
        digest = text_commitment(text, salt)
        self.texts[digest] = (salt, text)
        return digest

    def policy(self, account: str, policy: dict[str, Any], sha: str, *, kind: str = "policy.loaded") -> int:
        """Record a policy for an account."""
        return self.add(kind, actor="policy-file", account=account,
                        data={"file": f"{account}.yaml", "sha256": sha, "policy": policy})

    def submit(
        self, post: str, *, author: str, account: str, state: str = "scheduled",
        approvers: list[str] | None = None, required: int = 0, sha: str | None = None,
    ) -> int:
        """A post.submitted event."""
        return self.add("post.submitted", actor=author, account=account, post=post, data={
            "version": 1, "text_hash": self.commit(f"text of {post}"), "state": state,
            "approvers": approvers or [], "required": required, "policy_sha256": sha,
        })

    def write(self, path: Path, *, entries: list[bytes] | None = None, signed: int | None = None) -> Path:
        """Sign the tree of all entries (of the first ``signed`` when given) and write the export."""
        entries = self.entries if entries is None else entries
        leaves = [merkle.leaf_hash(e) for e in self.entries]
        size = len(leaves) if signed is None else signed
        root = merkle.root_from_leaves(leaves[:size])
        note = sign_note(Checkpoint(ORIGIN, size, root).to_text(), self.signer)
        texts = {digest: (salt.hex(), text) for digest, (salt, text) in self.texts.items()}
        with path.open("w", encoding="utf-8") as out:
            write_header(out, origin=ORIGIN, size=len(entries))
            write_checkpoint(out, note)
            write_entries(out, ((i, leaves[i] if i < len(leaves) else b"", e) for i, e in enumerate(entries)), texts)
        return path

    def verify(self, path: Path, *, policy_grace: float = POLICY_GRACE_SECONDS, **kwargs: Any) -> Report:
        """Write and verify; return the report."""
        self.write(path, **kwargs)
        return verify(ExportSource(path), self.signer.verifier(), workers=1, policy_grace=policy_grace)

    def time(self, seconds: float = 0.0) -> str:
        """The time ``seconds`` after the next entry's, as entries write times (``publish_at``)."""
        return iso(self._ts + 1_000_000 + int(seconds * 1_000_000))

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass before the next entry (each entry is a second after the last)."""
        self._ts += int(seconds * 1_000_000)


def messages(report: Report) -> list[str]:
    """Every finding as text, in report order."""
    return [str(f) for f in report.findings]


def loads(raw: bytes) -> Any:
    """Decode an entry."""
    return json.loads(raw)

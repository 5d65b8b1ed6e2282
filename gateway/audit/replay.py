"""Replaying the log's rules: who may submit, who may approve, and what may be published.

Fed the facts of every entry in log order (see :func:`gateway.audit.verify.extract`), the replay
keeps what the log itself says: the policy in force for each account (from ``policy.*``
events), and each post's author, approvers, required count, versions and approvals. It flags:

- a ``post.submitted`` by someone who was not a writer (or, for a suggestion, a suggester)
  under the account's policy in force at that point of the log. A submission is decided on the
  policy the gateway holds in memory, and the gateway records a reloaded policy a moment after
  reading it, so a submission may name (``policy_sha256``) the policy just replaced, or the next
  one not yet recorded; it is then judged by the policy it names;
- a ``post.approved`` by the post's author (unless the author owns the account and the
  approvers are exactly the owner: the owner confirming a held post on a one-person account),
  by someone not among the post's approvers, or for another version than the current one;
- a ``post.published`` of a post that was held (``required`` > 0) without ``required``
  distinct approvals of the version that was published.

The replay is pure: no I/O, no clock; it only reads the facts given to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Fact", "Replay"]

Fact = tuple[str, str, str | None, str | None, Any]
"""(type, actor, account, post, extra): what the replay needs of one entry; see ``extract``."""


@dataclass(slots=True)
class _Post:
    author: str
    account: str | None
    approvers: tuple[str, ...]
    required: int
    version: int
    state: str
    approvals: dict[int, set[str]] | None = None  # made at the first approval: many posts have none


@dataclass
class _Policy:
    sha256: str
    summary: dict[str, Any]
    writers: frozenset[str] = frozenset()
    suggesters: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.writers = frozenset(_list(self.summary, "writers"))
        self.suggesters = frozenset(_list(self.summary, "suggesters"))


@dataclass
class _Pending:
    index: int
    actor: str
    state: str
    sha256: str


def _list(summary: dict[str, Any], key: str) -> list[str]:
    value = summary.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _may_submit(policy: _Policy, actor: str, state: str) -> bool:
    if state == "suggested":
        return actor in policy.suggesters and actor not in policy.writers
    return actor in policy.writers


def _gate(summary: dict[str, Any], author: str) -> tuple[tuple[str, ...], int]:
    """The approvers and required count of a held post by ``author`` (as the engine's gate_for)."""
    approvers = _list(summary, "approvers")
    if approvers:
        others = tuple(a for a in approvers if a != author)
        required = summary.get("required")
        required = required if isinstance(required, int) else 0
        return others, min(required, len(others)) or 1
    owner = summary.get("owner")
    return ((owner,) if isinstance(owner, str) else ()), 1


class Replay:
    """Feeds on facts in log order; collects (index, problem) for every broken rule."""

    def __init__(self) -> None:
        self.findings: list[tuple[int, str]] = []
        self._policy: dict[str, _Policy] = {}
        self._previous: dict[str, _Policy] = {}
        self._pending: dict[str, list[_Pending]] = {}
        self._posts: dict[str, _Post] = {}
        self.posts_seen = 0
        self.published_checked = 0

    def _bad(self, index: int, message: str) -> None:
        self.findings.append((index, message))

    def feed_flat(self, first: int, flat: list[Any]) -> None:
        """Take the facts of a run of entries, in log order, flat: for each, its offset from
        ``first`` and the five parts of its :data:`Fact` (see ``verify.Chunk.facts``)."""
        step = self._step
        for offset, kind, actor, account, post, extra in zip(
            flat[0::6], flat[1::6], flat[2::6], flat[3::6], flat[4::6], flat[5::6], strict=True
        ):
            step(first + offset, kind, actor, account, post, extra)

    def feed(self, index: int, fact: Fact) -> None:
        """Take one entry's facts, in log order."""
        self._step(index, *fact)

    def _step(self, index: int, kind: str, actor: str, account: str | None, post: str | None, extra: Any) -> None:
        if kind.startswith("policy."):
            self._policy_event(kind, account, extra)
            return
        if post is None:
            return
        if kind == "post.submitted":
            self._submitted(index, actor, account, post, extra)
            return
        known = self._posts.get(post)
        if known is None:
            if kind.startswith("post."):
                self._bad(index, f"{kind} for post {post}, which was never submitted")
            return
        if kind == "post.edited":
            self._edited(known, extra)
        elif kind == "post.approved":
            self._approved(index, actor, known, post, extra)
        elif kind == "post.published":
            self._published(index, known, post, extra)
        elif kind == "post.publishing":
            known.state = "publishing"
        elif isinstance(extra, str):
            known.state = extra

    def _policy_event(self, kind: str, account: str | None, extra: Any) -> None:
        if account is None:
            return
        if kind == "policy.removed":
            old = self._policy.pop(account, None)
            if old is not None:
                self._previous[account] = old
            return
        if not isinstance(extra, tuple):
            return
        sha256, summary = extra
        old = self._policy.get(account)
        if old is not None:
            self._previous[account] = old
        policy = self._policy[account] = _Policy(sha256, summary)
        waiting = self._pending.get(account)
        if waiting:
            keep = []
            for item in waiting:
                if item.sha256 != sha256:
                    keep.append(item)
                elif not _may_submit(policy, item.actor, item.state):
                    self._bad(item.index, self._not_writer(item.actor, account, item.state, sha256))
            self._pending[account] = keep

    @staticmethod
    def _not_writer(actor: str, account: str | None, state: str, sha256: str | None) -> str:
        role = "a suggester" if state == "suggested" else "a writer"
        where = f" (policy {sha256[:12]})" if sha256 else ""
        return f"{actor} submitted a post to {account} but was not {role} under its policy{where}"

    def _submitted(
        self, index: int, actor: str, account: str | None, post: str, extra: Any
    ) -> None:
        version, state, approvers, required, sha256 = extra
        self.posts_seen += 1
        if post in self._posts:
            self._bad(index, f"post {post} is submitted a second time")
        self._posts[post] = _Post(actor, account, approvers, required, version, state)
        if account is None:
            self._bad(index, "post.submitted names no account")
            return
        in_force = self._policy.get(account)
        if in_force is not None and (sha256 is None or sha256 == in_force.sha256):
            if not _may_submit(in_force, actor, state):
                self._bad(index, self._not_writer(actor, account, state, in_force.sha256))
            return
        previous = self._previous.get(account)
        if previous is not None and sha256 == previous.sha256:
            if not _may_submit(previous, actor, state):
                self._bad(index, self._not_writer(actor, account, state, sha256))
            return
        if sha256 is None:
            self._bad(index, f"{actor} submitted a post to {account}, which had no policy in force")
            return
        # Named a policy the log has not recorded yet: judged when it is recorded.
        self._pending.setdefault(account, []).append(_Pending(index, actor, state, sha256))

    def _edited(self, known: _Post, extra: Any) -> None:
        version, state, approvers, required = extra
        if state == "held" and known.state != "held":
            # An edit after approval sends the post back to the approvers, gated anew.
            if approvers is not None and required is not None:
                known.approvers, known.required = approvers, required
            else:
                policy = self._policy.get(known.account or "")
                if policy is not None:
                    known.approvers, known.required = _gate(policy.summary, known.author)
        known.version = version
        known.state = state

    def _approved(self, index: int, actor: str, known: _Post, post: str, extra: Any) -> None:
        version, state = extra
        if actor == known.author and not self._owner_approving(actor, known):
            self._bad(index, f"{actor} approved their own post {post}")
        elif actor not in known.approvers:
            self._bad(index, f"{actor} approved post {post} but is not one of its approvers")
        if version != known.version:
            self._bad(index, f"approval of version {version} of post {post}, which is at version {known.version}")
        approvals = known.approvals
        if approvals is None:
            known.approvals = {version: {actor}}
        elif version in approvals:
            approvals[version].add(actor)
        else:
            approvals[version] = {actor}
        if isinstance(state, str):
            known.state = state

    def _owner_approving(self, actor: str, known: _Post) -> bool:
        """Whether the author approving is the owner, gate of their own post (a held post of the
        owner's, whom the policy names as its only approver)."""
        policy = self._policy.get(known.account or "")
        owner = policy.summary.get("owner") if policy is not None else None
        return actor == owner and known.approvers == (owner,)

    def _published(self, index: int, known: _Post, post: str, extra: Any) -> None:
        (version,) = extra
        known.state = "published"
        self.published_checked += 1
        if known.required <= 0:
            return
        got = None if known.approvals is None else known.approvals.get(version)
        count = 0 if got is None else len(got)
        if count < known.required:
            self._bad(
                index,
                f"post {post} was published (version {version}) with {count} of the "
                f"{known.required} approvals it needed",
            )

    def finish(self) -> None:
        """Flag submissions that named a policy the log never recorded."""
        for account, waiting in self._pending.items():
            for item in waiting:
                self._bad(
                    item.index,
                    f"{item.actor} submitted a post to {account} under policy "
                    f"{item.sha256[:12]}, which the log never records",
                )
        self._pending.clear()

"""Random sequences of everything people and admins do to a co-signed account, on both databases.

A hypothesis state machine drives a real gateway over HTTP: submissions, edits by anyone,
approvals and rejections of the current or a stale version, cancels, adoptions, policy changes
and removals, expiry and publishing. After every step it checks, from the stored versions and
approvals rather than from what the services computed, that every published post had the
required approvals of its published version from people who wrote none of it, and that the
log verifies.

``BYLINE_TEST_STATE_MACHINE_EXAMPLES`` and ``BYLINE_TEST_STATE_MACHINE_STEPS`` size the run (`make fuzz`
runs it larger than `make test`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from gateway.appkeys import CHECKPOINTS, DB, SETTINGS
from gateway.audit.export import export_database
from gateway.audit.note import Verifier
from gateway.audit.verify import ExportSource, verify
from gateway.clock import ManualClock
from tests.conftest import BACKENDS, PG_DSN, Gateway, started_gateway, write_policy
from tests.databases import Templates, schema_url

PEOPLE = ("alice", "bob", "carol", "dave", "erin")
# Everyone may try anything, but the people an action is meant for try it more often, so that
# short runs still reach approvals, edits by approvers and publishing.
WRITERS = st.sampled_from(("alice", "carol", "alice", "carol", "erin", "dave", "bob"))
APPROVERS = st.sampled_from(("bob", "carol", "dave", "bob", "carol", "dave", "alice", "erin"))
ANYONE = st.sampled_from(PEOPLE)
TEXTS = ("We launch today", "We launch tomorrow", "The CEO was fired", "Thanks, everyone", "A draft")

# The co-signed account's policy, as an admin might rewrite it: who writes, who approves, how many.
VARIANTS = {
    "two-of-three": ("[alice, carol]", "[bob, carol, dave]", 2, "[dave]"),
    "one-of-two": ("[alice, carol]", "[bob, carol]", 1, "[erin]"),
    "carol-out": ("[alice]", "[bob, dave]", 1, "[carol]"),
    "erin-writes": ("[alice, erin]", "[bob, carol, dave]", 2, "[]"),
}


def brand_policy(variant: str) -> str:
    """The co-signed account's policy file for one variant."""
    writers, approvers, required, suggesters = VARIANTS[variant]
    return f"""
        account: brand
        platform: sandbox
        tier: co-signed
        owner: alice
        writers: {writers}
        suggesters: {suggesters}
        delay: 1m
        approvals:
          required: {required}
          from: {approvers}
          expire_after: 24h
        disclosure: "—{{author}}"
        rules:
          - name: breaking-news
            action: hold
            any_words: [fired]
            reason: Check the full story first
    """


class VoiceMachine(RuleBasedStateMachine):
    """One gateway, one co-signed account, everything anyone may try."""

    posts = Bundle("posts")

    def __init__(self, backend: str, templates: Templates) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="byline-sm-"))
        self.policy_dir = self.dir / "policies"
        self.policy_dir.mkdir()
        self.policy_path = write_policy(self.policy_dir, "brand", brand_policy("two-of-three"))
        self.schema: str | None = None
        # Each sequence on a database of its own, copied from the migrated template (tests/databases.py).
        if backend == "sqlite":
            self.run(templates.sqlite_copy(self.dir / "byline.db"))
            db_url = f"sqlite:///{self.dir / 'byline.db'}"
        else:
            assert PG_DSN is not None
            self.schema = "sm_" + secrets.token_hex(6)
            self.run(templates.postgres_schema(self.schema))
            db_url = schema_url(PG_DSN, self.schema)
        self.clock = ManualClock()
        self.started = started_gateway(db_url, self.policy_dir, self.clock)
        self.gw: Gateway = self.run(self.started.__aenter__())

    def _pg(self, statement: str) -> None:
        async def go() -> None:
            conn = await asyncpg.connect(PG_DSN)
            try:
                await conn.execute(statement)
            finally:
                await conn.close()

        self.run(go())

    def run(self, coro: Any) -> Any:
        """Run one step's I/O to completion."""
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.started.__aexit__(None, None, None))
            if self.schema is not None:
                self._pg(f"DROP SCHEMA {self.schema} CASCADE")
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def call(self, user: str, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        status, answer = self.run(self.gw.call(user, method, path, body, **kwargs))
        assert status < 500, (method, path, status, answer)
        return status, answer

    def version_of(self, post_id: str) -> int:
        return int(self.run(self.gw.current_version(post_id)))

    # -- what people and admins do -----------------------------------------------------------

    @initialize(target=posts, author=st.sampled_from(("alice", "carol")), text=st.sampled_from(TEXTS))
    def first_post(self, author: str, text: str) -> Any:
        return self.submit(author, text)

    @rule(target=posts, author=WRITERS, text=st.sampled_from(TEXTS))
    def submit(self, author: str, text: str) -> Any:
        status, body = self.call(author, "POST", "/v1/posts", {"account": "brand", "text": text})
        return str(body["id"]) if status == 201 else multiple()

    @rule(post=posts, editor=st.one_of(WRITERS, APPROVERS), text=st.sampled_from(TEXTS))
    def edit(self, post: str, editor: str, text: str) -> None:
        self.call(editor, "PATCH", f"/v1/posts/{post}", {"text": text})

    @rule(post=posts, approver=APPROVERS, stale=st.booleans(), header=st.booleans())
    def approve(self, post: str, approver: str, stale: bool, header: bool) -> None:
        version = self.version_of(post) - (1 if stale else 0)
        if header:
            self.call(approver, "POST", f"/v1/posts/{post}/approve", headers={"If-Match": f'"{version}"'})
        else:
            self.call(approver, "POST", f"/v1/posts/{post}/approve", {"version": version})

    @rule(post=posts, approver=APPROVERS, stale=st.booleans())
    def reject(self, post: str, approver: str, stale: bool) -> None:
        version = self.version_of(post) - (1 if stale else 0)
        self.call(approver, "POST", f"/v1/posts/{post}/reject", {"version": version, "reason": "no"})

    @rule(post=posts, round=st.lists(
        st.tuples(ANYONE, st.sampled_from(["edit", "approve", "approve", "approve", "reject"]),
                  st.sampled_from(TEXTS)),
        min_size=2, max_size=6,
    ))
    def review_round(self, post: str, round: list[tuple[str, str, str]]) -> None:
        """Several people act on one post in a row, each on the version they see: the mix of
        edits and approvals that a lone voice would need to slip words through."""
        for who, action, text in round:
            if action == "edit":
                self.edit(post, who, text)
            elif action == "approve":
                self.approve(post, who, stale=False, header=False)
            else:
                self.reject(post, who, stale=False)
        self.time_passes(2)

    @rule(post=posts, who=ANYONE)
    def cancel(self, post: str, who: str) -> None:
        self.call(who, "POST", f"/v1/posts/{post}/cancel")

    @rule(target=posts, post=posts, writer=WRITERS)
    def adopt(self, post: str, writer: str) -> Any:
        status, body = self.call(writer, "POST", f"/v1/posts/{post}/adopt", {"version": self.version_of(post)})
        return str(body["id"]) if status == 201 else multiple()

    @rule(variant=st.sampled_from([*VARIANTS, "removed"]))
    def change_policy(self, variant: str) -> None:
        if variant == "removed":
            self.policy_path.unlink(missing_ok=True)
        else:
            write_policy(self.policy_dir, "brand", brand_policy(variant))
        self.run(self.gw.sync_policies())

    @rule(minutes=st.sampled_from([2, 2, 2, 30, 25 * 60]))
    def time_passes(self, minutes: int) -> None:
        self.gw.clock.advance(timedelta(minutes=minutes))
        self.run(self.gw.tick())

    # -- what must always hold ---------------------------------------------------------------

    @invariant()
    def nothing_published_without_approvals_from_non_contributors(self) -> None:
        async def check() -> None:
            async with self.gw.app[DB].read() as txn:
                rows = await txn.fetchall(
                    "SELECT id, author, suggested_by, version, required, approvers FROM posts "
                    "WHERE state IN ('publishing', 'published', 'deleted') AND account = 'brand'"
                )
                for row in rows:
                    versions = await txn.fetchall(
                        "SELECT editor FROM post_versions WHERE post_id = ? AND version <= ?", row["id"], row["version"]
                    )
                    wrote = {row["author"], row["suggested_by"], *(v["editor"] for v in versions)}
                    approvals = await txn.fetchall(
                        "SELECT approver FROM approvals WHERE post_id = ? AND version = ? AND decision = 'approve'",
                        row["id"], row["version"],
                    )
                    counted = {a["approver"] for a in approvals} - wrote
                    # The account is co-signed in every variant: two approvals, or one.
                    assert int(row["required"]) >= 1, dict(row)
                    assert len(counted) >= int(row["required"]), (dict(row), wrote, counted)

        self.run(check())

    @invariant()
    def the_log_verifies(self) -> None:
        async def check() -> None:
            await self.gw.app[CHECKPOINTS].sign_now()
            path = self.dir / "log.export"
            await export_database(self.gw.app[DB], path, origin=self.gw.app[SETTINGS].log_origin)

        self.run(check())
        key = Verifier.from_text(self.gw.app[CHECKPOINTS].verifier_key())
        report = verify(ExportSource(self.dir / "log.export"), key, workers=1)
        assert report.ok, [str(f) for f in report.findings]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_random_sequences_keep_the_co_signing_promise(backend: str, _database_templates: Templates) -> None:
    """No sequence of actions publishes words without the approvals of people who wrote none of them."""
    run_state_machine_as_test(
        lambda: VoiceMachine(backend, _database_templates),
        settings=settings(
            max_examples=int(os.environ.get("BYLINE_TEST_STATE_MACHINE_EXAMPLES", "30")),
            stateful_step_count=int(os.environ.get("BYLINE_TEST_STATE_MACHINE_STEPS", "30")),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )

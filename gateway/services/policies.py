"""Keeping the policies in force in step with the files, and recording every change of voice.

At start and on every reload, each account whose policy differs from the one last recorded
gets a ``policy.loaded``, ``policy.changed`` or ``policy.removed`` event naming what changed
(tier, writers, approvers, delay, rules, file hash). A file that does not validate is refused:
the old policy stays in force and the error is kept for the API and logged.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import structlog

from gateway.audit.appender import Appender, LogTxn
from gateway.lifecycle import State
from gateway.metrics import NOT_SCRAPED, Metrics
from gateway.policy.loader import LoadedPolicy, PolicyIssue, PolicyRegistry
from gateway.services.posts import redecide_pending
from gateway.storage import log as log_sql
from gateway.storage.db import Database
from gateway.tasks import cancel_task, run_every

logger = structlog.get_logger("byline.policies")


def _diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    keys = sorted(set(old or {}) | set(new or {}))
    return [k for k in keys if (old or {}).get(k) != (new or {}).get(k)]


def _writers(head: Any) -> frozenset[str] | None:
    """Who wrote for an account under its last recorded policy; None when none was."""
    if head is None:
        return None
    writers = json.loads(head["summary"]).get("writers")
    return frozenset(w for w in writers if isinstance(w, str)) if isinstance(writers, list) else frozenset()


class PolicyService:
    """Reloads policy files and records their changes in the log."""

    def __init__(
        self, *, registry: PolicyRegistry, appender: Appender, db: Database, interval: float,
        metrics: Metrics = NOT_SCRAPED,
    ) -> None:
        self.registry = registry
        self._metrics = metrics
        self._appender = appender
        self._db = db
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._reported: dict[str, list[PolicyIssue]] = {}

    async def sync(self) -> list[str]:
        """Reload the directory; record every account whose recorded policy differs."""
        self.registry.reload()
        self._report_errors()
        current = dict(self.registry.policies)
        moved: list[tuple[LoadedPolicy | None, State]] = []  # posts decided again, for the metrics

        async def work(ltx: LogTxn) -> list[str]:
            moved.clear()  # a batch run again runs this again
            heads = {r["account"]: r for r in await log_sql.all_policy_heads(ltx.txn)}
            recorded: list[str] = []
            for account, loaded in sorted(current.items()):
                head = heads.get(account)
                if head is not None and head["sha256"] == loaded.sha256:
                    continue
                await self._record(ltx, loaded, head)
                moved.extend((loaded, state) for _, state in
                             await redecide_pending(ltx, account=account, loaded=loaded, before=_writers(head)))
                recorded.append(account)
            for account in sorted(set(heads) - set(current)):
                old = json.loads(heads[account]["summary"])
                await ltx.append(
                    "policy.removed", actor="policy-file", account=account,
                    chain=f"policy:{account}",
                    data={"previous_sha256": heads[account]["sha256"], "previous": old},
                )
                await log_sql.delete_policy_head(ltx.txn, account)
                moved.extend((None, state) for _, state in
                             await redecide_pending(ltx, account=account, loaded=None, before=_writers(heads[account])))
                recorded.append(account)
            return recorded

        changed: list[str] = await self._appender.submit(work)
        for loaded, state in moved:
            self._metrics.post_event(loaded, "post.redecided", state)
        for account in changed:
            logger.info("policy_recorded", account=account)
        return changed

    async def _record(self, ltx: LogTxn, loaded: LoadedPolicy, head: Any) -> None:
        summary = loaded.policy.summary()
        old = json.loads(head["summary"]) if head is not None else None
        await ltx.append(
            "policy.changed" if head is not None else "policy.loaded",
            actor="policy-file",
            account=loaded.policy.account,
            chain=f"policy:{loaded.policy.account}",
            data={
                "file": loaded.path.name,
                "sha256": loaded.sha256,
                "previous_sha256": head["sha256"] if head is not None else None,
                "changed": _diff(old, summary),
                "policy": summary,
            },
        )
        await log_sql.set_policy_head(
            ltx.txn, account=loaded.policy.account, sha256=loaded.sha256,
            summary=json.dumps(summary), at=ltx.now,
        )

    def _report_errors(self) -> None:
        for name, issues in self.registry.errors.items():
            if self._reported.get(name) != issues:
                in_force = self.registry.get(name.removesuffix(".yaml")) is not None
                self._metrics.policy_file_refused()
                logger.error(
                    "policy_refused", file=name, errors=[str(i) for i in issues],
                    kept="the previous policy stays in force" if in_force else "no policy in force",
                )
        self._reported = dict(self.registry.errors)

    def errors(self, visible: Callable[[str], bool] = lambda file: True) -> list[dict[str, Any]]:
        """The issues of every refused file (of those ``visible`` picks by file name), for the API."""
        return [i.to_json() for file, issues in self.registry.errors.items() if visible(file) for i in issues]

    async def start(self) -> None:
        """Record the policies at start, then watch the directory."""
        await self.sync()
        self._task = run_every(self._interval, self.sync, name="byline-policy-watch", failed="policy_reload_failed")

    async def stop(self) -> None:
        """Stop watching."""
        await cancel_task(self._task)
        self._task = None

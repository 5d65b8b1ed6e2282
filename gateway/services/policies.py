"""Keeping the policies in force in step with the files, and recording every change of voice,
once, whichever gateway sees it first.

Each account's policy goes through numbered versions, recorded in the database
(``gateway.storage.policies``) and in the log (``policy.loaded``, ``policy.changed`` or
``policy.removed``, naming the version and what changed: tier, writers, approvers, delay,
rules, file hash). Every gateway sharing the database puts in force the version recorded
there, not what its own files say at the moment, so replicas whose files arrive at different
moments (a ConfigMap rolling out, a ``git pull`` on each host) enforce one policy.

At start and on every reload a gateway reads its directory and compares each file with the
version in force:

- the same file: the gateway agrees with it;
- a file never recorded for the account (an admin's new edit): recorded as the next version;
- a file that was recorded before, or no file at all: recorded (a change back, or a removal)
  only if this gateway's files held the version in force until now, that is, if its own files
  changed; otherwise the gateway is behind (or was given other files) and it records nothing:
  it reports the drift in ``/readyz`` and its log, and enforces the version in force.

A file that does not validate is refused: the version in force stays and the error is kept
for the API and logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from gateway.audit.appender import Appender, LogTxn
from gateway.lifecycle import State
from gateway.metrics import NOT_SCRAPED, Metrics
from gateway.policy import announce as voice
from gateway.policy.loader import LoadedPolicy, PolicyFileError, PolicyIssue, PolicyRegistry, shared_accounts
from gateway.policy.models import HOLD_EXPIRES_AFTER
from gateway.services.announcements import announce_change
from gateway.services.posts import redecide_pending
from gateway.services.profiles import queue_update as queue_profile_update
from gateway.storage import policies as policy_sql
from gateway.storage.db import Database, Txn
from gateway.tasks import cancel_task, run_every

logger = structlog.get_logger("byline.policies")

_MOVED_BY: dict[State, str] = {State.EXPIRED: "post.expired", State.CANCELLED: "post.cancelled"}
"""The log's event for a post a policy change moved, by where it left it: a hold past its
deadline expired, a reply cancelled with it; any other, decided again."""

_UNKNOWN = "?"
"""What a gateway agrees with for an account it has not yet seen its files match."""


_ADDED_LATER: dict[str, object] = {
    "expire_after_seconds": int(HOLD_EXPIRES_AFTER.total_seconds()),
    "disclosure": None,
}
"""The parts of a policy summary that summaries recorded by an earlier Byline leave out, and
the value in force for a policy that did not set them."""


def _diff(old: dict[str, Any] | None, new: dict[str, Any] | None, *, then: dict[str, object] | None = None,
          ) -> list[str]:
    """The parts of the summary ``new`` that differ from ``old``, the summary recorded for the
    version it replaces. A part that ``old`` leaves out, recorded before summaries said it, is
    compared with what that version said (``then``: its text, summarised as today's are), or,
    where its text is not kept, with the value in force for a policy that did not set it: the
    first change after an upgrade lists what changed, not every part the upgrade added."""
    was = dict(old or {})
    if old is not None and new is not None:
        for key in set(new) - set(old):
            if then is not None and key in then:
                was[key] = then[key]
            elif key in _ADDED_LATER:
                was[key] = _ADDED_LATER[key]
            elif key in voice.ADDED_LATER:
                was[key] = new[key]  # unknown, with no text to read it from: not taken for a change
    return sorted(k for k in set(was) | set(new or {}) if was.get(k) != (new or {}).get(k))


def _writers(head: policy_sql.Head | None) -> frozenset[str] | None:
    """Who wrote for an account under its policy in force; None when none was."""
    if head is None:
        return None
    writers = json.loads(head.summary).get("writers")
    return frozenset(w for w in writers if isinstance(w, str)) if isinstance(writers, list) else frozenset()


def _versions(policies: Mapping[str, LoadedPolicy]) -> dict[str, str]:
    return {account: loaded.sha256 for account, loaded in policies.items()}


@dataclass(frozen=True)
class Drift:
    """An account whose file here is not the version in force (nor a change this gateway may record)."""

    file_sha256: str | None
    """The file here (None: no file)."""
    version: int | None
    """The version in force (None: no policy in force)."""
    sha256: str | None

    def to_json(self) -> dict[str, Any]:
        return {"file_sha256": self.file_sha256, "version_in_force": self.version, "sha256_in_force": self.sha256}


@dataclass
class _Synced:
    """What one sync's work found: filled again each time the work runs."""

    recorded: list[str] = field(default_factory=list)
    moved: list[tuple[LoadedPolicy | None, State]] = field(default_factory=list)
    heads: dict[str, policy_sql.Head] = field(default_factory=dict)
    bodies: dict[tuple[str, str], str] = field(default_factory=dict)
    drift: dict[str, Drift] = field(default_factory=dict)
    agreed: dict[str, str | None] = field(default_factory=dict)
    refused: list[PolicyIssue] = field(default_factory=list)


async def versions_as_policies(
    txn: Txn, heads: dict[str, policy_sql.Head], files: dict[str, LoadedPolicy], *, registry: PolicyRegistry,
    parsed: dict[tuple[str, str], LoadedPolicy],
) -> dict[str, LoadedPolicy]:
    """The versions in force as policies: the file here where it is the same, else the
    version's recorded text, validated here (one that does not validate here is left out).
    ``parsed`` keeps the recorded texts validated, by (account, hash), from one call to the next."""
    policies = {a: files[a] for a, h in heads.items() if a in files and files[a].sha256 == h.sha256}
    wanted = [(a, h.sha256) for a, h in heads.items() if a not in policies and (a, h.sha256) not in parsed]
    bodies = await policy_sql.bodies(txn, wanted) if wanted else {}
    for account, head in heads.items():
        if account in policies:
            continue
        key = (account, head.sha256)
        if key not in parsed and key in bodies:
            try:
                parsed[key] = registry.parse(bodies[key], account=account, file=head.file or f"{account}.yaml",
                                             sha256=head.sha256)
            except PolicyFileError:
                continue  # reported where it is enforced (``PolicyService._in_force``)
        if key in parsed:
            policies[account] = parsed[key]
    return policies


async def policies_in_force(db: Database, registry: PolicyRegistry) -> dict[str, LoadedPolicy]:
    """The versions in force in the database, as a gateway that starts on ``registry``'s files
    (read already) takes them to judge those files (``byline serve``'s listing at start)."""
    async with db.read() as txn:
        heads = await policy_sql.heads(txn)
        return await versions_as_policies(txn, heads, dict(registry.files), registry=registry, parsed={})


class PolicyService:
    """Reloads policy files, records their changes once, and enforces the versions recorded."""

    def __init__(
        self, *, registry: PolicyRegistry, appender: Appender, db: Database, interval: float,
        metrics: Metrics = NOT_SCRAPED, public_url: str = "", state_dir: Path | None = None,
    ) -> None:
        self.registry = registry
        self._public_url = public_url
        """Where the accounts' public pages are, for voice-change announcements to link to."""
        self._metrics = metrics
        self._appender = appender
        self._db = db
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._reported: dict[str, list[PolicyIssue]] = {}
        directory = str(registry.directory.resolve())
        self._remembered = (None if state_dir is None else
                            state_dir / f"policies-agreed-{hashlib.sha256(directory.encode()).hexdigest()[:12]}.json")
        """Where this gateway keeps, between runs, which versions its directory agreed with: in
        its state directory, one file for each policy directory read from there."""
        self._agreed: dict[str, str | None] = self._recall()
        self._parsed: dict[tuple[str, str], LoadedPolicy] = {}
        self._lock = asyncio.Lock()
        self.drift: dict[str, Drift] = {}
        """Accounts whose files here differ from the version in force, for ``/readyz``."""
        self.enforced: list[Callable[[], None]] = []
        """Told each time a sync puts other policies in force (the streams that follow an
        account's instance with its credential look again at what they follow it with)."""

    async def sync(self) -> list[str]:
        """Read the directory; record what changed here; put the recorded versions in force.
        Return the accounts whose policy this gateway recorded."""
        async with self._lock:
            return await self._sync()

    async def _sync(self) -> list[str]:
        # Off the event loop's thread: parsing a large file (within the limits) must not hold
        # up a request. The lock keeps one read at a time, and the registry's dicts are
        # replaced whole, so requests meanwhile see the last read's.
        await asyncio.to_thread(self.registry.read)
        read_errors = dict(self.registry.errors)
        files = dict(self.registry.files)
        agreed = dict(self._agreed)
        synced = _Synced()

        async def work(ltx: LogTxn) -> _Synced:
            nonlocal synced
            synced = found = _Synced()  # a batch run again runs this again
            heads = await policy_sql.heads(ltx.txn)
            speaking = await self._policies_of(ltx, heads, files)
            # One platform account, one policy (``shared_accounts``), judged against the versions
            # in force in the database, whichever gateway's files they came from. Versions in force
            # together that speak as one account (recorded before this rule, or by an older
            # gateway) are removed, so that no gateway enforces them; a file here that speaks as
            # another's account is refused: its account's version in force, if any, stays.
            contested = shared_accounts(speaking, {}, directory=self.registry.directory)
            for account in contested:
                del speaking[account]
            losers = shared_accounts(files, speaking, directory=self.registry.directory)
            found.refused = [*contested.values(), *(i for a, i in losers.items() if a not in contested)]
            for account in sorted(set(files) | set(heads)):
                local, head = files.get(account), heads.get(account)
                if account in contested:
                    assert head is not None
                    version = await policy_sql.last_version(ltx.txn, account) + 1
                    await self._record(ltx, account, None, head, version, found)
                    found.agreed[account] = None
                    heads.pop(account, None)
                    continue
                if account in losers:
                    found.agreed[account] = head.sha256 if head is not None else None
                    continue
                mine = local.sha256 if local is not None else None
                in_force = head.sha256 if head is not None else None
                if mine == in_force:
                    found.agreed[account] = in_force
                    if local is not None and head is not None and not head.has_text:
                        await policy_sql.keep_body(ltx.txn, account=account, sha256=local.sha256, body=local.text)
                    continue
                fresh = local is not None and not await policy_sql.ever_recorded(ltx.txn, account, local.sha256)
                if fresh or agreed.get(account, _UNKNOWN) == in_force:
                    version = await policy_sql.last_version(ltx.txn, account) + 1
                    await self._record(ltx, account, local, head, version, found, before=speaking.get(account))
                    found.agreed[account] = mine
                    if local is None:
                        heads.pop(account, None)
                    else:
                        heads[account] = policy_sql.Head(account, version, local.sha256, local.path.name,
                                                         json.dumps(local.policy.summary()))
                    continue
                if account in agreed:
                    found.agreed[account] = agreed[account]
                found.drift[account] = Drift(mine, head.version if head else None, in_force)
                if head is not None:
                    found.bodies.update(await policy_sql.bodies(ltx.txn, [(account, head.sha256)]))
            for account, sha256 in agreed.items():
                # An account with neither a file here nor a version in force: this directory
                # agreed with its removal, and still does. Kept, so that the file's return is
                # recorded as this directory's change (not taken for a directory behind).
                if sha256 is None and account not in files and account not in heads:
                    found.agreed[account] = None
            found.heads = heads
            return found

        await self._appender.submit(work)
        errors = {name: list(issues) for name, issues in read_errors.items()}
        for issue in synced.refused:
            errors.setdefault(issue.file, []).append(issue)
        self.registry.errors = errors
        if synced.agreed != self._agreed:
            self._remember(synced.agreed)
        self._agreed = synced.agreed
        before = self.registry.policies
        self.registry.enforce(self._in_force(files, synced))
        if _versions(before) != _versions(self.registry.policies):
            for told in self.enforced:
                told()
        self._report_errors()
        self._report_drift(synced.drift)
        for loaded, state in synced.moved:
            self._metrics.post_event(loaded, _MOVED_BY.get(state, "post.redecided"), state)
        for account in synced.recorded:
            logger.info("policy_recorded", account=account, version=synced.heads[account].version
                        if account in synced.heads else None)
        return synced.recorded

    # A file deleted (or changed) while this gateway was down is this directory's change as
    # much as one made while it ran: without knowing what the directory agreed with before, a
    # started gateway could only take a missing file for a directory that is behind (a replica's
    # copy not yet pulled), report drift, and leave the removed policy in force. So what it
    # agreed with is kept beside its log key, for the directory it read.

    def _recall(self) -> dict[str, str | None]:
        """What this gateway's directory agreed with when it last ran (nothing if unknown)."""
        if self._remembered is None:
            return {}
        try:
            kept = json.loads(self._remembered.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        agreed = kept.get("agreed") if isinstance(kept, dict) else None
        if kept.get("policy_dir") != str(self.registry.directory.resolve()) or not isinstance(agreed, dict):
            return {}
        return {str(a): v for a, v in agreed.items() if v is None or isinstance(v, str)}

    def _remember(self, agreed: dict[str, str | None]) -> None:
        """Keep ``agreed`` for the next start (written whole, then renamed into place)."""
        if self._remembered is None:
            return
        kept = {"policy_dir": str(self.registry.directory.resolve()), "agreed": agreed}
        tmp = self._remembered.with_name(f"{self._remembered.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(kept, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self._remembered)
        except OSError as exc:
            logger.warning("policy_agreement_not_kept", path=str(self._remembered), error=exc.strerror)

    async def _record(
        self, ltx: LogTxn, account: str, local: LoadedPolicy | None, head: policy_sql.Head | None, version: int,
        found: _Synced, *, before: LoadedPolicy | None = None,
    ) -> None:
        """Record the file here (or its absence) as the account's next version, and decide its
        pending posts again under it. ``before``: the version in force as a policy, where this
        gateway could read it (see :func:`_diff`)."""
        old = json.loads(head.summary) if head is not None else None
        then = before.policy.summary() if before is not None and head is not None and before.sha256 == head.sha256 \
            else None
        changed: list[str] = []
        if local is None:
            await ltx.append(
                "policy.removed", actor="policy-file", account=account, chain=f"policy:{account}",
                data={"version": version, "previous_sha256": head.sha256 if head else None, "previous": old},
            )
            await policy_sql.record(ltx.txn, account=account, version=version, sha256=None, file=None, body=None,
                                    summary=json.dumps(old or {}), at=ltx.now)
        else:
            summary = local.policy.summary()
            changed = _diff(old, summary, then=then)
            await ltx.append(
                "policy.changed" if head is not None else "policy.loaded",
                actor="policy-file", account=account, chain=f"policy:{account}",
                data={
                    "version": version,
                    "file": local.path.name,
                    "sha256": local.sha256,
                    "previous_sha256": head.sha256 if head is not None else None,
                    "changed": changed,
                    "policy": summary,
                },
            )
            await policy_sql.record(ltx.txn, account=account, version=version, sha256=local.sha256,
                                    file=local.path.name, body=local.text, summary=json.dumps(summary), at=ltx.now)
        await queue_profile_update(ltx, account=account, version=version, loaded=local)
        found.moved.extend((local, state) for _, state in await redecide_pending(
            ltx, account=account, loaded=local, before=_writers(head), moved_account="speaks_as" in changed))
        await announce_change(ltx, account=account, loaded=local, head=head, version=version,
                              public_url=self._public_url)
        found.recorded.append(account)

    async def _policies_of(
        self, ltx: LogTxn, heads: dict[str, policy_sql.Head], files: dict[str, LoadedPolicy],
    ) -> dict[str, LoadedPolicy]:
        """The versions in force as policies (see :func:`versions_as_policies`)."""
        return await versions_as_policies(ltx.txn, heads, files, registry=self.registry, parsed=self._parsed)

    def _in_force(self, files: dict[str, LoadedPolicy], synced: _Synced) -> dict[str, LoadedPolicy]:
        """The recorded versions as policies: the file here where it is the same, else the
        version's recorded text, validated here."""
        in_force: dict[str, LoadedPolicy] = {}
        for account, head in synced.heads.items():
            local = files.get(account)
            if local is not None and local.sha256 == head.sha256:
                in_force[account] = local
                continue
            key = (account, head.sha256)
            parsed = self._parsed.get(key)
            body = synced.bodies.get(key)
            if parsed is None and body is not None:
                try:
                    parsed = self.registry.parse(body, account=account, file=head.file or f"{account}.yaml",
                                                 sha256=head.sha256)
                except PolicyFileError as exc:
                    logger.error("policy_in_force_refused_here", account=account, version=head.version,
                                 errors=[str(i) for i in exc.issues])
                else:
                    self._parsed[key] = parsed
            if parsed is not None:
                in_force[account] = parsed
            elif local is not None:
                # A version recorded before versions kept their text, and not the file here:
                # posts for the account are refused (their check finds the versions differ).
                in_force[account] = local
        return in_force

    def _report_drift(self, drift: dict[str, Drift]) -> None:
        for account, found in drift.items():
            if self.drift.get(account) != found:
                logger.warning(
                    "policy_drift", account=account, file_sha256=found.file_sha256,
                    version_in_force=found.version, sha256_in_force=found.sha256,
                    meaning="this gateway's policy file is not the version in force; the version in force is "
                            "enforced here, and nothing is recorded until the file is the same or changes again",
                )
        for account in set(self.drift) - set(drift):
            logger.info("policy_drift_ended", account=account)
        self.drift = drift

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

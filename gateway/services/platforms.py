"""Adapters per account, and the credentials they use: resolved here, never shown anywhere.

A policy names its credential by reference (``env:NAME`` or ``file:PATH``); the secret is read
when an adapter is made and handed to the adapter only. Errors name the reference, not the
value.

Here too each account's health is kept, and the rule that one platform account has one policy
file is kept as the platforms tell it: an account publishes only once its credential is known to
be for the platform account its file names, and no other account's credential is known to be,
or may be, for the same platform account (:meth:`Platforms.cleared`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import importlib
import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import structlog

from adapters.base import Adapter, AdapterConfig, AdapterError, Carries, KnowsItsPosts, ScopeCheck, ScopeChecking
from adapters.sandbox import SandboxAdapter, SandboxStore
from gateway.clock import Clock, SystemClock, now_micros
from gateway.errors import BylineError, Code
from gateway.policy.credentials import CredentialRules
from gateway.policy.files import SWAPPED, is_swapped, open_unlinked
from gateway.policy.loader import LoadedPolicy, PolicyRegistry, platform_server
from gateway.policy.models import Policy
from gateway.services.identities import (
    NOT_NAMED_PUBLIC,
    SHARED_PUBLIC,
    UNCOMPARED_PUBLIC,
    UNREACHED_WAIT,
    WAITING_PUBLIC,
    AccountHeld,
    Learned,
    Learning,
    PlatformIdentity,
    Unreached,
    credential_key,
    names,
    not_named_problem,
    shared_problem,
    uncompared_problem,
    waiting_problem,
)
from gateway.storage.db import Database
from gateway.storage.identities import Spoke, first_spoke_as, now_spoke_as, spoke_as
from gateway.types import Micros

logger = structlog.get_logger("byline.platforms")

# platform -> "module:Class"; imported when first used so a missing optional adapter only
# affects the accounts on that platform.
ADAPTERS = {
    "mastodon": "adapters.mastodon:MastodonAdapter",
    "bluesky": "adapters.bluesky:BlueskyAdapter",
    "x": "adapters.x:XAdapter",
}


def carries(platform: str) -> Carries:
    """What the posts of ``platform`` can carry, as its adapter says: what the adapter would
    refuse when a post went out can be refused when the post is made."""
    found: Carries = _class_of(platform).carries
    return found


def checks_scopes(platform: str) -> bool:
    """Whether ``platform``'s adapter can say what an account's credential may do
    (``ScopeChecking``): its accounts are asked once a minute (``Publisher.check_scopes``)."""
    # Its method looked for, not ``issubclass``: a protocol's ABC cache would keep its first answer.
    return callable(getattr(_class_of(platform), "scope_check", None))


def _class_of(platform: str) -> Any:
    return SandboxAdapter if platform == "sandbox" else _adapter_class(platform)


@functools.cache  # three platforms; asked at every post and adapter made
def _adapter_class(platform: str) -> Any:
    module_name, _, cls_name = ADAPTERS[platform].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)


async def another_account(adapter: object, account: str, remote_id: str | None) -> str | None:
    """Why ``account``'s credential cannot change the post ``remote_id``: it signs in to another
    account than the post's (a Bluesky app password of another DID); None where it is the
    post's, where the platform cannot tell (``KnowsItsPosts``), and where it does not answer now
    (the change is tried, and says why it is not made)."""
    if remote_id is None or not isinstance(adapter, KnowsItsPosts):
        return None
    try:
        owned = await adapter.owns(remote_id)
    except AdapterError:
        return None
    return None if owned else (f"{account}'s credential signs in to another account than the one {remote_id} "
                               "is in: none of that account's posts can be changed with it")


def credential_being_written(exc: BylineError) -> bool:
    """Whether ``exc`` (from :meth:`Platforms.adapter_for` or :meth:`Platforms.credential_of`)
    is a credential file caught in the middle of its rewrite: read it again in a moment, rather
    than count the account's credential as unreadable."""
    return exc.details.get("retry_after") is not None


class CredentialError(Exception):
    """A credential reference that cannot be resolved; the message names only the reference."""


class CredentialEmpty(CredentialError):
    """A ``file:`` credential whose file holds nothing: cleared by its admin, or caught between
    the truncation and the write of a rewrite (``echo TOKEN > file``)."""


class CredentialBeingWritten(CredentialEmpty):
    """A ``file:`` credential found empty within moments of its last change, with nothing read
    from it before (a gateway just started): most likely caught between the truncation and the
    write of a rewrite. Read again in a moment (``SETTLE_SECONDS``), not taken for a credential
    its admin cleared, which would hold the account's posts for minutes."""


def resolve_credential(reference: str, *, rules: CredentialRules) -> str:
    """Read the secret an ``env:NAME`` or ``file:PATH`` reference points at.

    The file is checked again here, not only when the policy loaded: a symlink in the secrets
    directory may have been pointed elsewhere since.
    """
    kind, _, target = reference.partition(":")
    if kind == "env":
        try:
            rules.env_name(target)
        except ValueError as exc:
            raise CredentialError(f"credential {exc}") from None
        value = os.environ.get(target)
        if not value:
            raise CredentialError(f"credential {reference} is not set in the environment")
        return value
    if kind == "file":
        try:
            path = rules.credential_path(target)
        except ValueError as exc:
            raise CredentialError(f"credential {exc}") from None
        value = _read_small_file(reference, path).strip()
        if not value:
            raise CredentialEmpty(f"credential {reference} is empty")
        return value
    raise CredentialError(f"credential reference {reference} is neither env: nor file:")


MAX_CREDENTIAL_BYTES = 64 * 1024
"""The most a credential file may hold: a token, an app password or OAuth keys, with room to spare."""


def _read_small_file(reference: str, path: Path) -> str:
    """A credential file's text: a regular file of at most ``MAX_CREDENTIAL_BYTES``, opened
    without waiting, so that a FIFO or a device put in the secrets directory is refused at once
    rather than blocking the event loop for ever (or reading without end)."""
    try:
        fd = open_unlinked(path)
    except OSError as exc:
        if is_swapped(exc):
            raise CredentialError(f"credential {reference} cannot be read: {SWAPPED}") from None
        raise CredentialError(f"credential {reference} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        st = os.fstat(file.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise CredentialError(f"credential {reference} is not a regular file")
        if st.st_size > MAX_CREDENTIAL_BYTES:
            raise CredentialError(f"credential {reference} is larger than {MAX_CREDENTIAL_BYTES} bytes")
        try:
            data = file.read(MAX_CREDENTIAL_BYTES + 1)
        except OSError as exc:
            raise CredentialError(f"credential {reference} cannot be read: {exc.strerror}") from None
    if len(data) > MAX_CREDENTIAL_BYTES:
        raise CredentialError(f"credential {reference} is larger than {MAX_CREDENTIAL_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialError(f"credential {reference} is not UTF-8 text") from None


_SETTLED_NS = 2_000_000_000
"""A file changed less than this long ago (nanoseconds) is read again whatever its stat says:
a file systems' clock ticks coarsely, so a write within the same tick leaves the same times."""
SETTLE_SECONDS: Final = _SETTLED_NS // 1_000_000_000
"""How long after its last change an empty credential file is read again before it is taken as cleared."""


@dataclass
class SecretFiles:
    """``file:`` credentials as last read, each kept with what ``os.stat`` said of its path.

    A credential is read on every use, so that a rotated token takes effect at once; reading one
    means resolving its path (every symlink), checking where it leads and opening it: most of
    the cost of a publication's set-up. Here one ``stat`` of the unresolved path stands in for
    that while it says the same file, unchanged (device, inode, size, modification and change
    times) and not changed within the last two seconds; anything else (a symlink pointed
    elsewhere, a file rewritten or replaced) is resolved, checked and read again in full. What
    is kept was read through every check, so it never hands out anything the checks refused.

    A file found empty within two seconds of its last change is taken for one being written
    (truncated, its new token not in yet): the value read before it stands until the file is
    left alone, as a policy file's does, rather than the account being taken for one whose
    credential broke, its posts put off for minutes. A file left empty is an empty credential.
    """

    _known: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)
    _last: dict[str, str] = field(default_factory=dict)
    """The value each reference last read, through every check: what a file being written stands for."""

    def read(self, reference: str, rules: CredentialRules) -> str:
        """The secret ``reference`` (``file:...``) names, as :func:`resolve_credential` reads it."""
        target = reference.partition(":")[2]
        path = os.path.join(rules.policy_dir, target)
        try:
            st = os.stat(path)
        except OSError:
            self._known.pop(reference, None)
            return resolve_credential(reference, rules=rules)  # says what is wrong
        signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        known = self._known.get(reference)
        if known is not None and known[0] == signature:
            return known[1]
        settled = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLED_NS
        try:
            value = resolve_credential(reference, rules=rules)
        except CredentialEmpty:
            last = self._last.get(reference)
            # The stat above may be of the file before its rewrite began (truncated after the
            # stat, before the read): whether it was left empty is what it says now.
            with contextlib.suppress(OSError):
                now_st = os.stat(path)
                settled = time.time_ns() - max(now_st.st_mtime_ns, now_st.st_ctime_ns) > _SETTLED_NS
            if settled:
                raise
            if last is None:
                raise CredentialBeingWritten(f"credential {reference} is empty, changed moments ago: "
                                             "read again in a moment") from None
            self._known.pop(reference, None)
            return last  # being written: read again at the next use
        self._last[reference] = value
        if settled:
            self._known[reference] = (signature, value)
        else:
            self._known.pop(reference, None)
        return value


CREDENTIAL_REREAD_SECONDS: Final = 1
"""How long a credential, as last read, is taken as it is where nothing reads it at each use:
another account's, compared when one publishes (:meth:`Platforms.cleared`), and the one an open
connection to a Mastodon instance was made with (:mod:`gateway.services.instance_streams`).
After it, it is read again (an environment lookup or a ``stat``, see :class:`SecretFiles`), so
a token rewritten in place is noticed within it."""
_CREDENTIALS_KEPT = CREDENTIAL_REREAD_SECONDS * 1_000_000
"""How long the credentials of a group of accounts that could share a platform account, as last
read, are taken as they are (microseconds). After it, the next publication in the group reads
them again, once for the whole group (an environment lookup or a ``stat`` each), so a token
rewritten in another account's file is noticed within a second, and the cost of noticing grows
with the accounts, not with their square."""


@dataclass(frozen=True, slots=True)
class _Credentials:
    """A group's credentials as last read (what :mod:`gateway.services.identities` knows each
    by; None: none, or unreadable), when, and a count that moves each time they change."""

    at: Micros
    peers: int
    """The peers' generation they were read under."""
    known: tuple[str | None, ...]
    generation: int


@dataclass(frozen=True, slots=True)
class _Made:
    """An account's adapter, for one policy version (``sha256``) and credential (``key``);
    ``credential``, what :mod:`gateway.services.identities` knows the credential by (None: it
    has none)."""

    key: str
    sha256: str
    adapter: Adapter
    credential: str | None


@dataclass(frozen=True, slots=True)
class _Peers:
    """The policies in force grouped by the platform accounts they could share: all Mastodon
    accounts (two addresses may be one instance: only the instance can say, see
    :func:`~gateway.services.identities.identity_of`), all Bluesky accounts (a DID is one
    account at any PDS), all X accounts. ``generation`` moves when a group changes."""

    policies: Mapping[str, LoadedPolicy]
    groups: dict[tuple[str, ...], tuple[tuple[str, str], ...]]
    """Each group's accounts, with their policy's hash."""
    group_of: dict[str, tuple[str, ...]]
    generation: int


def _group(policy: Policy) -> tuple[str, ...] | None:
    if policy.platform == "sandbox":
        return None  # a sandbox account is its own, by name: none other can publish as it
    # Mastodon's too is the platform's: by address, two names of one instance were never compared.
    return (policy.platform,)


@dataclass
class Platforms:
    """Makes and caches one adapter per account and policy version; tracks account health; and
    holds accounts whose credentials turn out to be one platform account (:meth:`cleared`)."""

    sandbox: SandboxStore
    public_url: str
    rules: CredentialRules
    session: aiohttp.ClientSession | None = None
    unhealthy: dict[str, str] = field(default_factory=dict)
    profile_problems: dict[str, str] = field(default_factory=dict)
    """Accounts whose profile byline a platform refused, with its reason: shown, but their
    posts go out as usual (``unhealthy`` holds them)."""
    scope_warnings: dict[str, str] = field(default_factory=dict)
    """Accounts whose credential lacks a scope Byline needs only at times (a recovery's read),
    with what to do: shown, but their posts go out (:meth:`check_scopes`)."""
    policies: PolicyRegistry | None = None
    """The policies in force, whose credentials :meth:`cleared` compares; None: none are."""
    clock: Clock = field(default_factory=SystemClock)
    db: Database | None = None
    """Where the platform account each account publishes as is kept for every gateway
    (:meth:`_kept`); None: nowhere, and a file naming no handle is held to none."""
    _cache: dict[str, _Made] = field(default_factory=dict)
    _files: SecretFiles = field(default_factory=SecretFiles)
    _learning: Learning = field(default_factory=Learning)
    _peers: _Peers | None = None
    _verdicts: dict[str, tuple[str | None, int, int]] = field(default_factory=dict)
    """Accounts found to share their platform account with no other: with their credential, the
    peers' generation and their group's credentials' generation then."""
    _read: dict[tuple[str, ...], _Credentials] = field(default_factory=dict)
    """Each group's credentials, as last read (:meth:`_credentials`)."""
    _shared: dict[str, tuple[set[str], str, str]] = field(default_factory=dict)
    """Accounts found to publish as one platform account with others: those others, and the
    platform and account as the platform names them."""
    _set_here: dict[str, str] = field(default_factory=dict)
    """The problems :meth:`cleared` put in ``unhealthy``, to take back only those."""
    _holds: int = 0
    """How many times accounts were found to share a platform account: a check that waited on
    a platform meanwhile looks again (:meth:`cleared`)."""
    _in_force: Mapping[str, LoadedPolicy] | None = None
    """The policies in force when :meth:`forget_gone` last looked."""
    _scope_marked: dict[str, str] = field(default_factory=dict)
    """The problems :meth:`check_scopes` put in ``unhealthy``, to take back only those."""
    _waits_on: dict[str, str] = field(default_factory=dict)
    """Accounts held until their platform says whose another account's credential is, or
    until two accounts that cannot be compared are put right: that other account."""

    def adapter_for(self, loaded: LoadedPolicy) -> Adapter:
        """The adapter for an account under its policy in force and its current credential.

        The credential is read again on every call (an environment lookup or a small file, see
        :class:`SecretFiles`), so an admin who rotates a token fixes a broken account without a
        restart.
        """
        return self._made(loaded).adapter

    def credential_of(self, loaded: LoadedPolicy) -> str | None:
        """What the account's credential is known by now (its server and secret, as a digest:
        see :func:`~gateway.services.identities.credential_key`); None when it has none. Raises
        as :meth:`adapter_for` does when the credential cannot be read."""
        return self._made(loaded).credential

    def _made(self, loaded: LoadedPolicy) -> _Made:
        policy = loaded.policy
        secret = profile_secret = ""
        oauth1 = policy.profile.oauth1 if policy.profile.byline else None
        try:
            if policy.credentials:
                secret = self._secret(policy.credentials)
            if oauth1:
                profile_secret = self._secret(oauth1)
        except CredentialBeingWritten as exc:
            raise BylineError(Code.UNAVAILABLE, str(exc), retry_after=SETTLE_SECONDS) from None
        except CredentialError as exc:
            raise BylineError(Code.UNAVAILABLE, str(exc)) from None
        key = loaded.sha256 + hashlib.sha256(f"{secret}\n{profile_secret}".encode()).hexdigest()
        made = self._cache.get(policy.account)
        if made is None or made.key != key:
            credential = credential_key(policy.platform, platform_server(policy), secret) if secret else None
            before = made
            made = self._cache[policy.account] = _Made(key, loaded.sha256, self._make(loaded, secret, profile_secret),
                                                       credential)
            if before is not None and before.credential != credential:
                self._learning.forget({m.credential for m in self._cache.values() if m.credential})
        return made

    def _secret(self, reference: str) -> str:
        if reference.startswith("file:"):
            return self._files.read(reference, self.rules)
        return resolve_credential(reference, rules=self.rules)

    def _make(self, loaded: LoadedPolicy, secret: str, profile_secret: str = "") -> Adapter:
        policy = loaded.policy
        options = {
            k: v for k, v in (("instance", policy.instance), ("pds", policy.pds), ("api", policy.api)) if v
        }
        config = AdapterConfig(
            account=policy.account, handle=policy.handle, secret=secret, options=options,
            session=self.session, profile_secret=profile_secret,
        )
        if policy.platform == "sandbox":
            return SandboxAdapter(config, self.sandbox, base_url=self.public_url)
        adapter: Adapter = _adapter_class(policy.platform)(config)
        return adapter

    def mark(self, account: str, problem: str | None) -> None:
        """Record that an account's credential stopped (or started again) working."""
        if problem is None:
            self.unhealthy.pop(account, None)
        else:
            self.unhealthy[account] = problem

    async def check_scopes(self, loaded: LoadedPolicy) -> str | None:
        """Ask the platform, without changing anything, whether the account's credential can do
        what Byline needs (on Mastodon: its token's scopes, ``MastodonAdapter.scope_check``), and
        show it on the account's health: a credential refused, or one that cannot publish, holds
        the account's posts (``unhealthy``) until a check finds it mended; one that lacks only
        what a recovery needs is a warning (``scope_warnings``). Returns what holds the posts, or
        None. A platform that does not answer says nothing of the credential: raises
        ``AdapterError``, the health left as it was; an unreadable credential raises ``BylineError``."""
        account = loaded.policy.account
        adapter = self.adapter_for(loaded)
        if not isinstance(adapter, ScopeChecking):
            return None
        try:
            found = await adapter.scope_check()
        except AdapterError as exc:
            if not exc.auth_failed:
                raise
            found = ScopeCheck(blocking=exc.message)
        if found.warning is None:
            self.scope_warnings.pop(account, None)
        else:
            self.scope_warnings[account] = found.warning
        mine = self.scope_held(account)
        self._scope_marked.pop(account, None)
        if found.blocking is not None and (mine or account not in self.unhealthy):
            # Another problem already holding the account (a shared platform account) is kept.
            self.unhealthy[account] = self._scope_marked[account] = found.blocking
        elif found.blocking is None and mine:
            del self.unhealthy[account]
        return found.blocking

    def forget_scopes(self, in_force: Mapping[str, LoadedPolicy]) -> None:
        """Take back what :meth:`check_scopes` said of accounts no longer in force."""
        for gone in [name for name in {*self.scope_warnings, *self._scope_marked} if name not in in_force]:
            self.scope_warnings.pop(gone, None)
            if self.scope_held(gone):
                del self.unhealthy[gone]
            self._scope_marked.pop(gone, None)

    def scope_held(self, account: str) -> bool:
        """Whether the account is unhealthy for what :meth:`check_scopes` found."""
        marked = self._scope_marked.get(account)
        return marked is not None and self.unhealthy.get(account) == marked

    # -- one platform account, one policy file ---------------------------------------------------

    async def cleared(self, loaded: LoadedPolicy, *, adapter: Adapter | None = None, fresh: bool = False) -> None:
        """Return when the account may publish as far as other policy files go: no other
        account in force publishes as the platform account its credential is for.

        Who a credential is for is asked of the platform once per credential and process
        (:class:`~gateway.services.identities.Learning`), for every account off the sandbox: its
        answer must be the account the file's ``handle`` names (:meth:`_named`), and no other
        account in force (another account on Mastodon, at any address, on Bluesky, on X; a
        sandbox account never is) may be the same one. Found
        clear, an account is taken at its word while its credential, the policies and the
        credentials of its group (read again at most once a second for the whole group, see
        :meth:`_credentials`) stay the same, so a post then costs a lookup. ``adapter``: the one
        :meth:`adapter_for` has just given the caller, whose reading of the credential is then
        not done again. ``fresh`` (the probe of an account whose credential failed) asks the
        platform about the account's own credential again.

        Raises :class:`AccountHeld`, marking the account unhealthy, when its credential is for
        another platform account than its file names, when another account's
        credential is for the same platform account (and marks that one too), or when the
        platform has not yet said who another credential on the same server is for: the
        posts wait rather than risk one going out under the wrong policy. Raises
        ``AdapterError`` as a publication would when the platform refuses or does not answer
        for the account's own credential, and ``BylineError`` when it cannot be read. Another
        account whose credential the platform refuses, or which cannot be read, publishes as
        nobody and holds none back.

        What the policies in force or another account's check find while this one waits for
        its platform is not missed: should the policies change meanwhile, or another account be
        found to share a platform account, the account is looked at again before this returns.
        A publication calls it again right before the request that publishes (``OutboundPost.ready``)."""
        while True:
            seen = (self.policies.policies if self.policies is not None else None, self._holds)
            await self._check(loaded, adapter=adapter, fresh=fresh)
            if seen == (self.policies.policies if self.policies is not None else None, self._holds):
                return
            fresh = False  # its own credential was just asked about

    async def _check(self, loaded: LoadedPolicy, *, adapter: Adapter | None, fresh: bool) -> None:
        """:meth:`cleared`, once, with the policies in force as they are when it starts."""
        policy, account = loaded.policy, loaded.policy.account
        if self.policies is None:
            return
        peers = self._index(self.policies.policies)
        group = peers.group_of.get(account) or _group(policy)
        if group is None:
            return  # a sandbox account
        made = self._cache.get(account)
        if made is None or made.adapter is not adapter or made.sha256 != loaded.sha256:
            made = self._made(loaded)
        now = now_micros(self.clock)
        found = (made.credential, peers.generation, self._credentials(group, peers, now))
        if not fresh and self._verdicts.get(account) == found:
            return
        others = [peers.policies[name] for name, _ in peers.groups.get(group, ()) if name != account]
        if made.credential is None:
            self._clear(account, found)
            return
        own = await self._identity(loaded, made, now=now, fresh=fresh)
        shared: list[str] = []
        waiting: tuple[str, AdapterError] | None = None
        uncompared: str | None = None
        for other, learned in await self._others(others, now=now):
            if isinstance(learned, PlatformIdentity) and own.same_account(learned):
                shared.append(other.policy.account)
            elif isinstance(learned, PlatformIdentity) and not own.comparable(learned) and uncompared is None:
                uncompared = other.policy.account
            elif (isinstance(learned, Unreached) and waiting is None
                  and (policy.platform != "bluesky" or platform_server(other.policy) == platform_server(policy))):
                # Its server may be ours (on Mastodon any address may be another name of our
                # instance): it may well be our account, and our posts wait for the answer. A
                # Bluesky account on another PDS is compared once that PDS answers.
                waiting = (other.policy.account, learned.error)
        name = carries(policy.platform).name
        if shared:
            problem = self._hold_shared(account, shared, platform=name, handle=own.handle)
            raise AccountHeld(problem, public=SHARED_PUBLIC)
        if waiting is None and uncompared is not None:
            self._release(account)
            problem = uncompared_problem(account, uncompared, platform=name)
            self._mark_here(account, problem, waits_on=uncompared)
            logger.warning("platform_account_uncompared", account=account, other=uncompared)
            raise AccountHeld(problem, public=UNCOMPARED_PUBLIC)
        if waiting is not None:
            self._release(account)
            problem = waiting_problem(account, waiting[0], platform=name, error=waiting[1])
            self._mark_here(account, problem, waits_on=waiting[0])
            logger.warning("platform_account_unknown", account=account, other=waiting[0], error=waiting[1].message)
            raise AccountHeld(problem, public=WAITING_PUBLIC)
        await self._named(loaded, own, platform=name)
        self._clear(account, found)

    def _index(self, policies: Mapping[str, LoadedPolicy]) -> _Peers:
        """The policies in force, grouped (see :class:`_Peers`); worked out again only when the
        policies are another mapping (a reread puts a new one in force each time)."""
        known = self._peers
        if known is not None and known.policies is policies:
            return known
        groups: dict[tuple[str, ...], list[tuple[str, str]]] = {}
        group_of: dict[str, tuple[str, ...]] = {}
        for name, loaded in policies.items():
            group = _group(loaded.policy)
            if group is not None:
                groups.setdefault(group, []).append((name, loaded.sha256))
                group_of[name] = group
        found = {group: tuple(sorted(members)) for group, members in groups.items()}
        generation = 0 if known is None else known.generation + (known.groups != found)
        self._peers = _Peers(policies=policies, groups=found, group_of=group_of, generation=generation)
        return self._peers

    def _credentials(self, group: tuple[str, ...], peers: _Peers, now: Micros) -> int:
        """The generation of ``group``'s credentials: read again (each account's, as
        :meth:`adapter_for` reads it) when last read under other peers or ``_CREDENTIALS_KEPT``
        ago, and moved on when they differ from what was read before."""
        read = self._read.get(group)
        if read is not None and read.peers == peers.generation and 0 <= now - read.at < _CREDENTIALS_KEPT:
            return read.generation
        known: list[str | None] = []
        for name, _ in peers.groups.get(group, ()):
            try:
                known.append(self._made(peers.policies[name]).credential)
            except BylineError:
                known.append(None)  # unreadable: it publishes nothing, and holds nothing back
        generation = 0 if read is None else read.generation + (read.known != tuple(known))
        self._read[group] = _Credentials(at=now, peers=peers.generation, known=tuple(known), generation=generation)
        return generation

    async def _identity(self, loaded: LoadedPolicy, made: _Made, *, now: Micros, fresh: bool) -> PlatformIdentity:
        """Who the account's own credential is for; the platform's error when it did not say."""
        assert made.credential is not None
        learned = None if fresh else self._learning.known.get(made.credential)
        if not isinstance(learned, PlatformIdentity):
            learned = await self._learning.ask(made.credential, loaded.policy, platform_server(loaded.policy),
                                               made.adapter, now=now)
        if isinstance(learned, PlatformIdentity):
            return learned
        raise learned.error

    async def _others(self, others: list[LoadedPolicy], *, now: Micros) -> list[tuple[LoadedPolicy, Learned]]:
        """Who the other accounts' credentials are for: as known, or asked of their platforms
        together (again, for one the platform did not say of a while ago). A credential that
        cannot be read is left out: nothing publishes with it (its own posts say why)."""
        found: list[tuple[LoadedPolicy, Learned]] = []
        asking: list[tuple[LoadedPolicy, str, Adapter]] = []
        for other in others:
            try:
                made = self._made(other)
            except BylineError:
                continue
            if made.credential is None:
                continue
            learned = self._learning.known.get(made.credential)
            if learned is None or (isinstance(learned, Unreached) and not 0 <= now - learned.at < UNREACHED_WAIT):
                asking.append((other, made.credential, made.adapter))
            else:
                found.append((other, learned))
        if asking:
            answers = await asyncio.gather(*(
                self._learning.ask(credential, other.policy, platform_server(other.policy), adapter, now=now)
                for other, credential, adapter in asking
            ))
            found += zip((other for other, _, _ in asking), answers, strict=True)
        return found

    async def _named(self, loaded: LoadedPolicy, own: PlatformIdentity, *, platform: str) -> None:
        """Raise :class:`AccountHeld`, marking the account unhealthy, where its credential is for
        another platform account than the one its file names: a token swapped for another
        account's on the same server would otherwise publish there what was approved, and
        announced, for the account the file names. A file that names no handle is held to the
        account it was last found publishing as, kept in the database (:meth:`_kept`), so that
        a swap across a restart, or on another replica, is caught too: another answer is another
        voice, until its admin writes in the file the handle it is to publish as."""
        policy, account = loaded.policy, loaded.policy.account
        named = names(policy, own)
        before = ""
        if named is not False:
            then = await self._kept(account, own, named=named is True)
            if then is None:
                return
            before = then.handle
        expected = policy.handle.strip() or None
        self._release(account)
        problem = not_named_problem(account, platform=platform, named=expected, answered=own.handle, before=before)
        self._mark_here(account, problem)
        logger.warning("platform_account_not_named", account=account, platform=platform, named=expected,
                       before=before or None, answered=own.handle)
        raise AccountHeld(problem, public=NOT_NAMED_PUBLIC)

    async def _kept(self, account: str, own: PlatformIdentity, *, named: bool) -> PlatformIdentity | None:
        """The platform account ``account`` was last found publishing as, where ``own`` (who its
        credential is for now) is another; None where it is the same, and where none was kept
        yet (``own`` is kept: the first found clear). ``named``: the file's handle names
        ``own``, which is kept in place of any other (the admin's word that the account moved).
        Kept where every gateway on the database reads it: no credential, only what the
        platform publicly knows the account by. An account whose kept platform account cannot
        be compared with ``own`` (a server that gives no profile address, asked at another
        address) keeps ``own``, as it cannot tell."""
        if self.db is None:
            return None
        spoke = Spoke(keys=own.keys, handle=own.handle, asked_at=own.asked_at, partial=own.partial)
        async with self.db.read() as txn:
            kept = await spoke_as(txn, account)
        if kept == spoke:
            return None
        at = now_micros(self.clock)
        async with self.db.write() as txn:
            if kept is None and not named:
                kept = await first_spoke_as(txn, account, spoke, at=at)
                if kept == spoke:
                    return None
            then = None if kept is None else PlatformIdentity(keys=kept.keys, handle=kept.handle,
                                                               asked_at=kept.asked_at, partial=kept.partial)
            if named or then is None or not then.comparable(own) or then.same_account(own):
                # Named by its file, or the same account (renamed on its platform, say).
                await now_spoke_as(txn, account, spoke, at=at)
                if then is not None and not then.same_account(own):
                    logger.info("platform_account_moved", account=account, before=then.handle, now=own.handle)
                return None
            return then

    def _hold_shared(self, account: str, shared: list[str], *, platform: str, handle: str) -> str:
        """Hold ``account`` and the accounts found to share its platform account (no longer
        those it was found to share it with before, and no more); its problem."""
        together = {account, *shared}
        self._holds += 1
        for gone in self._shared.get(account, (set(), "", ""))[0] - together:
            self._part(account, gone)
        for name in together:
            before = set() if name == account else self._shared.get(name, (set(), "", ""))[0]
            others = (before | together) - {name}
            self._shared[name] = (others, platform, handle)
            self._verdicts.pop(name, None)
            self._mark_here(name, shared_problem(name, sorted(others), platform=platform, handle=handle))
        logger.warning("platform_account_shared", accounts=sorted(together), platform=platform, handle=handle)
        return self.unhealthy[account]

    def _clear(self, account: str, verdict: tuple[str | None, int, int]) -> None:
        """``account`` shares its platform account with no other: taken at its word while
        ``verdict`` (its credential, the peers' and its group's credentials' generations) holds,
        and the accounts held for sharing it with this one are held no more for that."""
        self._verdicts[account] = verdict
        self._release(account)
        self._unmark_here(account)

    def _release(self, account: str) -> None:
        """``account`` was found to share its platform account with none of those it once did."""
        for other in list(self._shared.get(account, (set(), "", ""))[0]):
            self._part(account, other)
        self._shared.pop(account, None)

    def _part(self, account: str, other: str) -> None:
        """``account`` and ``other`` are not one platform account (any more): each is held only
        for the others it shares one with, if any."""
        for name, gone in ((account, other), (other, account)):
            held = self._shared.get(name)
            if held is None:
                continue
            held[0].discard(gone)
            if held[0]:
                self._mark_here(name, shared_problem(name, sorted(held[0]), platform=held[1], handle=held[2]))
            else:
                del self._shared[name]
                self._unmark_here(name)
                logger.info("platform_account_no_longer_shared", account=name)

    def forget_gone(self) -> None:
        """Take back what :meth:`cleared` found of accounts no longer in force (a policy file
        removed): an account held for sharing its platform account only with them is held no
        more, and shows healthy at once, not at its next post; so does one held only until the
        platform said whose a removed account's credential is. Cheap when the policies in force
        are those it last looked at (the publisher calls it at each tick)."""
        policies = self.policies.policies if self.policies is not None else None
        if policies is None or policies is self._in_force:
            return
        self._in_force = policies
        for gone in [name for name in self._set_here if name not in policies]:
            self._release(gone)
            self._unmark_here(gone)
        for gone in [name for name in self._shared if name not in policies]:
            self._release(gone)
        for account in [name for name, other in self._waits_on.items() if other not in policies]:
            self._unmark_here(account)

    def held_here(self, account: str) -> bool:
        """Whether the account is unhealthy for what :meth:`cleared` found (another account's
        credential), not for its own credential: looking again needs no new question about it."""
        problem = self._set_here.get(account)
        return problem is not None and self.unhealthy.get(account) == problem

    def _mark_here(self, account: str, problem: str, *, waits_on: str | None = None) -> None:
        self._set_here[account] = problem
        if waits_on is None:
            self._waits_on.pop(account, None)
        else:
            self._waits_on[account] = waits_on
        self.mark(account, problem)

    def _unmark_here(self, account: str) -> None:
        self._waits_on.pop(account, None)
        problem = self._set_here.pop(account, None)
        if problem is not None and self.unhealthy.get(account) == problem:
            self.mark(account, None)

"""Adapters per account, and the credentials they use: resolved here, never shown anywhere.

A policy names its credential by reference (``env:NAME`` or ``file:PATH``); the secret is read
when an adapter is made and handed to the adapter only. Errors name the reference, not the
value.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from adapters.base import Adapter, AdapterConfig, Carries
from adapters.sandbox import SandboxAdapter, SandboxStore
from gateway.errors import BylineError, Code
from gateway.policy.credentials import CredentialRules
from gateway.policy.loader import LoadedPolicy

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
    adapter_class: Any = SandboxAdapter if platform == "sandbox" else _adapter_class(platform)
    found: Carries = adapter_class.carries
    return found


def _adapter_class(platform: str) -> Any:
    module_name, _, cls_name = ADAPTERS[platform].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)


class CredentialError(Exception):
    """A credential reference that cannot be resolved; the message names only the reference."""


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
            raise CredentialError(f"credential {reference} is empty")
        return value
    raise CredentialError(f"credential reference {reference} is neither env: nor file:")


MAX_CREDENTIAL_BYTES = 64 * 1024
"""The most a credential file may hold: a token, an app password or OAuth keys, with room to spare."""


def _read_small_file(reference: str, path: Path) -> str:
    """A credential file's text: a regular file of at most ``MAX_CREDENTIAL_BYTES``, opened
    without waiting, so that a FIFO or a device put in the secrets directory is refused at once
    rather than blocking the event loop for ever (or reading without end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
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
    """

    _known: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)

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
        value = resolve_credential(reference, rules=rules)
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLED_NS:
            self._known[reference] = (signature, value)
        else:
            self._known.pop(reference, None)
        return value


@dataclass
class Platforms:
    """Makes and caches one adapter per account and policy version; tracks account health."""

    sandbox: SandboxStore
    public_url: str
    rules: CredentialRules
    session: aiohttp.ClientSession | None = None
    unhealthy: dict[str, str] = field(default_factory=dict)
    profile_problems: dict[str, str] = field(default_factory=dict)
    """Accounts whose profile byline a platform refused, with its reason: shown, but their
    posts go out as usual (``unhealthy`` holds them)."""
    _cache: dict[tuple[str, str], Adapter] = field(default_factory=dict)
    _files: SecretFiles = field(default_factory=SecretFiles)

    def adapter_for(self, loaded: LoadedPolicy) -> Adapter:
        """The adapter for an account under its policy in force and its current credential.

        The credential is read again on every call (an environment lookup or a small file, see
        :class:`SecretFiles`), so an admin who rotates a token fixes a broken account without a
        restart.
        """
        secret = profile_secret = ""
        oauth1 = loaded.policy.profile.oauth1 if loaded.policy.profile.byline else None
        try:
            if loaded.policy.credentials:
                secret = self._secret(loaded.policy.credentials)
            if oauth1:
                profile_secret = self._secret(oauth1)
        except CredentialError as exc:
            raise BylineError(Code.UNAVAILABLE, str(exc)) from None
        key = (loaded.policy.account,
               loaded.sha256 + hashlib.sha256(f"{secret}\n{profile_secret}".encode()).hexdigest())
        adapter = self._cache.get(key)
        if adapter is None:
            adapter = self._make(loaded, secret, profile_secret)
            self._cache = {k: v for k, v in self._cache.items() if k[0] != key[0]}
            self._cache[key] = adapter
        return adapter

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

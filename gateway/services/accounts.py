"""Who may see which account: the one place that decides it, for every surface.

A person sees the accounts their policies give them a role on; a token bound to one account
(an app password, an app's OAuth token) narrows that to the one account. Admins
(``BYLINE_ADMINS``) also see every refused policy file; auditors (``BYLINE_AUDITORS``) read
every account's words in the log, but act on none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import BylineError, Code
from gateway.policy.engine import Role
from gateway.policy.loader import LoadedPolicy, PolicyRegistry
from gateway.services.authorization import visible_accounts
from gateway.services.platforms import Platforms
from gateway.services.policies import PolicyService
from gateway.services.posts import Caller


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountView:
    """One account as the people on it see it."""

    name: str
    loaded: LoadedPolicy
    roles: frozenset[Role]
    problem: str | None
    """Why the account's platform is unhealthy now, or None."""
    warning: str | None = None
    """What the account's credential cannot do though its posts go out (a scope a recovery
    needs), or None."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Reader:
    """Whose unpublished words a reader of the log may see: their accounts', or, for an
    auditor, everyone's."""

    member_of: frozenset[str] = frozenset()
    auditor: bool = False


@dataclass(frozen=True, kw_only=True)
class AccountService:
    """Answers what a caller may see of the accounts, their policies and refused files."""

    policies: PolicyRegistry
    policy_files: PolicyService
    platforms: Platforms
    admins: frozenset[str]
    auditors: frozenset[str]

    def listing(self, caller: Caller) -> list[AccountView]:
        """The accounts the caller has a role on, by name."""
        unhealthy, warned = self.platforms.unhealthy, self.platforms.scope_warnings
        return [
            AccountView(name=name, loaded=self.policies.policies[name], roles=held, problem=unhealthy.get(name),
                        warning=warned.get(name))
            for name, held in visible_accounts(self.policies, caller).items()
        ]

    def policy(self, caller: Caller, account: str) -> tuple[LoadedPolicy, list[dict[str, Any]]]:
        """The policy in force for an account the caller has a role on, with the problems of a
        refused newer version of its file; 404 for no policy, 403 for no role."""
        loaded = self.policies.get(account)
        if loaded is None:
            raise BylineError(Code.UNKNOWN_ACCOUNT, f"no account named {account!r}")
        if account not in visible_accounts(self.policies, caller):
            raise BylineError(Code.FORBIDDEN, f"this token has no role on {account}")
        refused = self.policies.errors.get(loaded.path.name, [])
        return loaded, [issue.to_json() for issue in refused]

    def refused(self, caller: Caller) -> list[dict[str, Any]]:
        """Refused policy files' problems: all of them for an admin (with a token of their own,
        not bound to one account), and for anyone else those of the accounts they have a role on
        by the policy still in force."""
        if caller.account is None and caller.user in self.admins:
            return self.policy_files.errors()
        mine = visible_accounts(self.policies, caller)
        return self.policy_files.errors(lambda file: Path(file).stem in mine)

    def reader(self, caller: Caller | None) -> Reader:
        """What an anonymous or signed-in reader of the log may see of unpublished words."""
        if caller is None:
            return Reader()
        return Reader(member_of=frozenset(visible_accounts(self.policies, caller)),
                      auditor=caller.user in self.auditors and caller.account is None)

"""Reading policy files: strict YAML, errors that name the file, line and key.

``PolicyRegistry`` holds the policies in force. ``reload`` reads the directory again: a valid
changed file replaces its account's policy, an invalid one is refused and the old policy stays
in force, with the error kept for the API and the logs.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import hmac
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from gateway.policy.credentials import CredentialRules
from gateway.policy.files import SWAPPED, is_swapped, open_unlinked
from gateway.policy.models import DEFAULT_POLICY_DIR, Policy, server_address

MAX_POLICY_BYTES = 256 * 1024
"""The largest policy file read: real ones are a few KiB; past this a file is refused unread."""
MAX_POLICY_NODES = 100_000
"""The most YAML values a policy file may hold once its aliases are expanded: a "billion laughs"
file of a few hundred bytes would otherwise be walked, built and validated as 10^8 values."""


_KEYED = re.compile(r"^([a-z_]+(?:\.[a-z_0-9]+)*): (.+)$", re.DOTALL)


@dataclass(frozen=True, kw_only=True)
class PolicyIssue:
    """One thing wrong with one policy file."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        """The issue as the API shows it."""
        return {"file": self.file, "line": self.line, "key": self.key, "message": self.message}


class PolicyFileError(Exception):
    """A policy file that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        super().__init__("; ".join(str(i) for i in issues))
        self.issues = list(issues)


@dataclass(frozen=True, kw_only=True)
class LoadedPolicy:
    """A policy with the file it came from and that file's SHA-256."""

    policy: Policy
    path: Path
    sha256: str
    text: str = field(default="", repr=False, compare=False)
    """The file's text, as recorded with each version (``gateway.storage.policies``)."""


def _child(node: yaml.Node, key: object) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return v  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]  # type: ignore[no-any-return]
    return None


def _key_line(node: yaml.Node, loc: Iterable[object]) -> int | None:
    """The line of the deepest YAML node on the error's path (1-based)."""
    current: yaml.Node = node
    line: int | None = node.start_mark.line + 1
    for part in loc:
        if isinstance(current, yaml.MappingNode):
            for k, v in current.value:
                if k.value == part:
                    line = k.start_mark.line + 1
                    current = v
                    break
            else:
                return line
        else:
            nxt = _child(current, part)
            if nxt is None:
                return line
            current = nxt
            line = current.start_mark.line + 1
    return line


def _duplicate_keys(node: yaml.Node, name: str, seen_nodes: set[int] | None = None) -> list[PolicyIssue]:
    """Keys given twice in one mapping. A node an alias points at again is looked at once."""
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return []
    seen_nodes.add(id(node))
    issues: list[PolicyIssue] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for k, v in node.value:
            if k.value in seen:
                issues.append(
                    PolicyIssue(file=name, line=k.start_mark.line + 1, key=str(k.value),
                                message="key appears twice")
                )
            seen.add(k.value)
            issues += _duplicate_keys(v, name, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            issues += _duplicate_keys(item, name, seen_nodes)
    return issues


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values ``node`` stands for with every alias expanded, each node counted once
    (``sizes``), so this takes time in the file's size, not in what its aliases expand to.
    Stops at ``MAX_POLICY_NODES + 1``; a node that contains itself counts as past the limit."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    if id(node) in open_nodes:
        return MAX_POLICY_NODES + 1
    open_nodes.add(id(node))
    total = 1
    if isinstance(node, yaml.MappingNode):
        children: list[yaml.Node] = [part for pair in node.value for part in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    else:
        children = []
    for child in children:
        total = min(total + _expanded_size(child, sizes, open_nodes), MAX_POLICY_NODES + 1)
        if total > MAX_POLICY_NODES:
            break
    open_nodes.discard(id(node))
    sizes[id(node)] = total
    return total


def _document(text: str, *, name: str) -> tuple[yaml.Node, dict[str, Any]]:
    """A policy file's text as YAML (its node, for lines, and its mapping), bounded first; a
    ``PolicyFileError`` for a text too large, not YAML, or not a mapping."""
    # Bounds first, then YAML: the text's size, then what its aliases expand to, before a value
    # is built from it. A refused file costs a read and a walk of its nodes, each once.
    if len(text) > MAX_POLICY_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise PolicyFileError([_too_large(name, len(text.encode("utf-8", "surrogatepass")))])
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None and _expanded_size(node, {}, set()) > MAX_POLICY_NODES:
                raise PolicyFileError([PolicyIssue(
                    file=name, line=None, key="",
                    message=f"holds more than {MAX_POLICY_NODES} values with its aliases (*name) expanded, or an "
                            "alias inside itself: no policy needs that many",
                )])
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        issue = PolicyIssue(file=name, line=line, key="", message=f"not valid YAML: {problem}")
        raise PolicyFileError([issue]) from None
    except (ValueError, OverflowError, RecursionError) as exc:
        # PyYAML lets these through its own errors: a \U escape past Unicode, nesting too deep.
        issue = PolicyIssue(file=name, line=None, key="", message=f"not valid YAML: {str(exc)[:200]}")
        raise PolicyFileError([issue]) from None
    if node is None or not isinstance(data, dict):
        raise PolicyFileError([PolicyIssue(file=name, line=1, key="", message="expected a mapping of keys")])
    return node, data


def parse_policy(
    text: str, *, name: str, expected_account: str | None, rules: CredentialRules | None = None
) -> Policy:
    """Validate one policy file's text; raise ``PolicyFileError`` listing every problem.

    ``rules`` say where a ``file:`` credential may be and where it may be sent; without them,
    the secrets directory is the default one and only ``https://`` addresses are accepted.
    """
    rules = rules or CredentialRules(policy_dir=DEFAULT_POLICY_DIR)
    node, data = _document(text, name=name)
    issues = _duplicate_keys(node, name)
    if expected_account is not None and data.get("account") != expected_account:
        issues.append(
            PolicyIssue(file=name, line=_key_line(node, ["account"]), key="account",
                        message=f"must equal the file name: {expected_account}")
        )
    try:
        policy = Policy.model_validate(data, context={"credential_rules": rules})
    except ValidationError as exc:
        for err in exc.errors():
            loc: tuple[object, ...] = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if not loc and (named := _KEYED.match(msg)):
                # A whole-file rule names the key it is about: point at that key's line.
                loc = tuple(int(p) if p.isdigit() else p for p in named.group(1).split("."))
                msg = named.group(2)
            key = ".".join(str(p) for p in loc)
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            issues.append(PolicyIssue(file=name, line=_key_line(node, loc), key=key, message=msg))
        raise PolicyFileError(issues) from None
    if issues:
        raise PolicyFileError(issues)
    return policy


def _too_large(name: str, size: int) -> PolicyIssue:
    return PolicyIssue(file=name, line=None, key="",
                       message=f"is {size} bytes, over the limit of {MAX_POLICY_BYTES} for a policy file")


def _unreadable(name: str, why: str) -> PolicyFileError:
    return PolicyFileError([PolicyIssue(file=name, line=None, key="", message=f"cannot read: {why}")])


def read_policy_bytes(path: Path, *, real: Path) -> bytes:
    """A policy file's bytes, read only up to the size limit (``PolicyFileError`` past it, for
    anything but a regular file, and for a file that cannot be opened, said without its path).

    ``real`` is where :func:`check_inside` found ``path`` to lead: the file is opened along it,
    following no link (:func:`gateway.policy.files.open_unlinked`), so a link swapped between
    that check and this read (``brand.yaml`` pointed at a file outside the directory) is not
    followed there. Opened without blocking and looked at before it is read: a link to a named
    pipe (or a device) inside the directory would otherwise block the reader for good, and with
    it every later reread of the directory, so no admin's change would take effect again."""
    try:
        fd = open_unlinked(real)
    except OSError as exc:
        raise _unreadable(path.name, SWAPPED if is_swapped(exc) else exc.strerror or type(exc).__name__) from None
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(status.st_mode) else "a pipe, socket or device"
        raise _unreadable(path.name, f"not a regular file ({kind})")
    with os.fdopen(fd, "rb") as file:
        try:
            raw = file.read(MAX_POLICY_BYTES + 1)
        except OSError as exc:
            raise _unreadable(path.name, exc.strerror or type(exc).__name__) from None
        if len(raw) > MAX_POLICY_BYTES:
            raise PolicyFileError([_too_large(path.name, max(status.st_size, len(raw)))])
    return raw


def load_bytes(path: Path, raw: bytes, *, rules: CredentialRules | None = None) -> LoadedPolicy:
    """Validate the bytes read from ``path``, an ``ACCOUNT.yaml`` file (by default under the
    rules of its directory)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyFileError([PolicyIssue(file=path.name, line=None, key="", message=f"cannot read: {exc}")]) from None
    rules = rules or CredentialRules(policy_dir=path.parent)
    policy = parse_policy(text, name=path.name, expected_account=path.stem, rules=rules)
    return LoadedPolicy(policy=policy, path=path, sha256=hashlib.sha256(raw).hexdigest(), text=text)


def check_inside(path: Path, directory: Path) -> Path:
    """Where a policy file leads, after symlinks, to be read there (:func:`read_policy_bytes`);
    refused (``PolicyFileError``) outside its directory's real path: a link to a file elsewhere
    (another tenant's, a mounted volume's) would put a policy in force that the admins of this
    directory never wrote. Links that stay inside, as a Kubernetes ConfigMap's do
    (``brand.yaml -> ..data/brand.yaml``), are followed."""
    try:
        real = path.resolve(strict=True)
        inside = real.is_relative_to(directory.resolve(strict=True))
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop, before Python 3.13
        # Said without the paths: where a link leads is the server's, not for the pages that
        # show refused files to the account's people.
        why = ("a loop of links" if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP
               else f"a link to nothing ({exc.strerror})" if path.is_symlink() and exc.strerror
               else exc.strerror or type(exc).__name__)
        raise PolicyFileError([PolicyIssue(file=path.name, line=None, key="", message=f"cannot read: {why}")]) from None
    if not inside:
        raise PolicyFileError([PolicyIssue(
            file=path.name, line=None, key="",
            message="is a link to a file outside the policy directory: refused; put the policy itself in the directory",
        )])
    return real


def load_file(path: Path, *, rules: CredentialRules | None = None) -> LoadedPolicy:
    """Read and validate one ``ACCOUNT.yaml`` file (by default under the rules of its directory)."""
    return load_bytes(path, read_policy_bytes(path, real=check_inside(path, path.parent)), rules=rules)


_endpoint = server_address
"""A platform address as one server (:func:`gateway.policy.models.server_address`)."""


def platform_server(policy: Policy) -> str:
    """The server a policy's credential is sent to, as one address (:func:`_endpoint`): its
    Mastodon instance, its Bluesky PDS, its X API address ("" for X's own, and for the sandbox)."""
    address = {"mastodon": policy.instance, "bluesky": policy.pds, "x": policy.api}.get(policy.platform)
    return _endpoint(address) if address else ""


def written_server(text: str, *, name: str) -> str | None:
    """The Mastodon instance a policy file's text names, as :func:`platform_server` writes it,
    read without validating the rest; None for another platform or none named. For a version
    recorded once (validated then) that this gateway's settings now refuse (its credential's
    reference, say): where its posts went out is still known. ``PolicyFileError`` for a text
    that is no YAML mapping."""
    _, data = _document(text, name=name)
    instance = data.get("instance")
    if data.get("platform") != "mastodon" or not isinstance(instance, str):
        return None
    try:
        return _endpoint(instance) if urlsplit(instance).hostname else None
    except ValueError:  # a port out of range: no address a post went out to
        return None


_TOKEN_KEY: Final = secrets.token_bytes(32)
"""This process's own key for comparing the tokens ``env:`` names hold (:func:`_token_account`)
without keeping them: made afresh at every start, never stored or shown."""


@functools.lru_cache(maxsize=1024)  # pure, as _endpoint
def _reference(credentials: str, directory: Path) -> str:
    """A credential reference as the secret it names: a ``file:`` path made absolute from the
    policy directory and normalized (``file:secrets/a`` and ``file:./secrets/a`` are one)."""
    kind, _, target = credentials.partition(":")
    if kind != "file":
        return credentials
    return "file:" + os.path.normpath(directory / target)


def _named_accounts(policy: Policy, directory: Path) -> dict[tuple[str, ...], str]:
    """What names the real account ``policy`` publishes as, as written, each with words for the admin.

    Two policies that share one of these speak as one platform account: same platform, same
    server (defaults applied) and same credential; on Bluesky also the same handle on the same
    PDS (the handle is what signs in); on X the same credential (a token is one account's,
    whatever the API address)."""
    if policy.credentials is None:
        return {}
    reference = _reference(policy.credentials, directory)
    if policy.platform == "x":
        return {("x", "credentials", reference): f"credentials {policy.credentials}"}
    server = policy.instance if policy.platform == "mastodon" else policy.pds
    assert server is not None  # a policy for Mastodon or Bluesky names its server (``Policy``)
    endpoint = _endpoint(server)
    found: dict[tuple[str, ...], str] = {
        (policy.platform, endpoint, "credentials", reference): f"credentials {policy.credentials} on {endpoint}"
    }
    handle = policy.handle.strip().removeprefix("@").lower()
    if policy.platform == "bluesky" and handle:
        found[("bluesky", endpoint, "handle", handle)] = f"handle @{handle} on {endpoint}"
    return found


def _token_account(policy: Policy) -> dict[tuple[str, ...], str]:
    """The token an ``env:`` reference holds, as the account it names: two names holding one
    token (``env:BRAND_TOKEN`` and ``env:QUICK_TOKEN``, set alike) speak as one account, on one
    server, or on X at any address, as one name would. Only a digest of it under this process's
    own key is kept, for the comparison; the words name the reference, never the token. An
    unset name names no account here (the policy fails at its first use instead)."""
    kind, _, name = (policy.credentials or "").partition(":")
    token = os.environ.get(name) if kind == "env" else None
    if not token:
        return {}
    digest = hmac.new(_TOKEN_KEY, token.encode("utf-8"), hashlib.sha256).hexdigest()
    if policy.platform == "x":
        return {("x", "token", digest): f"the token {policy.credentials} holds"}
    server = policy.instance if policy.platform == "mastodon" else policy.pds
    assert server is not None  # a policy for Mastodon or Bluesky names its server (``Policy``)
    endpoint = _endpoint(server)
    return {(policy.platform, endpoint, "token", digest): f"the token {policy.credentials} holds, on {endpoint}"}


def platform_accounts(policy: Policy, directory: Path) -> dict[tuple[str, ...], str]:
    """What names the real account ``policy`` publishes as, each with words for the admin:
    as written (:func:`_named_accounts`), and as the token an ``env:`` name holds
    (:func:`_token_account`). A sandbox account is its own, by name."""
    if policy.platform == "sandbox":
        return {}
    return {**_named_accounts(policy, directory), **_token_account(policy)}


def shared_accounts(
    proposed: Mapping[str, LoadedPolicy], in_force: Mapping[str, LoadedPolicy], *, directory: Path,
) -> dict[str, PolicyIssue]:
    """The accounts of ``proposed`` to refuse because another policy speaks as the same platform
    account, each with the issue naming both files.

    One platform account has one policy: a second file for it (``brand-quick.yaml``, direct,
    beside the co-signed ``brand.yaml``) would let anyone writing for it publish alone as the
    co-signed account. The policy in force for it stays and the newcomer is refused; when none
    of the claimants is in force (two new files at once), or several are (files from before
    this rule), every one of them is refused until only one is left: which one the admin meant
    cannot be guessed, and neither may speak for the other meanwhile."""
    claims: dict[tuple[str, ...], set[str]] = {}
    incumbents: dict[tuple[str, ...], set[str]] = {}
    names: dict[str, str] = {}
    for account, loaded in in_force.items():
        names[account] = loaded.path.name
        for key in platform_accounts(loaded.policy, directory):
            claims.setdefault(key, set()).add(account)
            incumbents.setdefault(key, set()).add(account)
    for account, loaded in proposed.items():
        names[account] = loaded.path.name
        for key in platform_accounts(loaded.policy, directory):
            claims.setdefault(key, set()).add(account)
    refused: dict[str, PolicyIssue] = {}
    for account, loaded in proposed.items():
        for key, words in platform_accounts(loaded.policy, directory).items():
            others = sorted(claims[key] - {account})
            holders = incumbents.get(key, set())
            if not others or holders == {account}:
                continue
            files = ", ".join(names[o] for o in others)
            if holders and account not in holders:
                outcome = f"{files} is in force for it, so this file is refused"
            else:
                outcome = "neither is used until one of them is removed"
            refused[account] = PolicyIssue(
                file=loaded.path.name, line=None, key=key[-2],
                message=f"names the same {loaded.policy.platform} account as {files} ({words}): one platform "
                        f"account has one policy file; {outcome}",
            )
            break
    return refused


def policy_files(directory: Path) -> list[Path]:
    """The policy files in a directory, in a stable order: each regular file, and each link
    whatever it leads to. A link to nothing (its target deleted) or a loop of links is a file
    that cannot be read, said as such where refused files are (and its account's version in
    force stays, as for any file that cannot be read), never one passed over without a word."""
    return sorted(p for p in directory.glob("*.yaml") if _listed(p))


def _listed(path: Path) -> bool:
    return not path.name.startswith(".") and (path.is_symlink() or path.is_file())


def misnamed_files(directory: Path) -> list[PolicyIssue]:
    """An issue for each file that looks like a policy but is not read (``.yml``, ``.YAML``):
    renaming ``brand.yaml`` to ``brand.yml`` must not silently take the account away."""
    return [
        PolicyIssue(file=p.name, line=None, key="",
                    message=f"not read: Byline reads policy files ending in .yaml; rename it to {p.stem}.yaml")
        for p in sorted(directory.iterdir())
        if p.suffix.lower() in (".yml", ".yaml") and p.suffix != ".yaml" and _listed(p)
    ]


def check_dir(
    directory: Path, *, rules: CredentialRules | None = None, in_force: Mapping[str, LoadedPolicy] | None = None,
) -> tuple[dict[str, LoadedPolicy], list[PolicyIssue]]:
    """Load every file of a directory; return the good ones and every issue of the bad ones.

    Files that speak as one platform account (``shared_accounts``) are judged as a gateway
    judges them against the versions ``in_force`` in its database (``PolicyService.sync``):
    versions in force together for one platform account are both refused; a file naming a
    platform account that another account's version in force speaks for is refused, and its
    own account keeps the version it has in force, if any. Without ``in_force`` (``byline
    policy check``), the files are judged among themselves."""
    if not directory.is_dir():
        return {}, [PolicyIssue(file=str(directory), line=None, key="", message="not a directory")]
    good: dict[str, LoadedPolicy] = {}
    issues: list[PolicyIssue] = misnamed_files(directory)
    for path in policy_files(directory):
        try:
            loaded = load_file(path, rules=rules)
        except PolicyFileError as exc:
            issues += exc.issues
        else:
            good[loaded.policy.account] = loaded
    speaking = dict(in_force or {})
    contested = shared_accounts(speaking, {}, directory=directory)
    for account in contested:
        del speaking[account]  # the gateway records them removed: neither stays in force
    losers = shared_accounts(good, speaking, directory=directory)
    for account, issue in [*contested.items(), *((a, i) for a, i in losers.items() if a not in contested)]:
        good.pop(account, None)
        issues.append(issue)
    for account in losers:
        kept = speaking.get(account)
        if kept is not None and account not in contested:
            good[account] = kept  # its version in force stays, as for any refused file
    issues.sort(key=lambda i: i.file)
    return good, issues


@dataclass(frozen=True, kw_only=True)
class PolicyChange:
    """A policy that appeared, changed or went away in one reload."""

    account: str
    kind: str  # "loaded" | "changed" | "removed"
    old: LoadedPolicy | None
    new: LoadedPolicy | None


@dataclass
class PolicyRegistry:
    """The policies in force, what the directory's files hold, and the errors of files refused.

    Alone, a registry puts what its files hold in force (:meth:`reload`). A gateway's
    ``PolicyService`` reads the files (:meth:`read`) and puts in force what the database
    records (:meth:`enforce`), which the files may not hold yet (another replica recorded a
    change first) or no longer."""

    directory: Path
    rules: CredentialRules | None = None
    policies: dict[str, LoadedPolicy] = field(default_factory=dict)
    files: dict[str, LoadedPolicy] = field(default_factory=dict)
    errors: dict[str, list[PolicyIssue]] = field(default_factory=dict)
    _refused_files: dict[str, tuple[str, list[PolicyIssue]]] = field(default_factory=dict, repr=False)
    """Each file refused at the last read: what it was (its hash) and why."""
    settle: float = 0.0
    """Seconds a policy file already read must have been left alone (its new content unchanged,
    or its absence) before a read takes the change: an editor or ``git`` writing it in two
    steps, or replacing it by removing it first, is not read half-way (``BYLINE_POLICY_SETTLE_SECONDS``).
    A file read for the first time is read at once."""
    now: Callable[[], float] = field(default=time.time, repr=False)
    """The wall clock the files' modification times are compared with."""
    _missing_since: dict[str, float] = field(default_factory=dict, repr=False)
    """Accounts whose file went, and when a read first found it gone."""
    _refused_texts: dict[tuple[str, str], list[PolicyIssue]] = field(default_factory=dict, repr=False)
    """Recorded texts (account, hash) refused by :meth:`parse`."""

    def get(self, account: str) -> LoadedPolicy | None:
        """The policy in force for ``account``, if any."""
        return self.policies.get(account)

    def reload(self) -> list[PolicyChange]:
        """Read the directory again and put what is valid in force; return what changed. A file
        that speaks as another's platform account is refused (``shared_accounts``)."""
        self.read()
        before, after = self.policies, dict(self.files)
        for account, issue in shared_accounts(after, before, directory=self.directory).items():
            self.errors.setdefault(issue.file, []).append(issue)
            del after[account]
            kept = before.get(account)
            if kept is not None and not shared_accounts({account: kept}, after, directory=self.directory):
                after[account] = kept  # its policy in force stays, as for any refused file
        self.policies = after
        changes = []
        for account in sorted(set(before) | set(after)):
            old, new = before.get(account), after.get(account)
            if old != new:
                kind = "removed" if new is None else "changed" if old is not None else "loaded"
                changes.append(PolicyChange(account=account, kind=kind, old=old, new=new))
        return changes

    def enforce(self, policies: dict[str, LoadedPolicy]) -> None:
        """Put these policies in force (and no others)."""
        self.policies = policies

    def parse(self, text: str, *, account: str, file: str, sha256: str) -> LoadedPolicy:
        """A policy recorded elsewhere (its file's text), validated under this directory's rules.
        A text refused once is refused again without being parsed."""
        refused = self._refused_texts.get((account, sha256))
        if refused is not None:
            raise PolicyFileError(refused)
        rules = self.rules or CredentialRules(policy_dir=self.directory)
        try:
            policy = parse_policy(text, name=file, expected_account=account, rules=rules)
        except PolicyFileError as exc:
            self._refused_texts[(account, sha256)] = exc.issues
            raise
        return LoadedPolicy(policy=policy, path=self.directory / file, sha256=sha256, text=text)

    def read(self) -> list[PolicyChange]:
        """Read the directory again into ``files`` (a file that does not validate leaves what
        was read of it before); return what changed there. What is in force is left alone.

        A file refused is not parsed again until it changes (its hash; for one over the size
        limit, it is never read). ``files`` and ``errors``
        are replaced whole, not changed in place, so the directory can be read off the event
        loop's thread while requests look at them."""
        changes: list[PolicyChange] = []
        files = dict(self.files)
        seen: set[str] = set()
        errors: dict[str, list[PolicyIssue]] = {}
        refused: dict[str, tuple[str, list[PolicyIssue]]] = {}
        for path in policy_files(self.directory) if self.directory.is_dir() else []:
            account = path.stem
            seen.add(account)
            current = files.get(account)
            try:
                real = check_inside(path, self.directory)
            except PolicyFileError as exc:
                errors[path.name] = exc.issues
                continue
            try:
                status = real.stat()
                if status.st_size > MAX_POLICY_BYTES:  # refused unread, each time for the price of a stat
                    errors[path.name] = [_too_large(path.name, status.st_size)]
                    continue
                raw = read_policy_bytes(path, real=real)
            except OSError as exc:
                errors[path.name] = _unreadable(path.name, exc.strerror or type(exc).__name__).issues
                continue
            except PolicyFileError as exc:
                errors[path.name] = exc.issues
                continue
            sha256 = hashlib.sha256(raw).hexdigest()
            if current is not None and current.sha256 == sha256:
                continue
            if current is not None and self.settle and 0 <= self.now() - status.st_mtime < self.settle:
                continue  # being written: the content in force stays until it is left alone
            before = self._refused_files.get(path.name)
            if before is not None and before[0] == sha256:
                refused[path.name] = before
                errors[path.name] = before[1]
                continue
            try:
                loaded = load_bytes(path, raw, rules=self.rules)
            except PolicyFileError as exc:
                refused[path.name] = (sha256, exc.issues)
                errors[path.name] = exc.issues
                continue
            files[account] = loaded
            changes.append(
                PolicyChange(account=account, kind="changed" if current else "loaded", old=current, new=loaded)
            )
        if self.directory.is_dir():
            errors.update((issue.file, [issue]) for issue in misnamed_files(self.directory))
        now = self.now()
        for account in list(self._missing_since):
            if account in seen:
                del self._missing_since[account]
        for account in sorted(set(files) - seen):
            gone = self._missing_since.setdefault(account, now)
            if now - gone < self.settle:
                continue  # gone a moment (replaced by removing it first): it stays until gone a while
            del self._missing_since[account]
            old = files.pop(account)
            changes.append(PolicyChange(account=account, kind="removed", old=old, new=None))
        self.files = files
        self.errors = errors
        self._refused_files = refused
        return changes

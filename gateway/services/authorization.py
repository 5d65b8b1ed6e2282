"""Who may do what to a post, and whose approvals count: the rules the post service applies.

Pure functions over a post's record and the policy in force, so that the rules can be read, tested
and mutated apart from the storage and the log around them. Each raises the ``BylineError`` a
person should see, or returns what the service needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway.errors import BylineError, Code
from gateway.lifecycle import Action, State, transition
from gateway.policy.announce import ANNOUNCER
from gateway.policy.credit import contributors
from gateway.policy.engine import Act, Role, counts_toward, gate_for, may, owner_confirms, roles
from gateway.policy.loader import LoadedPolicy, PolicyRegistry
from gateway.policy.models import Tier
from gateway.storage.posts import Given, PostRecord
from gateway.types import iso

if TYPE_CHECKING:
    from gateway.services.posts import Caller

LIFECYCLE_ACTION = {
    Act.EDIT: Action.EDIT, Act.APPROVE: Action.APPROVE, Act.REJECT: Action.REJECT,
    Act.CANCEL: Action.CANCEL, Act.ADOPT: Action.ADOPT, Act.DISMISS: Action.DISMISS,
    Act.DELETE: Action.DELETE, Act.RETRY: Action.RETRY,
}


def visible_accounts(policies: PolicyRegistry, caller: Caller) -> dict[str, frozenset[Role]]:
    """Every account ``caller`` may see, by name, with the roles held there: the accounts the
    person has a role on, narrowed to the one a bound token names. The one place this is
    decided, for every surface."""
    out = {}
    for name, loaded in sorted(policies.policies.items()):
        held = roles(loaded.policy, caller.user)
        if held and caller.account in (None, name):
            out[name] = held
    return out


def check_account_binding(caller: Caller, account: str) -> None:
    """A client-app token bound to one account acts for that account only."""
    if caller.account is not None and caller.account != account:
        raise BylineError(Code.FORBIDDEN, f"this token acts for {caller.account}, not {account}")


def authorize(loaded: LoadedPolicy | None, caller: Caller, post: PostRecord, act: Act) -> LoadedPolicy:
    """The policy in force, if ``caller`` may ``act`` on ``post``; else the error
    they should see: 404 to someone who may not see the post, 409 when its state rules the
    action out, 403 when they may see it but not do this. A token bound to another account is
    told so (403) only by a person who may see the post: to anyone else, naming its account
    would tell which account an id is, and that it holds a post not yet out."""
    if caller.account not in (None, post.account) and not _may_see(loaded, caller, post):
        raise BylineError(Code.NOT_FOUND, f"no post {post.id}")
    check_account_binding(caller, post.account)
    if loaded is None:
        if caller.user == post.author:
            # The author still sees what they wrote; nobody decides anything while the
            # account has no policy in force.
            raise BylineError(
                Code.NO_POLICY,
                f"{post.account} has no policy in force: this post waits until one is",
                account=post.account,
            )
        raise BylineError(Code.NOT_FOUND, f"no post {post.id}")
    approvers = post.approvers
    author = post.author
    suggested = post.state == State.SUGGESTED.value
    if not may(loaded.policy, caller.user, Act.VIEW, author=author, approvers=approvers):
        raise BylineError(Code.NOT_FOUND, f"no post {post.id}")
    action = LIFECYCLE_ACTION.get(act)
    if action is not None:
        # Someone who can see the post learns first that its state rules the action out.
        transition(State(post.state), action)
    if not may(loaded.policy, caller.user, act, author=author, approvers=approvers, suggested=suggested):
        raise BylineError(Code.FORBIDDEN, f"{caller.user} may not {act.value} this post", action=act.value)
    return loaded


def _may_see(loaded: LoadedPolicy | None, caller: Caller, post: PostRecord) -> bool:
    """Whether the person behind ``caller`` may see ``post`` at all, whatever their token acts for."""
    if loaded is None:
        return caller.user == post.author
    return may(loaded.policy, caller.user, Act.VIEW, author=post.author, approvers=post.approvers)


def check_version(post: PostRecord, version: int | None) -> int:
    """An approval or rejection names the version its approver saw: refuse it for another,
    and ask for it when it names none. Returns the version decided on."""
    current = post.version
    if version is None:
        raise BylineError(
            Code.VERSION_REQUIRED,
            f"name the version you decide on: {{\"version\": {current}}} in the body, or If-Match: \"{current}\"",
            version=current,
        )
    if version != current:
        raise BylineError(
            Code.STALE_VERSION,
            f"you decided on version {version}, but the post is at version {current}: "
            "read it again before you decide",
            version=current,
        )
    return current


def hold_expired(post: PostRecord, *, now: int) -> bool:
    """Whether ``post`` is held and its hold's deadline has passed: it may only expire."""
    return post.state == State.HELD.value and post.expires_at is not None and post.expires_at <= now


def check_not_expired(post: PostRecord, *, now: int) -> None:
    """A held post past its deadline is expired, whether or not the publisher has swept it yet:
    an approval that comes after it releases nothing (the post is held until then, and the
    publisher records it expired at its next look)."""
    if hold_expired(post, now=now):
        raise BylineError(
            Code.INVALID_TRANSITION,
            f"this post's hold expired at {iso(post.expires_at)}, before this decision: it will not go out; "
            "its author may post it again",
            state=State.EXPIRED.value,
        )


def check_no_words(loaded: LoadedPolicy, caller: Caller, post: PostRecord) -> None:
    """Whoever put words into a post never approves it (save the owner confirming, where the
    policy names no approvers)."""
    if owner_confirms(loaded.policy):
        return
    if caller.user in contributors_of(post):
        raise BylineError(
            Code.FORBIDDEN,
            f"{caller.user} put words into this post and may not approve it: another approver must",
            action=Act.APPROVE.value,
        )


def contributors_of(post: PostRecord) -> frozenset[str]:
    """Everyone who put words into ``post``."""
    return contributors(author=post.author, editors=post.editors, suggested_by=post.suggested_by)


def approvals_that_count(loaded: LoadedPolicy, post: PostRecord, approved: Approved) -> int:
    """How many of these approvals of a post's current version count: each by one of the post's
    approvers who is one still and wrote none of its words, given while the policy spoke as the
    platform account it speaks as now."""
    return len(_counting(loaded, post, approved))


def counted_for(loaded: LoadedPolicy, post: PostRecord, approved: Approved, sends: str) -> tuple[str, ...]:
    """Who of ``approved`` (who approved a post's current version, each with the hash of the
    text they approved) counts toward its release now, in the order given: an approver of it
    still, who wrote none of it, and approved ``sends``, the hash of the text it goes out with
    (:func:`approved_for`), for the platform account the policy speaks as now. The one count of
    a post's approvals, for its release, its claim and every surface that shows how many it has:
    an approval given for other words (the disclosure line changed since, and a reload's work
    passed the post by), or for another account, is not shown as one it has."""
    return _counting(loaded, post, approved_for(approved, sends))


def _counting(loaded: LoadedPolicy, post: PostRecord, approved: Approved) -> tuple[str, ...]:
    """Those of ``approved`` who count under ``loaded``: see :func:`approvals_that_count`. None
    given for another platform account than the one ``loaded`` speaks as (:func:`given_as`)."""
    listed = set(post.approvers)
    contributed = contributors_of(post)
    speaks = given_as(loaded)
    return tuple(
        a for a, given in approved.items()
        if given.speaks_as in (None, speaks)
        and a in listed and counts_toward(loaded.policy, a, author=post.author, contributed=contributed)
    )


def check_approvers_left(loaded: LoadedPolicy, caller: Caller, post: PostRecord) -> None:
    """Refuse an approver's edit that would leave too few approvers who wrote none of the post.

    An approver may edit a post they approve; from then on their words are in it, so it needs
    its approvals from others, and an edit that leaves too few of them would strand it.
    """
    needed = post.required
    if needed <= 0 or caller.user == post.author or owner_confirms(loaded.policy):
        return
    contributed = contributors_of(post) | {caller.user}
    left = [a for a in gate_for(loaded.policy, post.author).approvers if a not in contributed]
    if len(left) < needed:
        raise BylineError(
            Code.NO_APPROVERS_LEFT,
            f"if {caller.user} edits this post, {len(left)} of its approvers wrote none of it and it "
            f"needs {needed}: suggest the change to {post.author} instead",
            needed=needed, left=left,
        )


POLICY_REMOVED = {"rule": "policy_removed", "action": "hold",
                   "reason": "The account's policy was removed: nothing goes out until one is in force"}
POLICY_RESTORED = {"rule": "policy_restored", "action": "hold",
                    "reason": "The account's policy was removed and is back: decide this post under it"}
AUTHOR_LOST_ROLE = {"rule": "author_lost_role", "action": "hold",
                     "reason": "The author no longer writes for this account: someone who does decides"}
POLICY_CHANGED = {"rule": "policy_changed", "action": "hold",
                   "reason": "The account's policy now asks for approvals this post has not had"}
DISCLOSURE_CHANGED = {"rule": "disclosure_changed", "action": "hold",
                      "reason": "The account's disclosure line changed since this post was approved"}
ACCOUNT_CHANGED = {"rule": "account_changed", "action": "hold",
                   "reason": "The account's policy now publishes as another platform account than the one this "
                             "post was written and approved for: decide it again"}

Approved = Mapping[str, Given]
"""Who approved a post's current version, each with the hash of the text they approved
(``gateway.services.outgoing``) and the platform account the policy then spoke as (each None
for an approval given before approvals kept it), as ``storage.posts.approvers_of`` reads them:
one shape for every count and every cause."""


def given_as(loaded: LoadedPolicy) -> str:
    """The platform account an approval given under ``loaded`` is given for, as approvals keep it
    (``approvals.speaks_as``): the policy's ``speaks_as``, "" on the sandbox."""
    return loaded.policy.speaks_as or ""


def approved_for(approved: Approved, sends: str) -> Approved:
    """Those of ``approved`` who approved ``sends`` (the hash of the text that goes out): an
    approval counts only for the text it was given for. One given before approvals kept it is
    taken as given for the text, as it was when it was given."""
    return {a: given for a, given in approved.items() if given.text_sha256 in (None, sends)}


def account_cause(loaded: LoadedPolicy, post: PostRecord, approved: Approved) -> dict[str, str] | None:
    """Why a post must be decided again because approvals of it were given while the policy
    spoke as another platform account than ``loaded`` does (words approved for @brand are not
    approved for @other), if it must: held, with any such approval; released, when those given
    for this account are fewer than it needs (:func:`needs_approvals`, which counts none of the
    others). The reload decides such posts again (``redecision_cause``'s ``moved_account``);
    this is the claim's own check, for a reload that passed the post by (a replica behind the
    policy, a race). Approvals given before the account was kept count as before. A pending
    revision of a published post is not held for it: its post went out as the other account,
    which alone can edit it, so the revision can never be made (its release fails it, saying
    why, or the platform refuses the other account's edit), and approvals asked again would be
    asked for nothing."""
    speaks = given_as(loaded)
    if post.author == ANNOUNCER or post.revises is not None or all(
            given.speaks_as in (None, speaks) for given in approved.values()):
        return None
    if post.state == State.HELD.value:
        return ACCOUNT_CHANGED
    return ACCOUNT_CHANGED if needs_approvals(loaded, post, approved) else None


def disclosure_cause(
    loaded: LoadedPolicy, post: PostRecord, approved: Approved, *, sends: str
) -> dict[str, str] | None:
    """Why a post must be decided again because the text it would go out with (``sends``, its
    hash: its words with the disclosure line of the policy in force) is not the text its
    approvals were given for, if it must: the policy's disclosure line changed since (or its
    owner did, who writes without one). Held, with any approval given for other words: its
    approvals are asked again, of a new version; released, when those given for this text are
    fewer than it needs (:func:`needs_approvals`). A post whose words go out as they did (the
    owner's own, with no line under either policy) keeps its approvals."""
    if post.author == ANNOUNCER or all(given.text_sha256 in (None, sends) for given in approved.values()):
        return None
    if post.state == State.HELD.value:
        return DISCLOSURE_CHANGED
    return DISCLOSURE_CHANGED if needs_approvals(loaded, post, approved_for(approved, sends)) else None


def redecision_cause(
    loaded: LoadedPolicy | None, post: PostRecord, before: frozenset[str] | None,
    approved: Approved | None = None, *, sends: str | None = None, moved_account: bool = False,
) -> dict[str, str] | None:
    """Why a pending post must be decided again under the policy now in force, if it must;
    ``before`` is who wrote for the account under the policy this one replaces (None when no
    policy was in force); ``approved``, who approved the post's current version (wanted for a
    post released by approvals: see :func:`needs_approvals`), with the text each approved,
    and ``sends``, the hash of the text it would go out with now (wanted for any post with
    approvals: see :func:`disclosure_cause`). ``moved_account``: the policy now publishes as
    another platform account than the one it replaces (its ``speaks_as``), where a post on its
    way out on approvals (on a co-signed account, or released from a hold) or in a cooling-off
    (a delayed account), or held with approvals given, was approved (or left to be caught) for
    the other: decided again, so that it goes out only on people's word for this one."""
    if post.author == ANNOUNCER:
        return None  # the policy file's announcement: authorised by the version it announces, by no role
    state = State(post.state)
    parked = any(r.get("rule") == "policy_removed" for r in post.reasons)
    if loaded is None:
        return None if state is State.SUGGESTED or parked else POLICY_REMOVED
    held_by = roles(loaded.policy, post.author)
    if state is State.SUGGESTED:
        lost = not held_by & {Role.SUGGESTER, Role.WRITER}
        return AUTHOR_LOST_ROLE if lost and AUTHOR_LOST_ROLE not in post.reasons else None
    if Role.WRITER not in held_by and (before is None or post.author in before):
        # This change took the author's role away (or it came back without them).
        return AUTHOR_LOST_ROLE
    if parked:
        return POLICY_RESTORED
    if loaded.policy.tier is Tier.COSIGNED and post.required < gate_for(loaded.policy, post.author).required:
        # Scheduled without approvals on an account now co-signed, or held (or approved) for
        # fewer than the policy now asks: decided again, for as many as it asks.
        return POLICY_CHANGED
    if approved is not None and (cause := account_cause(loaded, post, approved)) is not None:
        return cause
    if state is State.SCHEDULED and approved is not None and needs_approvals(loaded, post, approved):
        return POLICY_CHANGED
    waits_on_people = post.required > 0 or loaded.policy.tier in (Tier.COSIGNED, Tier.DELAYED)
    if moved_account and post.revises is None and (
            (state is State.HELD and approved) or (state is State.SCHEDULED and waits_on_people)):
        # Not a direct or managed writer's own post on its way: their word alone sends it, under
        # this policy as under the last, and they may take it back. Nor a pending revision: see
        # :func:`account_cause`.
        return ACCOUNT_CHANGED
    return _text_changed(loaded, post, approved, sends)


def _text_changed(
    loaded: LoadedPolicy, post: PostRecord, approved: Approved | None, sends: str | None
) -> dict[str, str] | None:
    """:func:`disclosure_cause`, where the text each approval was given for and the text that
    goes out are known."""
    if sends is None or approved is None:
        return None
    return disclosure_cause(loaded, post, approved, sends=sends)


def needs_approvals(loaded: LoadedPolicy, post: PostRecord, approved: Approved) -> bool:
    """Whether a post waiting to go out lacks the approvals the policy in force asks of it:
    those of ``approved`` (who approved its current version) that count under it. On a co-signed
    account, as many as its policy asks; on another, a post held (by a rule, or decided again)
    and released needs as many as it was held for. An owner's confirmation of their own words
    where no approvers were named, or the approval of someone the policy no longer names,
    released it under another policy; here the author never counts (save the owner confirming
    where the policy names no approvers), and only the approvers named now do: a person who no
    longer speaks for the account does not decide what it says."""
    if post.author == ANNOUNCER:
        return False
    if loaded.policy.tier is Tier.COSIGNED:
        needed = gate_for(loaded.policy, post.author).required
    elif post.required > 0:
        needed = post.required
    else:
        return False  # never held: it goes out on its writer's word, as the tier lets it
    return approvals_that_count(loaded, post, approved) < needed


def recovery_cause(
    loaded: LoadedPolicy, post: PostRecord, approved: Approved, *, sends: str | None = None
) -> dict[str, str] | None:
    """Why a post whose publisher died mid-publish (its lease ran out: claimed again to be
    recovered) must not be sent under the policy now in force, if it must not; ``approved``:
    who approved its current version. The checks a due post's claim makes, and what a policy
    change asks of a pending post (which it could not ask of this one, in flight): its author
    still writes for the account (or people who do decided it again), and on a co-signed account
    it was held for as many approvals as the policy asks now, and on every tier a post released
    by approvals has them from approvers it names now. It is still looked for on the platform,
    where it may be already: it cannot be taken back, and is recorded as it is; else it is held
    for this cause. ``sends``: the hash of the text it goes out with, which its approvals must
    have been given for (:func:`disclosure_cause`)."""
    if post.author == ANNOUNCER:
        return None  # the policy file's announcement: authorised by the version it announces, by no role
    if Role.WRITER not in roles(loaded.policy, post.author) and not decided_again(post):
        return AUTHOR_LOST_ROLE
    if loaded.policy.tier is Tier.COSIGNED and post.required < gate_for(loaded.policy, post.author).required:
        return POLICY_CHANGED
    if (cause := account_cause(loaded, post, approved)) is not None:
        return cause
    if needs_approvals(loaded, post, approved):
        return POLICY_CHANGED
    return _text_changed(loaded, post, approved, sends)


def retry_cause(
    loaded: LoadedPolicy, post: PostRecord, approved: Approved | None = None, *, sends: str | None = None
) -> dict[str, str] | None:
    """Why a failed post put back in the queue (``post``, scheduled again) must be decided again
    before it goes out, if it must: what a pending post would have been decided again for when
    the policy changed while this one lay failed (the account turned co-signed or asks for more
    approvals, the author's role went). A post already decided again by people with a role
    since its author lost theirs is not held for that again, but is for what else the policy
    now asks (more approvals than it was held for, or than it has, or approvals of the text it
    now goes out with: ``sends``, its hash)."""
    cause = redecision_cause(loaded, post, None, approved, sends=sends)
    if cause is AUTHOR_LOST_ROLE and decided_again(post):
        # An empty ``before``: no one lost a role in this change, so the lost role is no cause
        # and the causes after it are still looked at.
        return redecision_cause(loaded, post, frozenset(), approved, sends=sends)
    return cause


def decided_again(post: PostRecord) -> bool:
    """Whether a post was held again because its author lost their role, and so was decided by
    someone who still has one: it may go out though its author no longer writes."""
    return any(r.get("rule") == AUTHOR_LOST_ROLE["rule"] for r in post.reasons)

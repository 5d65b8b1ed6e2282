"""The policy file of one account: strict, frozen models.

Unknown keys are errors, types are not coerced, and tier-level rules (a delayed account needs
a delay, a co-signed one needs reachable approvals) are checked here, so a policy that loads
is a policy the engine can apply.
"""

from __future__ import annotations

import functools
import re
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args
from urllib.parse import urlsplit

import re2
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from gateway.policy import announce as voice
from gateway.policy import byline as byline_text
from gateway.policy.credentials import CredentialRules
from gateway.policy.text import MatchText, names_read_as_one, published_length, word_form
from gateway.types import NAME_PATTERN, person_name_problem

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_NAME = f"^{NAME_PATTERN}$"
"""An account's or a rule's name, as pydantic matches it (its Rust regex: ``$`` is the end of
the text, no newline before it)."""


def check_people(names: tuple[str, ...]) -> tuple[str, ...]:
    """Each entry of a list of people named as ``owner`` is (and as ``byline token create
    --user`` accepts): ``[bob carol]`` is one "person" nobody can sign in as, and a post that
    waits for their approval waits forever."""
    for index, name in enumerate(names, start=1):
        if problem := person_name_problem(name):
            apart = ": list each person apart, as in [bob, carol]" if re.search(r"[\s,]", name) else ""
            raise ValueError(f"entry {index}, {name!r}, {problem}{apart}")
    return names


def check_person(name: str) -> str:
    """The owner is a person: a name a person may have, and not one the gateway keeps for itself."""
    if problem := person_name_problem(name):
        raise ValueError(f"{name!r} {problem}")
    return name


People = Annotated[tuple[str, ...], AfterValidator(check_people)]
_CREDENTIAL = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$"
_RATE = re.compile(r"^(\d+)/(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


MAX_DURATION = timedelta(days=36500)
"""The longest delay or expiry a policy may set: a century, far inside what dates can hold."""


def parse_duration(value: object) -> timedelta:
    """Read ``30s``, ``15m``, ``24h``, ``2d`` or a combination such as ``1h30m``."""
    if isinstance(value, timedelta):
        return value
    if value == 0:
        return timedelta(0)
    if not isinstance(value, str) or not value or not (match := _DURATION.match(value)):
        raise ValueError("a duration such as 30s, 15m, 24h, 2d or 1h30m")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    too_long = f"a duration of at most {MAX_DURATION.days}d"
    try:
        duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:  # not a ValueError: pydantic would let it out of the loader
        raise ValueError(too_long) from None
    if duration > MAX_DURATION:
        # Every post's times are the clock plus a duration: past the calendar, each one fails.
        raise ValueError(too_long)
    return duration


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Tier(StrEnum):
    """The four presets an account can be on."""

    DIRECT = "direct"
    DELAYED = "delayed"
    COSIGNED = "co-signed"
    MANAGED = "managed"


class RuleAction(StrEnum):
    """What a matching rule does to a post."""

    ALLOW = "allow"
    HOLD = "hold"
    BLOCK = "block"


class _Strict(BaseModel):
    # Lists arrive as YAML sequences and tiers as strings, so containers and enums are read in
    # lax mode; numbers and strings are strict (no "1" for 1, no 1 for "alice").
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Rule(_Strict):
    """One named check on a post's text, with the reason shown to the people it concerns.

    Rules match on the text as read, not as typed (see ``gateway.policy.text``): words are
    compared by their confusable skeletons with invisible characters removed, and a regex
    runs in RE2 (linear time) on the text without invisible characters, both as written and
    with look-alike letters of other scripts folded onto Latin ones.
    """

    name: str = Field(pattern=_NAME)
    action: RuleAction
    any_words: tuple[str, ...] = ()
    regex: str | None = None
    reason: str = Field(min_length=1)

    @field_validator("any_words")
    @classmethod
    def _words_show_something(cls, words: tuple[str, ...]) -> tuple[str, ...]:
        for word in words:
            if not word_form(word).strip():
                raise ValueError(f"the word {word!r} is empty once invisible characters are removed")
        return words

    @field_validator("regex")
    @classmethod
    def _regex_runs_in_re2(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            _compiled_regex(pattern)
        return pattern

    @model_validator(mode="after")
    def _one_matcher(self) -> Rule:
        if not self.any_words and self.regex is None:
            raise ValueError("a rule needs any_words or regex")
        return self

    def matches(self, text: str | MatchText) -> bool:
        """Whether this rule applies to ``text`` (a ``MatchText`` shares its forms across rules)."""
        forms = text if isinstance(text, MatchText) else MatchText(text)
        if self.any_words and _word_pattern(self.any_words).search(forms.words) is not None:
            return True
        if self.regex is None:
            return False
        pattern = _compiled_regex(self.regex)
        if pattern.search(forms.visible) is not None:
            return True
        # Folding changes nothing in text without look-alikes (all of ASCII): searched once then.
        return forms.folded != forms.visible and pattern.search(forms.folded) is not None


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported to the admin, not to stderr
    return options


# Perl features RE2 refuses, found in its error message (which quotes the fragment), named
# for the admin since the pattern may well have worked elsewhere.
_RE2_MISSING = (
    (re.compile(r"\(\?<?[=!]"), "lookarounds ((?=…), (?!…), (?<=…), (?<!…))"),
    (re.compile(r"\\[1-9]|\\[gk]"), "backreferences (\\1)"),
    (re.compile(r"\(\?>"), "atomic groups"),
)


@functools.lru_cache(maxsize=1024)
def _compiled_regex(pattern: str) -> Any:
    """An admin's regex compiled by RE2, or a ValueError that says why RE2 refuses it."""
    try:
        return re2.compile(pattern, _re2_options())
    except re2.error as exc:
        raw = exc.args[0] if exc.args else ""
        detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        missing = next((name for mark, name in _RE2_MISSING if mark.search(detail)), None)
        hint = f"; rules run in RE2, in linear time, which has no {missing}" if missing else ""
        raise ValueError(f"regex does not compile in RE2: {detail}{hint}") from None


@functools.lru_cache(maxsize=1024)
def _word_pattern(words: tuple[str, ...]) -> Any:
    """RE2 for "any of ``words`` standing as a word", over ``word_form`` text.

    Built by Byline from escaped literals, so it could run on Python's ``re`` safely; it runs
    on RE2 like the admins' patterns so that every rule has the same engine. RE2 has no
    lookbehind, so the word boundary is written as the start of the text or a character
    that is not a letter, digit, mark or underscore, on each side (a search only needs to
    know whether a match exists, so consuming that character costs nothing).
    """
    alternatives = "|".join(re2.escape(word_form(word)) for word in words)
    edge = r"[^\pL\pN\pM_]"
    return re2.compile(rf"(?:^|{edge})(?:{alternatives})(?:{edge}|$)", _re2_options())


HOLD_EXPIRES_AFTER: Final = timedelta(hours=24)
"""How long a held post waits for its approvals where the policy does not say (``expire_after``),
and on an account whose policy names no approvals, where the owner confirms."""


class Approvals(_Strict):
    """Who must approve held posts, and how many of them."""

    required: int = Field(ge=1, strict=True)
    from_: People = Field(alias="from", min_length=1)
    expire_after: Duration = HOLD_EXPIRES_AFTER

    @field_validator("expire_after")
    @classmethod
    def _time_to_approve(cls, value: timedelta) -> timedelta:
        # A hold that expires as it begins can never be approved: every post held would expire
        # unseen, which an admin writing 0s (for "never", say) does not mean.
        if value <= timedelta(0):
            raise ValueError("a held post needs time to be approved: a duration greater than 0s, such as 24h")
        return value


class RateLimit(_Strict):
    """At most ``count`` posts per ``seconds`` for one account."""

    count: int = Field(ge=0)
    # At most a year: the publisher counts sends since now minus the window, in stored integers.
    seconds: int = Field(ge=1, le=366 * 86400)


def _parse_rate(value: object) -> object:
    if isinstance(value, str):
        match = _RATE.match(value)
        if not match:
            raise ValueError("a rate such as 30/h (per s, m, h or d)")
        return {"count": int(match.group(1)), "seconds": _UNIT_SECONDS[match.group(2)]}
    return value


def _rules(info: ValidationInfo) -> CredentialRules:
    """The rules the loader passed in the validation context; without them, the strict defaults."""
    context = info.context if isinstance(info.context, dict) else {}
    rules = context.get("credential_rules")
    return rules if isinstance(rules, CredentialRules) else CredentialRules(policy_dir=DEFAULT_POLICY_DIR)


DEFAULT_POLICY_DIR = Path("policies")

NotifyEvent = Literal[
    "post.held", "post.suggested", "post.approved", "post.published", "post.failed", "post.gates_changed",
    "policy.changed",
]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = get_args(NotifyEvent)
"""What a webhook can be told of."""


class Webhook(_Strict):
    """One address told of an account's events, signed per the Standard Webhooks specification
    with the secret (``whsec_…``) that ``secret`` names, as ``env:NAME`` or ``file:PATH``."""

    url: str = Field(pattern=r"^https?://", max_length=2048)
    events: tuple[NotifyEvent, ...] = Field(default=NOTIFY_EVENTS, min_length=1)
    secret: str = Field(pattern=_CREDENTIAL)

    @field_validator("url")
    @classmethod
    def _secure_url(cls, value: str, info: ValidationInfo) -> str:
        # Signed events (with held posts' words) go there: only over TLS, but for loopback in development.
        parts = urlsplit(value)
        if not parts.hostname:
            raise ValueError("must name a host: https://host/path")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry a user or password: the secret signs each call")
        _rules(info).check_address(value)
        return value

    @field_validator("secret")
    @classmethod
    def _secret_place(cls, value: str, info: ValidationInfo) -> str:
        _rules(info).check_reference(value)
        return value

    @field_validator("events")
    @classmethod
    def _each_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("names an event twice")
        return value

    # Where the policy is shown (GET /v1/accounts/{account}/policy, to everyone with a role on the
    # account), a webhook's path may be a capability and its secret's place is the admin's business.
    @field_serializer("url")
    def _shown_url(self, value: str) -> str:
        parts = urlsplit(value)
        return f"{parts.scheme}://{parts.netloc}/…" if parts.path not in ("", "/") or parts.query else value

    @field_serializer("secret")
    def _shown_secret(self, value: str) -> str:
        return "(set)"


class Profile(_Strict):
    """``profile:``: Byline keeps one line of the account's profile true to the policy in force
    (see ``gateway.policy.byline``)."""

    byline: bool = Field(default=False, strict=True)
    template: str = Field(default=byline_text.DEFAULT_TEMPLATE, min_length=1, max_length=500)
    oauth1: str | None = Field(default=None, pattern=_CREDENTIAL)
    """X only: where the account's OAuth 1.0a user keys are (``env:NAME`` or ``file:PATH``), which
    X's profile call takes and the account's OAuth 2 token does not."""

    @field_validator("oauth1")
    @classmethod
    def _oauth1_place(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            _rules(info).check_reference(value)
        return value

    @field_validator("template")
    @classmethod
    def _known_places(cls, value: str) -> str:
        byline_text.check_template(value)
        return value


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@functools.lru_cache(maxsize=1024)  # pure; the accounts' addresses are read again each second
def server_address(url: str) -> str:
    """A platform address as one server: scheme and host in lower case, no default port, no
    trailing slash (``HTTPS://Social.Example/`` and ``https://social.example:443`` are one)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port  # a usable one: the policy's addresses are checked so (``check_address``)
    where = host if port in (None, _DEFAULT_PORTS.get(parts.scheme.lower())) else f"{host}:{port}"
    return f"{parts.scheme.lower()}://{where}{parts.path.rstrip('/')}"


PLATFORM_TEXT_LIMITS = {"sandbox": 500, "mastodon": 500, "bluesky": 300, "x": 280}


class Announce(_Strict):
    """Whether a change of the account's voice is announced on the account itself, and in what
    words (``{voice}``: who speaks now; ``{url}``: the account's public page on Byline)."""

    voice_changes: bool = Field(strict=True)
    template: str = Field(default=voice.DEFAULT_TEMPLATE, min_length=1, max_length=2000)

    @field_validator("template")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        unknown = voice.unknown_placeholders(value)
        if unknown:
            known = ", ".join("{" + p + "}" for p in voice.PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}: use {known}")
        if "{url}" not in value:
            raise ValueError("must link to the account's public page: put {url} in it")
        return value


class Policy(_Strict):
    """One account's policy file, as admins write it."""

    account: str = Field(pattern=_NAME)
    platform: Literal["sandbox", "mastodon", "bluesky", "x"]
    handle: str = ""
    credentials: str | None = Field(default=None, pattern=_CREDENTIAL)
    tier: Tier
    owner: Annotated[str, AfterValidator(check_person)]
    writers: People = ()
    delay: Duration = timedelta(0)
    approvals: Approvals | None = None
    suggesters: People = ()
    disclosure: str | None = None
    rules: tuple[Rule, ...] = ()
    max_length: int | None = Field(default=None, ge=1, le=100_000, strict=True)
    instance: str | None = Field(default=None, pattern=r"^https?://")
    pds: str | None = Field(default=None, pattern=r"^https?://")
    api: str | None = Field(default=None, pattern=r"^https?://")
    rate_limit: Annotated[RateLimit | None, BeforeValidator(_parse_rate)] = None
    retry_attempts: int = Field(default=8, ge=0, le=100, strict=True)
    notify: tuple[Webhook, ...] = Field(default=(), max_length=20)
    profile: Profile = Profile()
    announce: Announce | None = None

    @field_validator("credentials")
    @classmethod
    def _credential_place(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A file credential outside the secrets directory, or one of Byline's own keys, would be
        # read and sent to whatever platform address the policy names.
        if value is not None:
            _rules(info).check_reference(value)
        return value

    @field_validator("instance", "pds", "api")
    @classmethod
    def _secure_address(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The credential goes to this address: only over TLS, but for loopback in development.
        if value is not None:
            _rules(info).check_address(value)
        return value

    @model_validator(mode="after")
    def _one_name_a_person(self) -> Policy:
        # Names are matched as written, so "Alice" is someone else than "alice" to Byline, and
        # the same person to whoever reads the file: a writer given that name's token too would
        # co-sign her own words. Two spellings that read as one (by case, or by look-alike
        # letters: "aIice", "rn" for "m") are refused, whatever roles they are named in.
        twins = names_read_as_one((self.owner, *self.writers, *self.suggesters,
                                   *(self.approvals.from_ if self.approvals else ())))
        if twins is not None:
            raise ValueError(
                f"people: {twins[0]!r} and {twins[1]!r} read as one name, but Byline would take them for "
                "two people: spell each person one way"
            )
        return self

    @model_validator(mode="after")
    def _tier_rules(self) -> Policy:
        writers = self.writers or ((self.owner,) if self.tier is not Tier.MANAGED else ())
        object.__setattr__(self, "writers", writers)
        if self.tier is Tier.MANAGED:
            if not writers:
                raise ValueError("writers: a managed account needs writers: the team")
            if self.owner in writers:
                raise ValueError(
                    "writers: in a managed account the owner only suggests: remove them from writers"
                )
            if not self.suggesters:
                object.__setattr__(self, "suggesters", (self.owner,))
        if self.tier is Tier.DELAYED and self.delay <= timedelta(0):
            raise ValueError("delay: a delayed account needs delay greater than 0s")
        if self.tier is Tier.COSIGNED and self.approvals is None:
            raise ValueError("tier: a co-signed account needs approvals: required and from")
        if self.approvals is not None:
            for writer in writers:
                others = set(self.approvals.from_) - {writer}
                if len(others) < self.approvals.required:
                    raise ValueError(
                        f"approvals.required: approvals.required is {self.approvals.required} but posts by {writer} "
                        f"can only be approved by {len(others)} of approvals.from "
                        "(the author never counts)"
                    )
        if self.platform != "sandbox" and self.credentials is None:
            raise ValueError(
                f"platform: platform {self.platform} needs credentials: env:NAME or file:PATH"
            )
        needed = {"mastodon": "instance", "bluesky": "pds"}.get(self.platform)
        if needed and getattr(self, needed) is None:
            raise ValueError(f"platform: platform {self.platform} needs {needed}: https://…")
        if self.announce is not None and self.announce.voice_changes:
            self._announcement_fits()
        if self.profile.byline:
            self._byline_fits()
        return self

    def _byline_fits(self) -> None:
        """The profile byline, on a platform that can take it, within the platform's limits
        (the public page's address counted as ``byline.URL_ROOM`` characters)."""
        if self.platform == "x" and self.profile.oauth1 is None:
            raise ValueError(
                "profile.oauth1: X changes a profile only through API v1.1 with OAuth 1.0a user keys, which "
                "the account's OAuth 2 token is not: name where they are kept (env:NAME or file:PATH)"
            )
        if self.platform != "x" and self.profile.oauth1 is not None:
            raise ValueError(f"profile.oauth1: only X needs it; {self.platform} takes the account's credentials")
        try:
            byline_text.check_fits(self.platform, self.profile.template, summary=self.summary(),
                                   account=self.account)
        except ValueError as exc:
            raise ValueError(f"profile.template: {exc}") from None

    def _announcement_fits(self) -> None:
        """The announcement of this policy's voice, as the platform counts it, within its limit
        (the public page's link counted as ``URL_BUDGET`` characters where links count by length),
        if need be with the people counted rather than named (``announce.fitted``)."""
        assert self.announce is not None
        url = "https://" + "x" * (voice.URL_BUDGET - len("https://"))
        text = voice.fitted(self.announce.template, account=self.account, handle=self.handle,
                            summary=self.summary(), url=url, version=99999,
                            fits=lambda words: published_length(self.platform, words) <= self.text_limit)
        length = published_length(self.platform, text)
        if length > self.text_limit:
            raise ValueError(
                f"announce.template: the announcement would be {length} characters as {self.platform} counts "
                f"them, over its limit of {self.text_limit}: shorten the template"
            )

    @property
    def text_limit(self) -> int:
        """The longest text accepted, as the platform counts length (``published_length``):
        the policy's own limit or the platform's."""
        return self.max_length or PLATFORM_TEXT_LIMITS[self.platform]

    @property
    def hold_expires_after(self) -> timedelta:
        """How long a held post of the account waits for its approvals before it expires."""
        return self.approvals.expire_after if self.approvals is not None else HOLD_EXPIRES_AFTER

    @property
    def speaks_as(self) -> str | None:
        """The platform account the policy publishes as, by what names it publicly and is known
        without asking the platform: its server (the Mastodon instance, the Bluesky PDS, X's API
        address where the file names one) and the handle the file gives (``@brand``, or a
        Bluesky DID), never the credential or where it is kept. None on the sandbox, whose
        accounts are Byline's own."""
        if self.platform == "sandbox":
            return None
        server = {"mastodon": self.instance, "bluesky": self.pds, "x": self.api}[self.platform]
        handle = self.handle.strip().removeprefix("@")
        handle = handle if handle.startswith("did:") else handle.lower()
        parts = [server_address(server) if server else self.platform, f"@{handle}" if handle else ""]
        return " ".join(p for p in parts if p)

    def summary(self) -> dict[str, object]:
        """What changes of voice are judged by: recorded in the log at every load and change."""
        summary: dict[str, object] = {
            "tier": self.tier.value,
            "platform": self.platform,
            "owner": self.owner,
            "writers": sorted(self.writers),
            "approvers": sorted(self.approvals.from_) if self.approvals else [],
            "required": self.approvals.required if self.approvals else 0,
            "suggesters": sorted(self.suggesters),
            "delay_seconds": int(self.delay.total_seconds()),
            # How long a hold lasts, so that an auditor can tell a deadline the log records
            # (``expires_at``) from one set later than the policy allows.
            "expire_after_seconds": int(self.hold_expires_after.total_seconds()),
            # What the disclosure line says (None: none), so that an auditor can rebuild the
            # words that went out from the words approved (see gateway.audit.replay).
            "disclosure": self.disclosure,
            "rules": [
                {"name": r.name, "action": r.action.value, "reason": r.reason} for r in self.rules
            ],
        }
        if (speaks_as := self.speaks_as) is not None:
            # Whose platform account approvals are given for: a file pointed at another account
            # is a change of voice (``gateway.policy.announce.VOICE_KEYS``). Only off the sandbox,
            # so that its accounts' summaries stay as they were.
            summary["speaks_as"] = speaks_as
        if self.announce is not None and self.announce.voice_changes:
            summary["announce"] = True  # only then: the summaries of policies without it stay as they were
        return summary

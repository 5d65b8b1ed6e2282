"""How Byline reads a post's text: the forms rules match on, and its length per platform.

What is published is always the text exactly as written; these forms only feed matching.

* ``visible_form``: NFKC, with every Default_Ignorable_Code_Point removed (zero-width space,
  joiner and non-joiner, word joiner, soft hyphen, BOM, bidi controls, variation selectors,
  Hangul fillers, tags), so ``exam\\u200bple`` reads ``example`` and ``ｆｉｒｅｄ`` reads ``fired``.
* ``folded_form``: the visible form with every non-ASCII character replaced by its confusable
  skeleton (Unicode TS #39, from ICU), so a Cyrillic ``і`` reads as a Latin ``i`` while
  ASCII text stays as written. Admins' regexes run on both forms.
* ``word_form``: the full TS #39 skeleton of the NFKC case-folded text (ICU's
  ``nfkc_cf``, which also drops default ignorables). It folds ASCII too (``m`` becomes
  ``rn``, ``I`` and ``1`` become ``l``), so a rule's words are put through the same fold:
  ``fired`` matches ``fіred`` and ``FIRED``, and ``rnurder`` matches ``murder``.

``published_length`` counts as each platform does: X by twitter-text's weights, Mastodon
as its StatusLengthValidator, Bluesky and the sandbox in grapheme clusters.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from functools import cached_property
from typing import Final

import icu
import regex

from adapters.base import ascii_grapheme_count
from adapters.bluesky import grapheme_count
from adapters.x import UrlRules, find_urls, weighted_length

_IGNORABLE: Final = regex.compile(r"\p{Default_Ignorable_Code_Point}+")
_NON_ASCII: Final = regex.compile(r"[^\x00-\x7f]+")
_GRAPHEME: Final = regex.compile(r"\X")
_SPOOF: Final = icu.SpoofChecker()
_NFKC_CASEFOLD: Final = icu.Normalizer2.getNFKCCasefoldInstance()


def without_invisibles(text: str) -> str:
    """``text`` without the characters that show nothing (Default_Ignorable_Code_Point)."""
    if text.isascii():  # the first such character is U+00AD, the soft hyphen
        return text
    return str(_IGNORABLE.sub("", text))


def is_blank(text: str) -> bool:
    """Whether ``text`` shows nothing: only white space and invisible characters."""
    return not without_invisibles(text).strip()


def skeleton(text: str) -> str:
    """The TS #39 confusable skeleton of ``text`` (ICU's), recomposed to NFC."""
    return unicodedata.normalize("NFC", _SPOOF.getSkeleton(0, text))


def visible_form(text: str) -> str:
    """NFKC without invisible characters: the text as a reader sees it."""
    if text.isascii():  # NFKC leaves ASCII as it is, and it has no invisible characters
        return text
    return without_invisibles(unicodedata.normalize("NFKC", without_invisibles(text)))


def folded_form(text: str) -> str:
    """The visible form with look-alikes from other scripts folded onto their skeleton."""
    if text.isascii():
        return text
    return str(_NON_ASCII.sub(lambda m: skeleton(m.group()), visible_form(text)))


def word_form(text: str) -> str:
    """The form in which rule words and the text are compared: skeleton of NFKC case-folded."""
    return skeleton(without_invisibles(_NFKC_CASEFOLD.normalize(text)))


class MatchText:
    """One text's forms for matching, each made at most once however many rules ask."""

    def __init__(self, text: str) -> None:
        self.text = text
        if text.isascii():  # its visible and folded forms are the text itself (see those forms)
            self.visible = self.folded = text

    @cached_property
    def visible(self) -> str:
        """See ``visible_form``."""
        return visible_form(self.text)

    @cached_property
    def folded(self) -> str:
        """See ``folded_form``."""
        return folded_form(self.text)

    @cached_property
    def words(self) -> str:
        """See ``word_form``."""
        return word_form(self.text)


# ---- length as published -------------------------------------------------------------------

MASTODON_URL_LENGTH: Final = 23
# Mastodon's config/initializers/twitter_regex.rb: twitter-text's URL rules with more
# schemes, a scheme required (extract_url_without_protocol: false), and its own path and
# query characters.
_WHITE_SPACE: Final = (
    r"\x{09}-\x{0D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}"
    r"\x{205F}\x{3000}"
)
_UCHARS: Final = r"\x{A0}-\x{D7FF}\x{F900}-\x{FDCF}\x{FDF0}-\x{FFEF}\x{10000}-\x{10FFFD}"
MASTODON_URLS: Final = UrlRules(
    schemes="(?:https?|dat|dweb|ipfs|ipns|ssb|gopher|gemini)://",
    bare_domains=False,
    path_char=rf"[^{_WHITE_SPACE}<>()?]",
    path_end=rf"[^{_WHITE_SPACE}()?!*\"'「」<>;:=,.$%\[\]~&|@]",
    query_char=rf"[a-z0-9!?*'();:&=+$/%#\[\]\-_.,~|@\^{_UCHARS}]",
    query_end=rf"[a-z0-9_&=#/\-{_UCHARS}]",
)
# Account::MENTION_RE (app/models/account.rb): @user, optionally @domain. The separators and
# the name characters are disjoint classes, so this backtracking pattern runs in linear time.
_MASTODON_MENTION: Final = regex.compile(
    r"(?<![=/\w])@((?i:[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*))(?:@\w+(?:[.-]+\w+)*)?"
)


def grapheme_length(text: str) -> int:
    """User-perceived characters (UAX #29 extended grapheme clusters)."""
    if text.isascii():
        return ascii_grapheme_count(text)
    return sum(1 for _ in _GRAPHEME.finditer(text))


def mastodon_length(text: str) -> int:
    """The length Mastodon's StatusLengthValidator gives ``text``.

    app/validators/status_length_validator.rb: every URL with a scheme (twitter-text's
    extractor as Mastodon configures it, without bare domains) counts 23 characters, a
    mention ``@user@domain`` counts as ``@user``, and the rest is counted with
    ``mb_chars.grapheme_length``: grapheme clusters. (The content warning counts too; it is
    not part of the text checked here.)
    """
    if "://" not in text and "@" not in text:
        # Every URL it counts has a scheme, and every mention an @: nothing to count apart.
        return grapheme_length(text)
    pieces: list[str] = []
    position = 0
    for start, end in find_urls(text, MASTODON_URLS):
        pieces.append(_MASTODON_MENTION.sub(r"@\1", text[position:start]))
        pieces.append("x" * MASTODON_URL_LENGTH)
        position = end
    pieces.append(_MASTODON_MENTION.sub(r"@\1", text[position:]))
    return grapheme_length("".join(pieces))


def published_length(platform: str, text: str) -> int:
    """The length of ``text`` as ``platform`` counts it against its limit."""
    if platform == "x":
        # twitter-text's weighted length: most CJK and emoji count 2, every URL 23.
        return int(weighted_length(text))
    if platform == "mastodon":
        return mastodon_length(text)
    # Bluesky counts graphemes (its 300 limit) as its PDS does, with ICU's break iterator; the
    # sandbox counts as Bluesky does.
    return grapheme_count(text)


def _name_as_read(name: str) -> tuple[str, str, str]:
    """The forms in which a reader may take a person's name for another: its case folded, its
    look-alike letters folded (Unicode's confusable skeleton: ``I`` and ``l``, ``0`` and ``O``,
    ``rn`` and ``m``), and both."""
    return word_form(name), skeleton(name), word_form(skeleton(name))


def names_read_as_one(names: Iterable[str]) -> tuple[str, str] | None:
    """The first two names spelled apart that read as one (``alice`` and ``Alice``, ``aIice``),
    in the order given, or None. Byline matches a person's name as written, so two such names
    are two people to it, and one to whoever reads them."""
    seen: dict[tuple[int, str], str] = {}
    for name in names:
        for key in enumerate(_name_as_read(name)):
            other = seen.setdefault(key, name)
            if other != name:
                return other, name
    return None


"""A Mastodon status's HTML read as the plain text its readers see, for the approvers of a reply
to it: markup gone, entities decoded, line breaks and paragraphs kept, whole link addresses,
nothing of a script or style, control characters dropped, the length bounded."""

from __future__ import annotations

import pytest

from gateway.services.reply_targets import WORDS_KEPT, status_words, words_kept


@pytest.mark.parametrize(("content", "expected"), [
    ("<p>Doors open at <b>nine</b></p><p>Bring a badge</p>", "Doors open at nine\n\nBring a badge"),
    ("<p>one<br>two<br />three</p>", "one\ntwo\nthree"),
    ("<p>Say &lt;b&gt;no&lt;/b&gt; &amp; mean it</p>", "Say <b>no</b> & mean it"),
    ('<p>Read <a href="https://example.org/a-long-path-indeed-it-is" rel="nofollow"><span class="invisible">'
     'https://</span><span class="ellipsis">example.org/a-long-path-indee</span><span class="invisible">'
     'd-it-is</span></a></p>', "Read https://example.org/a-long-path-indeed-it-is"),
    ('<p>Hi <span class="h-card"><a href="https://m.example/@carl" class="u-url mention">@<span>carl</span>'
     '</a></span></p>', "Hi @carl"),
    ("<p>seen</p><script>alert(1)</script><style>p{}</style><p>too</p>", "seen\n\ntoo"),
    ("<p>bell\x07 and\x00 nul</p>", "bell and nul"),
    ("", ""),
    (None, None),
])
def test_a_status_reads_as_its_readers_read_it(content: str | None, expected: str | None) -> None:
    """Each status's HTML, as the words it shows."""
    assert status_words(content) == expected


def test_kept_words_are_bounded() -> None:
    """Words longer than Byline keeps are cut, ending with an ellipsis; shorter ones kept whole."""
    assert words_kept("a" * WORDS_KEPT) == "a" * WORDS_KEPT
    assert words_kept("a" * (WORDS_KEPT + 1)) == "a" * (WORDS_KEPT - 1) + "…"
    assert status_words("<p>" + "b" * 200_000 + "</p>") == "b" * (WORDS_KEPT - 1) + "…"

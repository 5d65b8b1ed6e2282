"""Who a post's words are credited to, and the disclosure line that says so. Pure, no I/O, and
light: the auditor's verifier rebuilds what went out with it (``gateway.audit.replay``)."""

from __future__ import annotations

from collections.abc import Sequence


def credit(*, author: str, editors: Sequence[str] = (), suggested_by: str | None = None) -> str:
    """Everyone whose words go out, as the disclosure names them: ``alice, edited by carol``,
    ``bob, suggested by dave``."""
    line = author
    others = [e for e in dict.fromkeys(editors) if e not in (author, suggested_by)]
    if suggested_by is not None and suggested_by != author:
        line += f", suggested by {suggested_by}"
    if others:
        line += ", edited by " + (
            others[0] if len(others) == 1 else ", ".join(others[:-1]) + f" and {others[-1]}"
        )
    return line


def contributors(*, author: str, editors: Sequence[str] = (), suggested_by: str | None = None) -> frozenset[str]:
    """Everyone who put words into a post: its author, its editors and the suggester it came from.

    None of them counts toward the approvals the post needs (``engine.counts_toward``).
    """
    found = {author, *editors}
    if suggested_by is not None:
        found.add(suggested_by)
    return frozenset(found)


def disclosed(
    template: str | None, owner: str | None, *, author: str, text: str, editors: Sequence[str] = (),
    suggested_by: str | None = None,
) -> str:
    """The text as it goes out under a policy whose disclosure is ``template`` and owner
    ``owner``: with the disclosure line when anyone but the owner wrote it.

    The template's ``{author}`` names everyone whose words go out (see :func:`credit`), so a
    policy cannot credit the author alone for words an editor or a suggester wrote.
    """
    if template and contributors(author=author, editors=editors, suggested_by=suggested_by) != {owner}:
        line = credit(author=author, editors=editors, suggested_by=suggested_by)
        return f"{text}\n\n{template.replace('{author}', line)}"
    return text

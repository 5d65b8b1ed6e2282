"""The OAuth sign-in page: small, self-contained HTML (no scripts, no outside assets).

Step one asks for the person's gateway token; step two shows the accounts they may let the app
act as, with Authorize and Deny. The page names the app and what it asks for, labels every
field, announces errors to screen readers (``role="alert"``), and works with the keyboard
alone. Everything the request carried travels in hidden fields and is checked again on submit.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape

from gateway.services.oauth import AuthRequest

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;"
    "color:#1a1a1a;background:#fff}"
    "h1{font-size:1.4rem}fieldset{border:1px solid #888;border-radius:6px;padding:.5rem 1rem}"
    "label{display:block;margin:.5rem 0 .25rem;font-weight:600}"
    "input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font:inherit;"
    "border:1px solid #555;border-radius:4px}"
    ".choice{font-weight:400;display:flex;gap:.5rem;align-items:center}"
    "button{font:inherit;padding:.5rem 1.2rem;margin:1rem .5rem 0 0;border-radius:4px;"
    "border:1px solid #333;background:#f2f2f2;cursor:pointer}"
    "button.primary{background:#1d4ed8;color:#fff;border-color:#1d4ed8}"
    ":focus-visible{outline:3px solid #f59e0b;outline-offset:2px}"
    ".error{border-left:4px solid #b91c1c;background:#fef2f2;padding:.5rem 1rem}"
    ".hint{color:#444;font-size:.9rem}code{font-size:1.1rem;word-break:break-all}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; frame-ancestors 'none'"
)
"""The page's Content-Security-Policy: nothing loads but its own style block, no framing.

(No ``form-action``: browsers apply it to the redirect after submit, which goes to the app.)"""

_SCOPE_WORDS = {
    "read": "read the account's timelines, notifications and posts",
    "write": "write posts for the account (each goes through the account's policy)",
    "follow": "see and change whom the account follows, mutes and blocks (reading only here)",
    "push": "receive push notifications",
    "profile": "see the account's profile",
}


def _name(value: str) -> str:
    """A name someone else chose (an app's, a person's, an account's), escaped and isolated:
    right-to-left or other direction marks in it cannot turn the sentence around it."""
    return f"<bdi>{escape(value)}</bdi>"


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Byline</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def _hidden(request: AuthRequest, csrf: str) -> str:
    fields = {
        "response_type": "code", "client_id": request.client_id,
        "redirect_uri": request.redirect_uri, "scope": " ".join(request.scopes),
        "state": request.state or "", "code_challenge": request.challenge or "",
        "code_challenge_method": request.challenge_method or "", "csrf": csrf,
    }
    return "".join(
        f'<input type="hidden" name="{name}" value="{escape(value)}">' for name, value in fields.items()
    )


def _scopes(request: AuthRequest) -> str:
    words = []
    for scope in request.scopes:
        family = scope.partition(":")[0]
        text = _SCOPE_WORDS.get(scope) or f"{_SCOPE_WORDS.get(family, scope)} ({scope})"
        if text not in words:
            words.append(text)
    return "<ul>" + "".join(f"<li>{escape(w)}</li>" for w in words) + "</ul>"


def _error(message: str | None) -> str:
    return f'<p class="error" role="alert" id="error">{escape(message)}</p>' if message else ""


def token_step(request: AuthRequest, *, csrf: str, error: str | None = None) -> str:
    """Step one: who are you? (the gateway token)."""
    described = "token-hint error" if error else "token-hint"
    invalid = ' aria-invalid="true"' if error else ""
    body = (
        f"<h1>Sign in to let {_name(request.app_name)} post through Byline</h1>"
        f"{_error(error)}"
        f"<p>{_name(request.app_name)} asks to:</p>{_scopes(request)}"
        '<form method="post" action="/oauth/authorize">'
        f"{_hidden(request, csrf)}"
        '<label for="token">Your Byline token</label>'
        '<input type="password" id="token" name="token" required autocomplete="off" '
        f'spellcheck="false" autofocus aria-describedby="{described}"{invalid}>'
        '<p class="hint" id="token-hint">The token your Byline admin made for you '
        "(<code>byline token create</code>). It is not sent to the app.</p>"
        '<button type="submit" class="primary">Continue</button>'
        "</form>"
    )
    return _page("Sign in", body)


def account_step(
    request: AuthRequest, *, csrf: str, ticket: str, user: str, accounts: list[str],
    error: str | None = None,
) -> str:
    """Step two: which account may the app act as? Authorize or deny."""
    if accounts:
        choices = "".join(
            f'<label class="choice"><input type="radio" name="account" value="{escape(a)}" '
            f'id="account-{n}"{" checked" if n == 0 else ""}> {_name(a)}</label>'
            for n, a in enumerate(accounts)
        )
        pick = (
            "<fieldset><legend>Account the app acts as</legend>"
            f"{choices}</fieldset>"
            '<button type="submit" name="decision" value="allow" class="primary">Authorize</button>'
        )
    else:
        pick = (f"<p>{_name(user)} writes or suggests for no account here, so there is nothing "
                "to authorize.</p>")
    body = (
        f"<h1>Authorize {_name(request.app_name)}?</h1>"
        f"{_error(error)}"
        f"<p>Signed in as <strong>{_name(user)}</strong>. {_name(request.app_name)} asks to:</p>"
        f"{_scopes(request)}"
        '<form method="post" action="/oauth/authorize">'
        f"{_hidden(request, csrf)}"
        f'<input type="hidden" name="ticket" value="{escape(ticket)}">'
        f"{pick}"
        '<button type="submit" name="decision" value="deny">Deny</button>'
        "</form>"
    )
    return _page("Authorize", body)


def code_page(request: AuthRequest, code: str) -> str:
    """The code, for an app that asked to have it shown (``urn:ietf:wg:oauth:2.0:oob``)."""
    body = (
        "<h1>Authorization code</h1>"
        f"<p>Copy this code and paste it into {_name(request.app_name)}:</p>"
        f'<p><code id="code">{escape(code)}</code></p>'
        "<p class=\"hint\">It works once, within ten minutes.</p>"
    )
    return _page("Authorization code", body)


def error_page(title: str, message: str, *, back: str | None = None, app_name: str | None = None) -> str:
    """A sign-in that cannot go on, said plainly; with ``back``, a link that takes the error to
    the app (the person follows it, or not)."""
    link = ""
    if back is not None:
        who = _name(app_name) if app_name else "the app"
        link = f'<p><a href="{escape(back)}" rel="noreferrer">Return to {who}</a></p>'
    return _page(title, f"<h1>{escape(title)}</h1>{_error(message)}{link}")

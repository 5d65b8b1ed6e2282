"""Where a policy may keep its credential, and where a credential may be sent.

A ``file:`` credential resolves (after symlinks) inside the secrets directory and never to
Byline's own key files; an ``env:`` credential is never one of Byline's own settings
(``BYLINE_…``: the database URL with its password, the SMTP URL…) nor the PostgreSQL client's
(``PG…``: ``PGPASSWORD``), and starts with one of the prefixes the operator allows when they
name some (``BYLINE_CREDENTIAL_ENV``); a platform address is ``https://``, or plain ``http://``
on loopback only when the admin allowed it for development. A policy that breaks any of these
is refused when it loads, and the credential is checked again each time it is read: whoever
edits the policy files sends an account's credential where the policy says, never the
gateway's own secrets.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

RESERVED_ENV_PREFIXES = ("BYLINE_", "PG")
"""Variables no ``env:`` credential may name: Byline's own settings and the PostgreSQL client's
(compared without regard to case)."""


@dataclass(frozen=True, kw_only=True)
class CredentialRules:
    """The secrets directory, Byline's own key file, and whether loopback ``http://`` is allowed."""

    policy_dir: Path
    secrets_dir: Path | None = None
    log_key_file: Path | None = None
    allow_insecure: bool = False
    env_prefixes: tuple[str, ...] = ()
    """The prefixes an ``env:`` credential's name must start with; none: any name not reserved."""

    @property
    def secrets(self) -> Path:
        """The secrets directory, resolved: ``<policy dir>/secrets`` unless set."""
        return (self.secrets_dir or self.policy_dir / "secrets").resolve()

    def credential_path(self, target: str) -> Path:
        """The resolved file a ``file:`` reference names, or ``ValueError`` if it may not be used.

        A relative path is taken from the policy directory. The message names the reference
        and the rule, never the file's contents.
        """
        path = Path(target)
        if not path.is_absolute():
            path = self.policy_dir / path
        resolved = path.resolve()
        if self.secrets_dir is None and not self._default_secrets_inside():
            # Whoever may write in the policy directory could otherwise link secrets/ to / and
            # name any file on the server (another tenant's token, a service account's) as the
            # credential of a policy that sends it to an instance of their choosing.
            raise ValueError(f"file:{target}: the secrets directory, secrets in the policy directory, leads out "
                             "of it (a link): no file credential is read through it; make it a directory there, "
                             "or set BYLINE_SECRETS_DIR")
        if self.log_key_file is not None:
            key = self.log_key_file.resolve()
            if resolved == key or resolved.parent == key.parent:
                raise ValueError(f"file:{target} is one of Byline's own key files, never a credential")
        if not resolved.is_relative_to(self.secrets):
            raise ValueError(f"file:{target} is outside the secrets directory (BYLINE_SECRETS_DIR)")
        if resolved.exists() and not resolved.is_file():
            # A FIFO or a device would block the reader, or never end: a credential is a file.
            raise ValueError(f"file:{target} is not a regular file")
        return resolved

    def _default_secrets_inside(self) -> bool:
        """Whether the default secrets directory (``<policy dir>/secrets``) is, after links, a
        place inside the policy directory, as the admins who keep the directory made it."""
        directory = self.policy_dir.resolve()
        return self.secrets != directory and self.secrets.is_relative_to(directory)

    def env_name(self, target: str) -> str:
        """The variable an ``env:`` reference names, or ``ValueError`` if it may not be used."""
        reserved = next((p for p in RESERVED_ENV_PREFIXES if target.upper().startswith(p)), None)
        if reserved is not None:
            raise ValueError(f"env:{target} is one of Byline's own settings or its database's ({reserved}…), "
                             "never a credential")
        if self.env_prefixes and not target.startswith(self.env_prefixes):
            raise ValueError(f"env:{target} does not start with one of the names BYLINE_CREDENTIAL_ENV allows "
                             f"({', '.join(self.env_prefixes)})")
        return target

    def check_reference(self, reference: str) -> None:
        """Raise ``ValueError`` if a ``file:`` or ``env:`` reference points where it may not."""
        kind, _, target = reference.partition(":")
        if kind == "file":
            self.credential_path(target)
        elif kind == "env":
            self.env_name(target)

    def check_address(self, url: str) -> None:
        """Raise ``ValueError`` unless a credential may be sent to ``url``: an address with a
        host and a usable port (one a platform call could reach, said when the file is read
        rather than at every publication), over ``https://``."""
        parts = urlsplit(url)
        host = parts.hostname
        if not host:
            raise ValueError("must name a host: https://host")
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError("must name a port from 1 to 65535, or none (https://host:8443 or https://host)")
        if parts.scheme == "https":
            return
        if not _loopback(host):
            raise ValueError("must be https:// (plain http:// only on loopback, for development)")
        if not self.allow_insecure:
            raise ValueError(
                "must be https:// (plain http:// on loopback needs BYLINE_ALLOW_INSECURE_PLATFORMS)"
            )


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

"""Where a policy may keep its credential, and where a credential may be sent.

A ``file:`` credential resolves (after symlinks) inside the secrets directory and never to
Byline's own key files; a platform address is ``https://``, or plain ``http://`` on loopback
only when the admin allowed it for development. A policy that breaks either is refused when it
loads, and the credential is checked again each time it is read.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True, kw_only=True)
class CredentialRules:
    """The secrets directory, Byline's own key file, and whether loopback ``http://`` is allowed."""

    policy_dir: Path
    secrets_dir: Path | None = None
    log_key_file: Path | None = None
    allow_insecure: bool = False

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
        if self.log_key_file is not None:
            key = self.log_key_file.resolve()
            if resolved == key or resolved.parent == key.parent:
                raise ValueError(f"file:{target} is one of Byline's own key files, never a credential")
        if not resolved.is_relative_to(self.secrets):
            raise ValueError(f"file:{target} is outside the secrets directory (BYLINE_SECRETS_DIR)")
        return resolved

    def check_reference(self, reference: str) -> None:
        """Raise ``ValueError`` if a ``file:`` reference points where it may not."""
        kind, _, target = reference.partition(":")
        if kind == "file":
            self.credential_path(target)

    def check_address(self, url: str) -> None:
        """Raise ``ValueError`` unless a credential may be sent to ``url``."""
        parts = urlsplit(url)
        if parts.scheme == "https":
            return
        if not _loopback(parts.hostname or ""):
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

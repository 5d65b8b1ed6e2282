"""Gateway settings, from the environment (prefix ``BYLINE_``) or a ``.env`` file."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from urllib.parse import urlsplit

from limits import parse
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.policy.credentials import CredentialRules


class Settings(BaseSettings):
    """Everything the gateway reads at start; bad values stop it with one clear line."""

    model_config = SettingsConfigDict(
        env_prefix="BYLINE_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        default="sqlite:///var/byline.db",
        description="sqlite:///PATH (relative to the working directory) or postgresql://…",
    )
    policy_dir: Path = Path("policies")
    secrets_dir: Path | None = Field(
        default=None, description="where file: credentials must be; default <policy dir>/secrets"
    )
    credential_env: str = Field(
        default="", pattern=r"^[A-Za-z0-9_,\s]*$",
        description="Comma-separated prefixes that an env: credential's variable name must start "
        "with (BRAND_, TEAM_…); empty: any name but Byline's own settings (BYLINE_…) and the "
        "PostgreSQL client's (PG…), which are never credentials",
    )
    allow_insecure_platforms: bool = Field(
        default=False, description="accept plain http:// platform addresses on loopback (development and tests only)"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = Field(default=None, pattern=r"^https?://")
    log_key_file: Path = Path("var/log.key")
    log_origin: str = Field(default="byline.local/log", min_length=1, pattern=r"^[^\s+]+$")
    log_key_autocreate: bool = Field(
        default=False, description="create a missing BYLINE_LOG_KEY_FILE (demo and tests only)"
    )
    auditors: str = Field(
        default="", pattern=r"^[A-Za-z0-9._,\s-]*$",
        description="Comma-separated people who may read every account's posts and the words of "
        "versions that never went out (drafts of published posts too), with their salts, but never act on them",
    )
    admins: str = Field(
        default="", pattern=r"^[A-Za-z0-9._,\s-]*$",
        description="Comma-separated people who administer this gateway: they see every refused "
        "policy file's problems (everyone else sees those of their own accounts)",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or networks (CIDR) of reverse proxies in front of the "
        "gateway: a request from one is taken to come from the address its X-Forwarded-For names, "
        "so that limits per client address (failed sign-ins) are each person's, not the proxy's",
    )
    signin_attempts: str = Field(
        default="10/minute",
        description="failed sign-ins (the OAuth sign-in page, XRPC createSession) allowed per client "
        "address, and on the sign-in pages per name tried too (per device cookie instead, for a browser "
        "that brings its own for that name), in a moving window, such as 10/minute or 50/hour",
    )
    policy_reload_seconds: float = Field(default=1.0, gt=0)
    policy_settle_seconds: float = Field(
        default=1.0, ge=0, le=3600,
        description="how long a policy file already read must be left alone (its new content, or "
        "its absence) before the change is taken: a file written in two steps is not read half-way",
    )
    scheduler_interval_seconds: float = Field(default=0.5, gt=0)
    checkpoint_interval_seconds: float = Field(default=2.0, gt=0)
    publish_lease_seconds: float = Field(default=120.0, gt=0)
    housekeeping_interval_seconds: float = Field(
        default=300.0, gt=0, description="how often expired tickets, codes, keys, sessions and unused uploads go"
    )
    account_check_seconds: float = Field(
        default=60.0, gt=0, description="how often each account's credential is checked: its scopes asked, where "
        "its platform can say them, and an unhealthy account's credential tried again",
    )
    gate_reconcile_seconds: float = Field(
        default=5.0, gt=0, description="how often a gateway looks for changes of posts' threadgates and postgates "
        "that were neither logged nor put back (their put-back failed, or a gateway stopped), and puts them back",
    )
    smtp_url: SecretStr | None = Field(
        default=None,
        description="where notification emails go: smtp://host:port (STARTTLS when offered), "
        "smtps://user:password@host:port; a password needs smtps:// or a server offering STARTTLS",
    )
    smtp_from: str = Field(default="byline@localhost", pattern=r"^[^@\s<>]+@[^@\s<>]+$",
                           description="the sender address of notification emails")
    notify_interval_seconds: float = Field(default=1.0, gt=0, description="how often the log is read for notifications")
    notify_timeout_seconds: float = Field(default=10.0, gt=0, description="how long one webhook call or email may take")
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    log_format: str = Field(default="console", pattern="^(console|json)$")
    log_level: str = Field(default="info", pattern="^(debug|info|warning|error)$")
    workers: int = Field(
        default=1, ge=1, le=64,
        description="processes serving the one address (each uses a core; they share the database as "
        "replicas do): the number of cores is a good start",
    )
    event_loop: str = Field(default="uvloop", pattern="^(uvloop|asyncio)$",
                            description="uvloop (faster) or the standard library's asyncio loop")
    request_read_seconds: float = Field(
        default=60.0, gt=0,
        description="how long a client has to send a whole request, headers and body, before it is "
        "answered 408 and cut off; the first request counts from the connection's opening",
    )
    connections_per_address: int = Field(
        default=64, ge=0,
        description="open connections one client address may hold; more are answered 429 and closed "
        "(0: no limit, for a gateway behind a proxy that connects for everyone)",
    )
    metrics: bool = Field(
        default=True,
        description="serve Prometheus metrics at /metrics (no token: counts by route, tier and platform, "
        "never an account, person or post) and count requests for them; off: neither",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                try:
                    network = ip_network(part.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"{part.strip()!r} is not an IP address or network") from None
                if network.prefixlen == 0:
                    raise ValueError(
                        f"{part.strip()!r} trusts every address: any client could name any address in "
                        "X-Forwarded-For and escape the limits per client address; name the proxies' "
                        "addresses or their network"
                    )
        return value

    @field_validator("signin_attempts")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError("must be a rate such as 10/minute or 50/hour") from None
        return value

    @field_validator("smtp_url")
    @classmethod
    def _an_smtp_server(cls, value: SecretStr | None) -> SecretStr | None:
        # The message never repeats the value: it may hold a password.
        if value is None or not value.get_secret_value():
            return None
        try:
            parts = urlsplit(value.get_secret_value())
            port = parts.port
        except ValueError:
            raise ValueError("must be smtp://host:port or smtps://user:password@host:port") from None
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname or (port is not None and port == 0):
            raise ValueError("must be smtp://host:port or smtps://user:password@host:port")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not (value.startswith("sqlite:///") or value.startswith(("postgresql://", "postgres://"))):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("policy_dir", mode="before")
    @classmethod
    def _names_a_directory(cls, value: object) -> object:
        # An empty BYLINE_POLICY_DIR= would be read as "." and serve whatever YAML is there.
        if isinstance(value, str) and not value.strip():
            raise ValueError("is empty: name the directory of policy files (default ./policies)")
        return value


    @property
    def credential_rules(self) -> CredentialRules:
        """Where policies may keep credentials and where they may send them."""
        return CredentialRules(
            policy_dir=self.policy_dir, secrets_dir=self.secrets_dir, log_key_file=self.log_key_file,
            allow_insecure=self.allow_insecure_platforms,
            env_prefixes=tuple(p.strip() for p in self.credential_env.split(",") if p.strip()),
        )

    @property
    def trusted_networks(self) -> list[IPv4Network | IPv6Network]:
        """The networks of ``trusted_proxies``."""
        return [ip_network(p.strip(), strict=False) for p in self.trusted_proxies.split(",") if p.strip()]

    @property
    def admin_names(self) -> frozenset[str]:
        """The people named in ``admins``."""
        return frozenset(n.strip() for n in self.admins.split(",") if n.strip())

    @property
    def auditor_names(self) -> frozenset[str]:
        """The people named in ``auditors``."""
        return frozenset(n.strip() for n in self.auditors.split(",") if n.strip())


def describe_error(error: ValidationError) -> str:
    """One line naming every bad setting by its environment variable."""
    parts = []
    for item in error.errors():
        name = "BYLINE_" + "_".join(str(p) for p in item["loc"]).upper()
        parts.append(f"{name}: {item['msg']}")
    return "invalid settings: " + "; ".join(parts)

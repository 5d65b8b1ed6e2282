"""Schema migrations, run at start. Written once; dialect differences are substituted here.

The log tables are append-only in both databases: triggers refuse ``UPDATE`` and ``DELETE``,
so not even a careless operator's SQL can rewrite history without it being loud. The committed
texts beside the log take one change only: erasing a text (setting it to NULL). (Someone
with full control of the database can drop a trigger; the signed checkpoints and the offline
verifier catch that.)
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

_EMPTY_ROOT = hashlib.sha256(b"").digest()

_V1 = """
CREATE TABLE tokens (
  token_hash TEXT PRIMARY KEY,
  user_name TEXT NOT NULL,
  account TEXT,
  label TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  expires_at BIGINT,
  revoked_at BIGINT
);
CREATE TABLE posts (
  id TEXT PRIMARY KEY,
  account TEXT NOT NULL,
  author TEXT NOT NULL,
  state TEXT NOT NULL,
  version BIGINT NOT NULL,
  text TEXT NOT NULL,
  options TEXT NOT NULL DEFAULT '{}',
  reasons TEXT NOT NULL DEFAULT '[]',
  approvers TEXT NOT NULL DEFAULT '[]',
  required BIGINT NOT NULL DEFAULT 0,
  requested_at BIGINT,
  publish_at BIGINT,
  expires_at BIGINT,
  suggested_by TEXT,
  adopted_from TEXT,
  adopted_into TEXT,
  idempotency_key TEXT,
  remote_id TEXT,
  remote_url TEXT,
  published_text TEXT,
  attempts BIGINT NOT NULL DEFAULT 0,
  last_error TEXT,
  lease_until BIGINT,
  first_attempt_at BIGINT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX posts_due ON posts (state, publish_at);
CREATE INDEX posts_expiry ON posts (state, expires_at);
CREATE INDEX posts_account ON posts (account, state, created_at);
CREATE INDEX posts_attempts ON posts (account, first_attempt_at);
CREATE TABLE post_versions (
  post_id TEXT NOT NULL,
  version BIGINT NOT NULL,
  text TEXT NOT NULL,
  editor TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (post_id, version)
);
CREATE TABLE approvals (
  post_id TEXT NOT NULL,
  version BIGINT NOT NULL,
  approver TEXT NOT NULL,
  decision TEXT NOT NULL,
  reason TEXT,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (post_id, version, approver)
);
CREATE TABLE log_entries (
  idx BIGINT PRIMARY KEY,
  leaf_hash BLOB NOT NULL,
  entry BLOB NOT NULL,
  type TEXT NOT NULL,
  chain TEXT,
  post_id TEXT,
  account TEXT,
  ts BIGINT NOT NULL
);
CREATE INDEX log_entries_chain ON log_entries (chain, idx);
CREATE INDEX log_entries_post ON log_entries (post_id, idx);
CREATE TABLE log_texts (
  text_hash TEXT PRIMARY KEY,
  salt BLOB NOT NULL,
  text TEXT
);
CREATE TABLE log_nodes (
  level BIGINT NOT NULL,
  idx BIGINT NOT NULL,
  hash BLOB NOT NULL,
  PRIMARY KEY (level, idx)
);
CREATE TABLE log_state (
  id BIGINT PRIMARY KEY,
  size BIGINT NOT NULL,
  root BLOB NOT NULL,
  frontier BLOB NOT NULL
);
CREATE TABLE log_checkpoints (
  size BIGINT PRIMARY KEY,
  root BLOB NOT NULL,
  note BLOB NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE policy_heads (
  account TEXT PRIMARY KEY,
  sha256 TEXT NOT NULL,
  summary TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE sandbox_posts (
  id TEXT PRIMARY KEY,
  account TEXT NOT NULL,
  text TEXT NOT NULL,
  options TEXT NOT NULL DEFAULT '{}',
  idempotency_key TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  deleted_at BIGINT
);
CREATE INDEX sandbox_posts_account ON sandbox_posts (account, created_at);
"""

# Version 2: the Mastodon client API. Apps registered through POST /api/v1/apps, the
# sign-ins in progress (a person proved who they are; which account is next), the
# single-use authorization codes of the OAuth sign-in (with the PKCE challenge), the scopes of
# the gateway tokens that sign-in issued, the Idempotency-Keys clients sent, and uploaded media
# waiting for its post. Client secrets, sign-in tickets, codes, tokens and idempotency keys
# are stored as SHA-256 only.
_V2 = """
CREATE TABLE oauth_apps (
  client_id TEXT PRIMARY KEY,
  secret_hash TEXT NOT NULL,
  name TEXT NOT NULL,
  website TEXT,
  redirect_uris TEXT NOT NULL,
  scopes TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE oauth_codes (
  code_hash TEXT PRIMARY KEY,
  client_id TEXT NOT NULL,
  user_name TEXT NOT NULL,
  account TEXT NOT NULL,
  redirect_uri TEXT NOT NULL,
  scopes TEXT NOT NULL,
  challenge TEXT,
  challenge_method TEXT,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT,
  token_hash TEXT
);
CREATE TABLE oauth_signins (
  ticket_hash TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL,
  csrf_hash TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT
);
CREATE TABLE oauth_tokens (
  token_hash TEXT PRIMARY KEY,
  client_id TEXT NOT NULL,
  scopes TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX oauth_tokens_client ON oauth_tokens (client_id);
CREATE TABLE client_idempotency (
  token_hash TEXT NOT NULL,
  key_hash TEXT NOT NULL,
  post_id TEXT,
  kind TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (token_hash, key_hash)
);
CREATE TABLE media (
  id TEXT PRIMARY KEY,
  account TEXT NOT NULL,
  user_name TEXT NOT NULL,
  mime_type TEXT NOT NULL,
  description TEXT,
  data BLOB NOT NULL,
  size BIGINT NOT NULL,
  digest TEXT NOT NULL,
  post_id TEXT,
  created_at BIGINT NOT NULL
);
CREATE INDEX media_post ON media (post_id);
"""

# Version 3: committed texts keyed by the entry that commits to them. Their old key, the hex
# hash itself, is random: every append inserted all over a B-tree, which cost more than writing
# the entries. The entry index grows with every append, so the rows now go in at the end (on
# SQLite ``INTEGER PRIMARY KEY`` is the rowid itself). The hash stays beside them. A text can be
# erased (its ``text`` set to NULL) and nothing else: triggers refuse any other change.
_V3 = """
ALTER TABLE log_texts RENAME TO log_texts_v2;
CREATE TABLE log_texts (
  idx INTEGER PRIMARY KEY,
  text_hash TEXT NOT NULL,
  salt BLOB NOT NULL,
  text TEXT
)
"""
_V3_DONE = "DROP TABLE log_texts_v2"

# Version 4: who edited each post, in the order they first did. Whoever put words into a post
# never counts toward its approvals, and the disclosure names them all; the publisher reads
# them with the post instead of walking its versions.
_V4 = "ALTER TABLE posts ADD COLUMN editors TEXT NOT NULL DEFAULT '[]'"

# Version 5: an OAuth token carries the token that authorised it (its ``parent_hash``): it
# lives no longer than that one and ends when it is revoked. The gateway's own keys (the XRPC
# session key, the sign-in form key) live in the database, shared by every replica and never
# derived from the log's signing key.
_V5 = [
    "ALTER TABLE tokens ADD COLUMN parent_hash TEXT",
    "ALTER TABLE oauth_codes ADD COLUMN parent_hash TEXT",
    "CREATE TABLE gateway_keys (name TEXT PRIMARY KEY, secret TEXT NOT NULL, created_at BIGINT NOT NULL)",
]

# Version 6: people who sign in to the pages with a name and password (an Argon2id hash, never
# the password), and their browser sessions (only a SHA-256 of the cookie is stored). A
# person's name is the one the policy files give them.
_V6 = [
    "CREATE TABLE people (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, email TEXT, "
    "created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
    "CREATE TABLE web_sessions (session_hash TEXT PRIMARY KEY, person TEXT NOT NULL, csrf TEXT NOT NULL, "
    "created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, revoked_at BIGINT)",
    "CREATE INDEX web_sessions_person ON web_sessions (person)",
]

# Version 7: notifications. The notifier follows the log from a cursor (the index of the next
# entry it has not read, starting at the log's size when this version is applied, so history
# is not announced again), and every webhook call or email it owes is a delivery row, kept
# until delivered or given up, with its attempts: the delivery log that survives restarts.
# A delivery's id is its Standard Webhooks ``webhook-id``, derived from the entry and the
# target, so the same event never makes two rows for one target.
_V7 = [
    "CREATE TABLE notify_cursor (id BIGINT PRIMARY KEY, next_idx BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
    "CREATE TABLE notify_deliveries (msg_id TEXT PRIMARY KEY, channel TEXT NOT NULL, account TEXT, "
    "target TEXT NOT NULL, credential TEXT, event_type TEXT NOT NULL, log_idx BIGINT NOT NULL, "
    "payload TEXT NOT NULL, state TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, next_at BIGINT NOT NULL, "
    "lease_until BIGINT, last_status BIGINT, last_error TEXT, created_at BIGINT NOT NULL, delivered_at BIGINT)",
    "CREATE INDEX notify_deliveries_due ON notify_deliveries (state, next_at)",
    "CREATE INDEX notify_deliveries_entry ON notify_deliveries (log_idx)",
]

# Version 8: an upload's focal point ("x,y", each from -1 to 1), as Mastodon apps set it when
# they upload or later (PUT /api/v1/media/:id); NULL when none was given.
_V8 = ["ALTER TABLE media ADD COLUMN focus TEXT"]

# Version 9: app-only OAuth tokens (the client_credentials grant), which stand for an app and
# no person or account, so they live apart from ``tokens``: nothing that reads those can take
# one for a person's. Only a SHA-256 of each is stored.
_V9 = [
    "CREATE TABLE oauth_app_tokens (token_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, "
    "scopes TEXT NOT NULL, created_at BIGINT NOT NULL, revoked_at BIGINT)",
    "CREATE INDEX oauth_app_tokens_client ON oauth_app_tokens (client_id)",
]

# Version 10: one policy history for every gateway on the database. Each version an account's
# policy goes through is recorded once, numbered (a removal is a version too), with its file's
# text, so that replicas whose files differ enforce the version recorded. Versions recorded
# before are numbered by the log's policy entries of each account, the last one in force.
_V10 = [
    "CREATE TABLE policy_versions (account TEXT NOT NULL, version BIGINT NOT NULL, sha256 TEXT, file TEXT, "
    "body TEXT, summary TEXT NOT NULL, recorded_at BIGINT NOT NULL, PRIMARY KEY (account, version))",
    "CREATE INDEX policy_versions_sha256 ON policy_versions (account, sha256)",
    "ALTER TABLE policy_heads ADD COLUMN version BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE policy_heads ADD COLUMN file TEXT",
]

# Version 11: several replicas on one database. The last checkpoint signed by any of them is
# kept in the database (one row, only ever moved forward under the signing lock). On
# PostgreSQL the database itself tells every replica what changed, at commit, with NOTIFY on
# a channel named after the schema (gateway.services.wakeups): "due" when a post becomes due
# (sooner), "log" when the log grew, "policy" when a policy version was recorded.
_V11 = "CREATE TABLE log_signed (id INTEGER PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL, root BLOB NOT NULL, " \
    "note BLOB NOT NULL, signed_at BIGINT NOT NULL)"
_PG_V11_NOTIFY = [
    """CREATE FUNCTION byline_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('byline_' || left(md5(TG_TABLE_SCHEMA), 16), TG_ARGV[0]);
      RETURN NULL;
    END $$""",
    "CREATE TRIGGER posts_due_notify AFTER INSERT ON posts FOR EACH ROW "
    "WHEN (NEW.state = 'scheduled') EXECUTE FUNCTION byline_notify('due')",
    "CREATE TRIGGER posts_due_sooner_notify AFTER UPDATE ON posts FOR EACH ROW "
    "WHEN (NEW.state = 'scheduled' AND (OLD.state <> 'scheduled' OR NEW.publish_at < OLD.publish_at)) "
    "EXECUTE FUNCTION byline_notify('due')",
    "CREATE TRIGGER log_grew_notify AFTER UPDATE ON log_state FOR EACH STATEMENT EXECUTE FUNCTION byline_notify('log')",
    "CREATE TRIGGER policy_recorded_notify AFTER INSERT ON policy_versions FOR EACH STATEMENT "
    "EXECUTE FUNCTION byline_notify('policy')",
]

# Version 12: profile bylines. Each change of an account's byline is queued once, by the
# transaction that records the policy version causing it (so once across replicas and
# crashes), and claimed by one gateway at a time with a lease, as posts are; ``text`` is what
# was set, once it was.
_V12 = [
    "CREATE TABLE profile_updates (account TEXT NOT NULL, version BIGINT NOT NULL, platform TEXT NOT NULL, "
    "template TEXT, voice TEXT, state TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, next_at BIGINT NOT NULL, "
    "lease_until BIGINT, text TEXT, last_error TEXT, created_at BIGINT NOT NULL, done_at BIGINT, "
    "PRIMARY KEY (account, version))",
    "CREATE INDEX profile_updates_due ON profile_updates (state, next_at)",
]

# Version 13: a refresh no longer ends an XRPC session at once. The session it replaces stays
# usable for a grace period (its expiry brought forward to the end of it) and names its
# ``successor``, so that the old refresh token, used again within the grace, answers that same
# session rather than a new one each time. Every session of one login shares a ``family``
# (the key of the session the login made), so that deleteSession ends them all together.
# Sessions made before are each a family of their own. (Their keys start with "xrpc:", the
# prefix of ``gateway.storage.xrpc``; written out here as a migration must stay as it ran.)
_V13 = [
    "ALTER TABLE tokens ADD COLUMN family TEXT",
    "ALTER TABLE tokens ADD COLUMN successor TEXT",
    "UPDATE tokens SET family = token_hash WHERE substr(token_hash, 1, 5) = 'xrpc:'",
    "CREATE INDEX tokens_family ON tokens (family)",
]

# Version 14: the record keys Bluesky clients choose for their posts. A client (the Bluesky
# app's thread composer) names each post of a thread by a TID of its own, so that the next post
# can reply to it by address before anything is written; Byline writes the post under that key.
# One key names one post of an account, ever (the primary key refuses a second, in the
# transaction that stores the post); a post without one has its key derived from its id.
_V14 = [
    "CREATE TABLE post_record_keys (account TEXT NOT NULL, rkey TEXT NOT NULL, post_id TEXT NOT NULL, "
    "PRIMARY KEY (account, rkey))",
]

# Version 15: what each version of a post carries besides its words, kept beside the version
# instead of in the public log. Its ``options`` (content warning, visibility, a Bluesky embed…,
# as ``posts.options`` holds them) and its uploads' alt texts as they were then (``media``: a
# JSON list of {"id", "description"}, in order); NULL for versions made before, whose options
# the log's entries of the time carry. And each post's ``content_salt``: the 16 random bytes
# (hex) its ``content_sha256`` hashes with its content, so that the hash in the public log
# cannot confirm a guess of a draft's picture or alt text; NULL for posts made before, hashed
# without one.
_V15 = [
    "ALTER TABLE post_versions ADD COLUMN options TEXT",
    "ALTER TABLE post_versions ADD COLUMN media TEXT",
    "ALTER TABLE posts ADD COLUMN content_salt TEXT",
]

# Version 16: the change a published post is held for, kept with its hold (``held_change``, JSON;
# NULL while it is held for none): an edit's words and options, or a deletion, with who asked
# and under which policy. A gateway that stops between the platform's answer and the record
# leaves it there; once the hold runs out, the publisher of any gateway finds it and settles it
# (``gateway.services.published``). Indexed only where set: few posts hold a change at once,
# and those are all the publisher looks for.
_V16 = [
    "ALTER TABLE posts ADD COLUMN held_change TEXT",
    "CREATE INDEX posts_held_change ON posts (lease_until) WHERE held_change IS NOT NULL",
]

# Version 17: how each post's ``content_sha256`` is made (``content_scheme``): 1 for posts stored
# since it covers their uploads' focal points and where they reply (``gateway.services.content``);
# NULL for posts stored before, whose versions were hashed without them, and whose claims are
# hashed the same way for as long as they live, so that an honest log of a post waiting across
# the upgrade still compares equal. Later, 2 for posts stored for a platform that has no focal
# point (Bluesky, X): hashed, and sent, without them.
_V17 = ["ALTER TABLE posts ADD COLUMN content_scheme BIGINT"]

# Version 18: who did what each entry records (its ``actor``), beside it as its post and account
# are, so that the audit page finds every act of a person's (a post whose gates they changed, or
# that they deleted, not only those they wrote or approved) by an index, not by reading the whole
# log at every search. Entries logged before are given theirs from their own bytes, the one time
# an entry's row is changed: the append-only trigger is set aside for that, in the migration's
# transaction only. An entry that does not read as one the gateway wrote gets none; the auditor's
# check of the log says what is wrong with it.
_V18 = [
    "ALTER TABLE log_entries ADD COLUMN actor TEXT",
    "CREATE INDEX log_entries_actor ON log_entries (actor, idx)",
]
_V18_SQLITE_TRIGGER = "log_entries_no_update"

# Version 19: what the claim that chose a post's idempotency key sent besides its words
# (``sent_content``: its ``content_sha256``, or '' where it carried nothing else), beside the
# words it sent (``published_text``). A later claim that sends the same words and content (a
# recovered claim held, then approved again) sends the same key, so that a platform that took
# the first send gives that post back rather than make a second copy. NULL for posts claimed
# before, whose next claim after a new version takes a new key, as it did then.
_V19 = ["ALTER TABLE posts ADD COLUMN sent_content TEXT"]
_V18_PG_TRIGGER = "log_entries_append_only"

# Version 20: a change of a published post's threadgate or postgate, written down before it goes
# to the PDS (``gateway.services.gate_intents``): the account, the post, the gate, what the PDS
# held before (``held``) and what the change writes (``written``), each as JSON ('null': none),
# and who asked. The row goes in the transaction that logs the change, or once the change is put
# back; one left behind (the put-back refused, the gateway gone) is taken by any gateway's
# reconciler once ``lease_until`` has passed (a compare-and-set: ``status`` 'pending' while its
# request holds it, 'reconciling' once a reconciler has claimed it, ``claimed_by`` which one).
_V20 = [
    "CREATE TABLE gate_intents (id TEXT PRIMARY KEY, account TEXT NOT NULL, post_id TEXT NOT NULL, "
    "remote_id TEXT NOT NULL, collection TEXT NOT NULL, held TEXT NOT NULL, written TEXT NOT NULL, "
    "actor TEXT NOT NULL, status TEXT NOT NULL, claimed_by TEXT, attempts BIGINT NOT NULL DEFAULT 0, "
    "lease_until BIGINT NOT NULL, created_at BIGINT NOT NULL)",
    "CREATE INDEX gate_intents_due ON gate_intents (lease_until)",
]

# Version 21: a published post's kept change (``held_change``) its account cannot settle here
# (its policy file removed, the account moved to another platform, its credential not readable)
# is marked *stranded* (``change_stranded``: when, microseconds; NULL otherwise), so that it is
# said once, counted (``/metrics``, ``/readyz``) and settled in the first round after the account
# is back, rather than looked at and left at every tick (``gateway.services.published``).
_V21 = ["ALTER TABLE posts ADD COLUMN change_stranded BIGINT"]

# Version 22: how many times a change of a post's gate has been settled (``turn``: logged, put
# back, or found needing neither), one row a gate. A request notes it before it reads the gate
# on the PDS; written down with no change of the gate on its way, it is refused where the count
# moved meanwhile: what it read may be a change since logged or put back, not what the log says
# (``gateway.services.gate_intents``). A post's rows go as its deletion is recorded
# (``gateway.storage.gate_intents.prune_turns``).
_V22 = [
    "CREATE TABLE gate_turns (post_id TEXT NOT NULL, collection TEXT NOT NULL, turn BIGINT NOT NULL, "
    "PRIMARY KEY (post_id, collection))",
]

# Version 23: what each approval was given for (``text_sha256``: the SHA-256 of the text that
# goes out, the words with the disclosure line of the policy then in force, as the approver saw
# it; NULL for approvals given before it was kept). An approval counts only for that text: a post
# whose policy's disclosure line changed since is asked for its approvals again
# (``gateway.services.authorization.disclosure_cause``).
_V23 = ["ALTER TABLE approvals ADD COLUMN text_sha256 TEXT"]

# Version 24: an edit of a published post that its policy would not publish at once is a post of
# its own that names the post it revises (``revises``; NULL for every other post), held for
# the approvals, the cooling-off or the rule's second look a new post of those words would be
# (``gateway.services.published``). Indexed only where set: few posts are revisions.
_V24 = [
    "ALTER TABLE posts ADD COLUMN revises TEXT",
    "CREATE INDEX posts_revises ON posts (revises, state) WHERE revises IS NOT NULL",
]

# Version 25: the platform's id of the account a post went out as (``posts.remote_author``, a
# Mastodon status's ``account.id``; NULL where the answer named none, and for posts published
# before it was kept): a deletion answered 404 twice proves the status gone only if it was the
# credential's account's own (``adapters.mastodon.MastodonAdapter.delete_published``).
_V25 = ["ALTER TABLE posts ADD COLUMN remote_author TEXT"]

# Version 26: the platform account each approval was given for (``speaks_as``: the policy's
# ``gateway.policy.models.Policy.speaks_as`` then in force, "" on the sandbox; NULL for
# approvals given before it was kept, which count as before). An approval counts only while the
# policy speaks as that account: words approved for @brand are not approved for @other, at the
# claim as at the reload (``gateway.services.authorization.counted_for``).
_V26 = ["ALTER TABLE approvals ADD COLUMN speaks_as TEXT"]

# Version 27: the width and height an uploaded picture is shown at (``media.width``,
# ``media.height``; turned by its EXIF orientation), read from its header when it is uploaded,
# so that a timeline's MediaAttachments say them (``meta.original``) without reading each
# picture's bytes. NULL for an upload kept before, or whose size its header does not say.
_V27 = ["ALTER TABLE media ADD COLUMN width BIGINT", "ALTER TABLE media ADD COLUMN height BIGINT"]

# Version 28: the platform account each account (off the sandbox) was last found publishing as,
# by what its platform publicly knows it by (``keys``: a JSON list of a Bluesky DID, an X user id,
# a Mastodon profile address and instance id, see ``gateway.services.identities``; ``handle`` for
# people; ``asked_at``, ``partial``), never its credential or anything made from it. Written
# when an account is first found clear, and when its file's handle names another account; read
# by every gateway, so that a file naming no handle is held to it across restarts and replicas.
_V28 = [
    "CREATE TABLE platform_identities (account TEXT PRIMARY KEY, keys TEXT NOT NULL, handle TEXT NOT NULL, "
    "asked_at TEXT NOT NULL, partial BIGINT NOT NULL, recorded_at BIGINT NOT NULL)",
]

_APPEND_ONLY = ("log_entries", "log_nodes", "log_checkpoints")


def _sqlite_triggers() -> list[str]:
    out = []
    for table in _APPEND_ONLY:
        for op in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
    return out


def _pg_triggers() -> list[str]:
    out = [
        """CREATE FUNCTION byline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"""
    ]
    for table in _APPEND_ONLY:
        out.append(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION byline_append_only()"
        )
        out.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION byline_append_only()"
        )
    return out


def _sqlite_erase_only() -> list[str]:
    refuse = "BEGIN SELECT RAISE(ABORT, 'log_texts is append-only: a text can only be erased'); END"
    return [
        f"CREATE TRIGGER log_texts_no_delete BEFORE DELETE ON log_texts {refuse}",
        f"CREATE TRIGGER log_texts_no_update BEFORE UPDATE OF idx, text_hash, salt ON log_texts {refuse}",
        f"CREATE TRIGGER log_texts_erase_only BEFORE UPDATE OF text ON log_texts WHEN NEW.text IS NOT NULL {refuse}",
    ]


def _pg_erase_only() -> list[str]:
    return [
        """CREATE FUNCTION byline_erase_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'UPDATE' AND NEW.text IS NULL AND NEW.idx = OLD.idx
             AND NEW.text_hash = OLD.text_hash AND NEW.salt = OLD.salt THEN
            RETURN NEW;
          END IF;
          RAISE EXCEPTION '% is append-only: a text can only be erased', TG_TABLE_NAME;
        END $$""",
        "CREATE TRIGGER log_texts_erase_only BEFORE UPDATE OR DELETE ON log_texts "
        "FOR EACH ROW EXECUTE FUNCTION byline_erase_only()",
        "CREATE TRIGGER log_texts_no_truncate BEFORE TRUNCATE ON log_texts "
        "FOR EACH STATEMENT EXECUTE FUNCTION byline_append_only()",
    ]


def _statements(dialect: str, version: int) -> list[str]:
    if version == 1:
        ddl = _V1 if dialect == "sqlite" else _V1.replace(" BLOB", " BYTEA")
        stmts = [s.strip() for s in ddl.split(";") if s.strip()]
        stmts += _sqlite_triggers() if dialect == "sqlite" else _pg_triggers()
        return stmts
    if version == 2:
        ddl = _V2 if dialect == "sqlite" else _V2.replace(" BLOB", " BYTEA")
        return [s.strip() for s in ddl.split(";") if s.strip()]
    if version == 3:
        # SQLite's INTEGER PRIMARY KEY is the 64-bit rowid; PostgreSQL's INTEGER has 32 bits.
        ddl = _V3 if dialect == "sqlite" else _V3.replace(" BLOB", " BYTEA").replace(" INTEGER ", " BIGINT ")
        stmts = [s.strip() for s in ddl.split(";") if s.strip()]
        if dialect == "sqlite":
            return stmts + _sqlite_erase_only()
        # The old table's key index keeps its name through the rename: make way for the new one's.
        return ["ALTER INDEX log_texts_pkey RENAME TO log_texts_v2_pkey", *stmts, *_pg_erase_only()]
    if version == 4:
        return [_V4]
    if version == 5:
        return list(_V5)
    if version == 6:
        return list(_V6)
    if version == 7:
        return list(_V7)
    if version == 8:
        return list(_V8)
    if version == 9:
        return list(_V9)
    if version == 10:
        return list(_V10)
    if version == 11:
        if dialect == "sqlite":
            return [_V11]
        return [_V11.replace(" BLOB", " BYTEA"), *_PG_V11_NOTIFY]
    if version == 12:
        return list(_V12)
    if version == 13:
        return list(_V13)
    if version == 14:
        return list(_V14)
    if version == 15:
        return list(_V15)
    if version == 16:
        return list(_V16)
    if version == 17:
        return list(_V17)
    if version == 18:
        return list(_V18)
    if version == 19:
        return list(_V19)
    if version == 20:
        return list(_V20)
    if version == 21:
        return list(_V21)
    if version == 22:
        return list(_V22)
    if version == 23:
        return list(_V23)
    if version == 24:
        return list(_V24)
    if version == 25:
        return list(_V25)
    if version == 26:
        return list(_V26)
    if version == 27:
        return list(_V27)
    if version == 28:
        return list(_V28)
    raise AssertionError(f"no migration {version}")


LATEST = 28


async def _editors_from_versions(txn: Any) -> None:
    """Version 4's data: each edited post's editors, from its recorded versions."""
    rows = await txn.fetchall(
        "SELECT v.post_id, v.editor, p.author FROM post_versions v JOIN posts p ON p.id = v.post_id "
        "WHERE v.version > 1 ORDER BY v.post_id, v.version"
    )
    editors: dict[str, list[str]] = {}
    for row in rows:
        found = editors.setdefault(row["post_id"], [])
        if row["editor"] != row["author"] and row["editor"] not in found:
            found.append(row["editor"])
    for post_id, names in editors.items():
        if names:
            await txn.execute("UPDATE posts SET editors = ? WHERE id = ?", json.dumps(names), post_id)


async def _texts_by_entry(txn: Any) -> None:
    """Version 3's data: give each entry that commits to a text its row in the new table."""
    size = int((await txn.fetchone("SELECT size FROM log_state WHERE id = 1"))["size"])
    for start in range(0, size, 5000):
        rows = await txn.fetchall(
            "SELECT idx, entry FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx", start, start + 5000
        )
        wanted: dict[str, list[int]] = {}
        for row in rows:
            try:
                data = json.loads(bytes(row["entry"])).get("data")
            except (ValueError, AttributeError):
                continue  # not an entry the gateway wrote; the auditor will say so
            digest = data.get("text_hash") if isinstance(data, dict) else None
            if isinstance(digest, str):
                wanted.setdefault(digest, []).append(int(row["idx"]))
        if not wanted:
            continue
        marks = ", ".join("?" for _ in wanted)
        found = await txn.fetchall(
            f"SELECT text_hash, salt, text FROM log_texts_v2 WHERE text_hash IN ({marks})", *wanted
        )
        moved = sorted(
            (idx, r["text_hash"], bytes(r["salt"]), r["text"]) for r in found for idx in wanted[r["text_hash"]]
        )
        if moved:
            await txn.executemany("INSERT INTO log_texts (idx, text_hash, salt, text) VALUES (?, ?, ?, ?)", moved)
    await txn.execute(_V3_DONE)


async def _actors_from_entries(txn: Any, dialect: str) -> None:
    """Version 18's data: each entry's ``actor``, read from its bytes, with the append-only
    trigger set aside until the last is written (in this transaction: no other sees it gone)."""
    if dialect == "sqlite":
        await txn.execute(f"DROP TRIGGER {_V18_SQLITE_TRIGGER}")
    else:
        await txn.execute(f"ALTER TABLE log_entries DISABLE TRIGGER {_V18_PG_TRIGGER}")
    start = 0
    while rows := await txn.fetchall("SELECT idx, entry FROM log_entries WHERE idx >= ? ORDER BY idx LIMIT 5000",
                                     start):
        start = int(rows[-1]["idx"]) + 1
        actors = []
        for row in rows:
            try:
                actor = json.loads(bytes(row["entry"])).get("actor")
            except (ValueError, AttributeError):
                continue  # not an entry the gateway wrote; the auditor will say so
            if isinstance(actor, str):
                actors.append((actor, int(row["idx"])))
        if actors:
            await txn.executemany("UPDATE log_entries SET actor = ? WHERE idx = ?", actors)
    if dialect == "sqlite":
        await txn.execute(next(t for t in _sqlite_triggers() if f"TRIGGER {_V18_SQLITE_TRIGGER} " in t))
    else:
        await txn.execute(f"ALTER TABLE log_entries ENABLE TRIGGER {_V18_PG_TRIGGER}")


async def _policy_versions_from_log(txn: Any) -> None:
    """Each account's versions as its log tells them: its policy entries, in log order, are
    versions 1, 2, 3…, with the file hash and summary each recorded (a removal has none). The
    last one in force is the account's head. The files' texts were not kept before: each is
    kept the first time a gateway finds its file the same as the version in force."""
    rows = await txn.fetchall(
        "SELECT idx, entry, account, ts FROM log_entries "
        "WHERE type IN ('policy.loaded', 'policy.changed', 'policy.removed') AND account IS NOT NULL ORDER BY idx"
    )
    counts: dict[str, int] = {}
    for row in rows:
        account = row["account"]
        version = counts[account] = counts.get(account, 0) + 1
        try:
            body = json.loads(bytes(row["entry"]))
            data = body.get("data") or {}
        except (ValueError, AttributeError):
            data, body = {}, {}
        removed = body.get("type") == "policy.removed"
        sha256 = data.get("sha256") if not removed and isinstance(data.get("sha256"), str) else None
        summary = data.get("policy") if not removed else data.get("previous")
        await txn.execute(
            "INSERT INTO policy_versions (account, version, sha256, file, body, summary, recorded_at) "
            "VALUES (?, ?, ?, ?, NULL, ?, ?)",
            account, version, sha256, data.get("file") if sha256 else None, json.dumps(summary or {}),
            int(row["ts"] or 0),
        )
    for account, version in counts.items():
        await txn.execute("UPDATE policy_heads SET version = ?, file = ? WHERE account = ?",
                          version, f"{account}.yaml", account)


async def _lock(db: Any, txn: Any) -> None:
    if db.dialect == "postgresql":
        # Several replicas may start at once: one migrates, the others wait here.
        await txn.execute("SELECT pg_advisory_xact_lock(7283190)")


async def _apply(txn: Any, dialect: str, version: int) -> None:
    for stmt in _statements(dialect, version):
        await txn.execute(stmt)
    if version == 1:
        await txn.execute("INSERT INTO log_state (id, size, root, frontier) VALUES (1, 0, ?, ?)", _EMPTY_ROOT, b"")
    if version == 3:
        await _texts_by_entry(txn)
    if version == 4:
        await _editors_from_versions(txn)
    if version == 7:
        await txn.execute(
            "INSERT INTO notify_cursor (id, next_idx, updated_at) SELECT 1, size, 0 FROM log_state WHERE id = 1"
        )
    if version == 10:
        await _policy_versions_from_log(txn)
    if version == 18:
        await _actors_from_entries(txn, dialect)
    await txn.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, CURRENT_TIMESTAMP)", version
    )


SQLITE_SCHEMA_FOUND = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
"""A row when a SQLite database holds Byline's schema (at any version): its migrations' table."""


async def _schema_found(txn: Any, dialect: str) -> bool:
    if dialect == "postgresql":  # where the connection's search_path finds it
        row = await txn.fetchone("SELECT to_regclass('schema_migrations') IS NOT NULL AS found")
        return bool(row is not None and row["found"])
    return await txn.fetchone(SQLITE_SCHEMA_FOUND) is not None


async def has_schema(db: Any) -> bool:
    """Whether the database holds Byline's schema (at any version): its migrations' table."""
    async with db.read() as txn:
        return await _schema_found(txn, db.dialect)


async def _up_to_date(db: Any) -> bool:
    """Whether the database holds every migration this Byline knows, read in one snapshot."""
    async with db.read() as txn:
        if not await _schema_found(txn, db.dialect):
            return False
        row = await txn.fetchone(
            "SELECT COUNT(*) AS n FROM schema_migrations WHERE version BETWEEN 1 AND ?", LATEST
        )
        return row is not None and int(row["n"]) == LATEST


async def migrate(db: Any) -> None:
    """Apply every migration the database has not seen yet, each in its own transaction (under
    the migration lock on PostgreSQL), so one that fails leaves those before it applied and
    itself not at all.

    A database already up to date (every start but the first, and every `byline` command) is
    told so by one read: no write transaction, so no wait behind the migration lock another
    replica holds or behind a SQLite writer, and no round trips for each version."""
    if await _up_to_date(db):
        return
    async with db.write() as txn:
        await _lock(db, txn)
        await txn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
    for version in range(1, LATEST + 1):
        async with db.write() as txn:
            await _lock(db, txn)
            if await txn.fetchone("SELECT version FROM schema_migrations WHERE version = ?", version) is None:
                await _apply(txn, db.dialect, version)

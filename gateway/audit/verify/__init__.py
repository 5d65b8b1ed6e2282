"""The offline auditor: rebuild the log from its entries and check everything it claims.

``verify`` reads the entries and signed checkpoints from a running gateway (its public read API)
or from an export file, and checks, naming the first bad entry when something fails:

- the latest checkpoint is signed by the log key the auditor was given;
- every entry is exactly its RFC 8785 canonical JSON, well formed, under 64 KiB, and (in an
  export) hashes to the leaf hash stored beside it;
- each entry's ``prev`` link names the previous entry of its chain (a post's events; an
  account's policy events), by index and leaf hash;
- the RFC 6962 root of the entries equals the root in every checkpoint seen: the latest, every
  older one in an export, and every one remembered in the local state file from earlier runs
  (so a log that was rolled back or rewritten since is caught);
- every committed text matches its salted hash (an erased text is counted, not failed);
- from a gateway, every hash tile it publishes for the signed tree (c2sp.org/tlog-tiles) holds
  the hashes of the entries read: its proofs are made of those stored hashes, which entries that
  give the signed root do not vouch for;
- the rules replayed over the log hold (see :mod:`gateway.audit.replay`).

Entries are checked in runs of a few thousand, each on its own (parse, re-canonicalize, hash,
check texts, check the chain links inside the run, hash the run's perfect subtrees, pull the
facts the replay needs), in worker processes when asked; the caller's process joins the runs in
order: the tree's right edge, the links between runs, and the replay. When the roots do not
match and no entry was named yet, the log's stored leaf hashes (an export's, or the server's
level-0 tiles) name the entry that changed.

The parts, in the order a run uses them:

- :mod:`~gateway.audit.verify.sources`: an export file or a gateway's read API, cut into jobs;
- :mod:`~gateway.audit.verify.state`: the checkpoints seen on earlier runs;
- :mod:`~gateway.audit.verify.pool`: the worker processes the jobs run on;
- :mod:`~gateway.audit.verify.chunk`: the check of one run of entries, on its own, with
  :mod:`~gateway.audit.verify.entries` (one entry: parsed, its shape, its replay facts);
- :mod:`~gateway.audit.verify.tree`: the tree, from each run's perfect subtrees;
- :mod:`~gateway.audit.verify.run`: the runs joined in order, compared with the checkpoints,
  into a :class:`~gateway.audit.verify.report.Report`.
"""

from gateway.audit.verify.chunk import WITHHELD, Chunk, Item, Texts, check_chunk
from gateway.audit.verify.entries import parse_entry
from gateway.audit.verify.report import Finding, Report, SourceError
from gateway.audit.verify.run import load_key, verify
from gateway.audit.verify.sources import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    ExportSource,
    Job,
    Source,
    Tile,
    UrlSource,
    parse_export_line,
    run_job,
)
from gateway.audit.verify.state import default_state_path

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "WITHHELD",
    "Chunk",
    "ExportSource",
    "Finding",
    "Item",
    "Job",
    "Report",
    "Source",
    "SourceError",
    "Texts",
    "Tile",
    "UrlSource",
    "check_chunk",
    "default_state_path",
    "load_key",
    "parse_entry",
    "parse_export_line",
    "run_job",
    "verify",
]

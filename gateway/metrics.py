"""The gateway's Prometheus metrics: their families, the hooks services call, and the scrape.

Each application holds its own :class:`Metrics` with a registry of its own (not the process's
default one: tests build many gateways in one process, and a replica's figures are its own).
Services call its hooks once a change has committed, never inside a work (a batch that runs a
work again would count it twice); a hook is a dictionary lookup and an increment.

What labels may hold: route patterns (``/v1/posts/{id}``, never a path with ids in it),
HTTP methods and statuses, tiers, platforms, log event types, post states, notification
channels and outcomes, sign-in outcomes. No account, person, post id, text or token is ever a label, so the
number of series is bounded and the page says nothing about who posts what.
"""

from __future__ import annotations

import contextlib
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric

from gateway.clock import Clock, now_micros
from gateway.storage import metrics as sql
from gateway.storage.db import Database

if TYPE_CHECKING:
    # Named in annotations only: the policy loader brings every platform adapter with it, and
    # commands that count into no metrics (`byline user`) should start without them.
    from gateway.policy.loader import LoadedPolicy, PolicyRegistry

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
"""The text exposition format ``generate_latest`` writes."""

_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REQUEST_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PUBLISH_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_NO_POLICY: Final = "none"
_DELIVERY_OUTCOMES: Final = {"pending": "retry"}  # a delivery left pending is tried again later


class _Counts:
    """A counter family kept as plain numbers by label values, made into a family at scrape.

    prometheus_client's own counters take a lock and look their labels up on every increment
    (they are made for threads); every hook here runs on the event loop's one thread, on the
    path of every request and post, so an increment is one dictionary update.
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.values: dict[tuple[str, ...], float] = {}
        self.others: dict[tuple[str, ...], float] = {}  # the other workers' (``Metrics.share``), at scrape

    def add(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        """Count ``amount`` under these label values (in the order of ``labels``)."""
        values = self.values
        values[key] = values.get(key, 0.0) + amount

    def get(self, *key: str) -> float:
        """The count under these label values."""
        return self.values.get(key, 0.0)

    def collect(self) -> Iterable[Metric]:
        """The family, as the registry asks for it at scrape."""
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        values = dict(self.others)
        for key, value in self.values.items():
            values[key] = values.get(key, 0.0) + value
        for key, value in sorted(values.items()):
            family.add_metric(list(key), value)
        yield family

    def dump(self) -> list[list[object]]:
        """Its numbers, as JSON holds them (for the other workers)."""
        return [[list(key), value] for key, value in self.values.items()]

    def take(self, dumps: Iterable[list[list[object]]]) -> None:
        """The other workers' numbers (``dump``), added up, as ``others``."""
        others: dict[tuple[str, ...], float] = {}
        for dumped in dumps:
            for key, value in dumped:
                label_values = tuple(str(v) for v in key)  # type: ignore[attr-defined]
                others[label_values] = others.get(label_values, 0.0) + float(value)  # type: ignore[arg-type]
        self.others = others


class _Durations:
    """A histogram family with one label, kept as plain bucket counts and a sum per label value
    (for the reason ``_Counts`` gives), made cumulative at scrape."""

    def __init__(self, name: str, documentation: str, label: str, buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.label = name, documentation, label
        self.bounds = tuple(buckets)
        self.values: dict[str, list[float]] = {}  # per bucket (the last: above every bound), then the sum
        self.others: dict[str, list[float]] = {}  # the other workers' (``Metrics.share``), at scrape

    def observe(self, key: str, seconds: float) -> None:
        """One duration under this label value."""
        row = self.values.get(key)
        if row is None:
            row = self.values[key] = [0.0] * (len(self.bounds) + 2)
        row[bisect_left(self.bounds, seconds)] += 1  # the first bucket whose bound is >= seconds
        row[-1] += seconds

    def collect(self) -> Iterable[Metric]:
        """The family, with cumulative buckets, as the registry asks for it at scrape."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        values = {key: list(row) for key, row in self.others.items()}
        for key, row in self.values.items():
            values[key] = [a + b for a, b in zip(values[key], row, strict=True)] if key in values else row
        for key, row in sorted(values.items()):
            total, buckets = 0.0, []
            for bound, count in zip((*(repr(b) for b in self.bounds), "+Inf"), row[:-1], strict=True):
                total += count
                buckets.append((bound, total))
            family.add_metric([key], buckets, sum_value=row[-1])
        yield family

    def dump(self) -> dict[str, list[float]]:
        """Its numbers, as JSON holds them (for the other workers)."""
        return self.values

    def take(self, dumps: Iterable[dict[str, list[float]]]) -> None:
        """The other workers' numbers (``dump``), added up, as ``others``."""
        others: dict[str, list[float]] = {}
        width = len(self.bounds) + 2
        for dumped in dumps:
            for key, row in dumped.items():
                if len(row) != width:
                    continue  # written by a gateway with other buckets
                have = others.get(key)
                row = [float(v) for v in row]
                others[key] = row if have is None else [a + b for a, b in zip(have, row, strict=True)]
        self.others = others


class Metrics:
    """The metric families of one gateway and the hooks that move them."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = _Counts(
            "byline_http_requests", "HTTP requests answered, by method, route pattern and status",
            ["method", "route", "status"],
        )
        self.request_seconds = _Durations(
            "byline_http_request_duration_seconds",
            "Time from a request reaching the gateway's handlers to its answer, by route pattern",
            "route", _REQUEST_BUCKETS,
        )
        self.post_events = _Counts(
            "byline_post_events",
            "Post changes committed with their log entry: the log event type, the account's tier, "
            "and the state the post was left in ('none' for a post refused by a rule)",
            ["tier", "event", "state"],
        )
        self.publish_seconds = _Durations(
            "byline_publish_duration_seconds",
            "Time from a post's claim by the publisher to its publication being committed, by platform",
            "platform", _PUBLISH_BUCKETS,
        )
        self.publish_retries = _Counts(
            "byline_publish_retries",
            "Publishes tried again: 'inline' after a short wait within one claim, 'deferred' back to "
            "the schedule for later, by platform",
            ["platform", "kind"],
        )
        self.policy_errors = _Counts(
            "byline_policy_reload_errors",
            "Policy files refused at a reload (a file counts again when its problems change)", [],
        )
        self.notifications = _Counts(
            "byline_notifications", "Webhook calls and emails attempted, by channel and outcome "
            "(delivered, retry, failed: given up, lost: another sender took it over)",
            ["channel", "outcome"],
        )
        self.signin_failures = _Counts(
            "byline_signin_failures", "Failed sign-ins (the sign-in page, XRPC createSession): 'wrong' "
            "credentials, or 'throttled' (429) after too many", ["outcome"],
        )
        self._families: tuple[_Counts | _Durations, ...] = (
            self.requests, self.request_seconds, self.post_events, self.publish_seconds, self.publish_retries,
            self.policy_errors, self.notifications, self.signin_failures,
        )
        for family in self._families:
            r.register(family)
        self._shared: Path | None = None  # where the workers' numbers are, when there are several
        self._mine: Path | None = None
        self.due = Gauge("byline_due_posts", "Scheduled posts whose time has come, read at scrape", registry=r)
        self.log_size = Gauge("byline_log_entries", "Entries in the signed log, read at scrape", registry=r)
        self.checkpoint_size = Gauge(
            "byline_log_checkpoint_entries", "Entries covered by the latest signed checkpoint", registry=r
        )
        self.checkpoint_age = Gauge(
            "byline_log_checkpoint_age_seconds",
            "Seconds since the latest signed checkpoint (-1: none signed yet)", registry=r,
        )
        self.gate_changes_left = Gauge(
            "byline_gate_changes_left",
            "Changes of published posts' threadgates or postgates neither logged nor put back by their "
            "request (the put-back failed, or the gateway stopped): the reconcilers put them back, read at scrape",
            registry=r,
        )
        self.gate_changes_stranded = Gauge(
            "byline_gate_changes_stranded",
            "Of byline_gate_changes_left, those whose account cannot put them back here (its policy removed, "
            "not on Bluesky, or its credential not readable): put back once it can, read at scrape",
            registry=r,
        )
        self.post_changes_stranded = Gauge(
            "byline_post_changes_stranded",
            "Edits and deletions of published posts kept unsettled (their gateway stopped before recording "
            "them) whose account cannot settle them here (its policy removed, moved to another platform, or "
            "its credential not readable): settled once it can, read at scrape",
            registry=r,
        )
        self.policy_refused = Gauge(
            "byline_policy_files_refused", "Policy files refused now (the previous policy, if any, stays in force)",
            registry=r,
        )
        self._db: Database | None = None
        self._policies: PolicyRegistry | None = None
        self._clock: Clock | None = None

    # -- hooks ----------------------------------------------------------------------------

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request answered (``route``: its pattern, never its path)."""
        self.requests.add((method if method in _METHODS else "other", route, str(status)))
        self.request_seconds.observe(route, seconds)

    def post_event(self, loaded: LoadedPolicy | None, event: str, state: str) -> None:
        """A post change committed: ``event`` as the log names it, ``state`` where it left the post."""
        tier = str(loaded.policy.tier) if loaded is not None else _NO_POLICY  # its value, without enum's property
        self.post_events.add((tier, event, str(state)))

    def published(self, loaded: LoadedPolicy | None, seconds: float) -> None:
        """A post went out ``seconds`` after it was claimed."""
        self.post_event(loaded, "post.published", "published")
        self.publish_seconds.observe(_platform(loaded), seconds)

    def publish_failed(self, loaded: LoadedPolicy | None, *, gave_up: bool) -> None:
        """A publish failed: the post failed for good, or was deferred to try again later."""
        if gave_up:
            self.post_event(loaded, "post.failed", "failed")
        else:
            self.post_event(loaded, "post.deferred", "scheduled")
            self.publish_retries.add((_platform(loaded), "deferred"))

    def retried_inline(self, platform: str) -> None:
        """A publish is tried again after a short wait, within its claim."""
        self.publish_retries.add((platform, "inline"))

    def policy_file_refused(self) -> None:
        """A policy file was refused at a reload (or refused again for other reasons)."""
        self.policy_errors.add(())

    def notification(self, channel: str, outcome: str) -> None:
        """One webhook call or email attempted; ``outcome`` is the delivery's state after it
        (``delivered``, ``pending``, ``failed``) or ``lost``."""
        self.notifications.add((channel, _DELIVERY_OUTCOMES.get(outcome, outcome)))

    def signin_failed(self, outcome: str) -> None:
        """A sign-in failed: ``wrong`` credentials, or ``throttled`` after too many."""
        self.signin_failures.add((outcome,))

    # -- several workers ------------------------------------------------------------------

    def share(self, folder: Path, worker: int) -> None:
        """Count as one of several workers behind one address (``gateway.workers``): each
        writes its numbers to ``folder`` (:meth:`save`, every second and at each scrape), and a
        scrape, whichever worker answers it, adds up everyone's."""
        self._shared, self._mine = folder, folder / f"worker-{worker}.json"

    def save(self) -> None:
        """Write this worker's numbers for the others (replacing its last, at once)."""
        if self._mine is None:
            return
        body = orjson.dumps({family.name: family.dump() for family in self._families})
        partial = self._mine.with_suffix(".partial")
        partial.write_bytes(body)
        partial.replace(self._mine)

    def _take_others(self) -> None:
        if self._shared is None:
            return
        dumps: list[dict[str, Any]] = []
        for path in sorted(self._shared.glob("worker-*.json")):
            if path != self._mine:
                with contextlib.suppress(OSError, orjson.JSONDecodeError):
                    dumps.append(orjson.loads(path.read_bytes()))
        for family in self._families:
            family.take([d[family.name] for d in dumps if family.name in d])

    # -- the scrape -----------------------------------------------------------------------

    def watch(self, *, db: Database, policies: PolicyRegistry, clock: Clock) -> None:
        """Where the gauges read at scrape come from."""
        self._db, self._policies, self._clock = db, policies, clock

    async def scrape(self) -> bytes:
        """Read the gauges (a few indexed queries), then the whole page in the text format."""
        if self._db is not None and self._clock is not None:
            now = now_micros(self._clock)
            async with self._db.read() as txn:
                found = await sql.gauges(txn, now=now)
            self.due.set(found.due)
            self.log_size.set(found.log_size)
            self.checkpoint_size.set(found.checkpoint_size)
            self.gate_changes_left.set(found.gate_changes_left)
            self.gate_changes_stranded.set(found.gate_changes_stranded)
            self.post_changes_stranded.set(found.post_changes_stranded)
            at = found.checkpoint_at
            self.checkpoint_age.set(-1 if at is None else max(0, now - at) / 1_000_000)
        if self._policies is not None:
            self.policy_refused.set(len(self._policies.errors))
        self.save()
        self._take_others()
        return generate_latest(self.registry)


def _platform(loaded: LoadedPolicy | None) -> str:
    return loaded.policy.platform if loaded is not None else _NO_POLICY


NOT_SCRAPED: Final = Metrics()
"""What a service built without the application's metrics counts into: a registry no one reads."""

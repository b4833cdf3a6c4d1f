"""The dashboard's DynamoDB rollup table: its keys and attributes, shared by the aggregator (writes), the widget
function (reads) and the quota monitor.

Every item type has partition keys of its own, keyed by what a widget reads, so no read returns another type
and no partition takes every write. Days and months are calendar periods in the stack's reporting time zone;
5-minute buckets are named by their UTC start.

| item                               | pk                         | sk                              |
|------------------------------------|----------------------------|---------------------------------|
| usage of one user on one day       | USER#<user>                | DAY#<yyyy-mm-dd>                |
| usage of one user in one month     | USER#<user>                | MONTH#<yyyy-mm>                 |
| top users of a day or month        | TOP#<yyyy-mm-dd or yyyy-mm> | RANK                           |
| distinct active users per bucket   | ACTIVE#<yyyy-mm-dd>        | <bucket start, UTC ISO>         |
| distinct active users per day      | ACTIVE#<yyyy-mm-dd>        | DAY                             |
| 5-minute totals of one metric      | TOTAL#<metric>#<yyyy-mm-dd> | <bucket>#<type>#<model>        |
| day totals by model                | DAY#<yyyy-mm>              | <yyyy-mm-dd>#<model version>    |
| day totals per team, department... | GROUP#<yyyy-mm-dd>         | <dimension>#<value>             |
| day totals of the events           | EVENTS#<yyyy-mm-dd>        | <event>#<model/tool/...>        |
| data quality of a day              | QUALITY#<yyyy-mm-dd>       | <aspect>#<value>                |
| batches already applied            | LEDGER#<batch id>          | <chunk number>                  |
| log events claimed by a delivery   | CLAIM#<stream>#<second>    | IDS                             |
| users near their quota (monitor)   | QUOTA#<yyyy-mm-dd>         | NEAR                            |

The user day and month items also carry `usage_period` (`DAY#<day>#<shard>` or `MONTH#<month>#<shard>`, the
shard a stable hash of the user): the sparse index USAGE_INDEX lists every user with usage in a period, with
the totals the quota monitor compares to the limits, in USAGE_INDEX_SHARDS partitions per period.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from lambda_src.common.pricing import TOKEN_TYPES

PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE = "pk", "sk", "expires_at"
BUCKET_SECONDS = 300
TOP_USERS_KEPT = 25
NO_VALUE = "-"
UNATTRIBUTED = "unattributed"
"""The group of data without that group's attribute."""

# Usage counters of a user, a group, a day: one attribute each.
TOKEN_ATTRIBUTES = {token_type: f"tokens_{token_type}" for token_type in TOKEN_TYPES}
USAGE_COUNTERS = (
    "tokens",
    *TOKEN_ATTRIBUTES.values(),
    "cost_usd",
    "unpriced_tokens",
    "client_cost_usd",
    "sessions",
    "lines_added",
    "lines_removed",
    "commits",
    "pull_requests",
    "active_seconds",
    "edits_accepted",
    "edits_rejected",
)
GROUP_DIMENSIONS = {"department": "department", "team": "team_id", "cost_center": "cost_center"}
"""Group dimension -> the record column that carries it."""

USAGE_INDEX = "usage-by-period"
USAGE_INDEX_KEY = "usage_period"
USAGE_INDEX_SHARDS = 8
USAGE_INDEX_ATTRIBUTES = (
    "user",
    "source",
    *GROUP_DIMENSIONS,
    "tokens",
    *TOKEN_ATTRIBUTES.values(),
    "cost_usd",
    "unpriced_tokens",
)
"""What the usage index projects besides the keys: the user's labels and the totals quotas are about."""

LATENCY_BOUNDS_MS = (500, 1000, 2000, 5000, 10_000, 20_000, 30_000, 60_000, 120_000)
"""Upper bounds of the API latency histogram bins; one more bin holds everything slower."""


def latency_bin(duration_ms: float) -> str:
    for bound in LATENCY_BOUNDS_MS:
        if duration_ms <= bound:
            return f"latency_le_{bound}"
    return "latency_gt_max"


def latency_bins() -> list[tuple[str, float]]:
    """(attribute, upper bound) in order; the last bin's bound is infinite."""
    return [(f"latency_le_{bound}", float(bound)) for bound in LATENCY_BOUNDS_MS] + [("latency_gt_max", float("inf"))]


# Periods -------------------------------------------------------------------------------------------------


def local_day(epoch_seconds: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(epoch_seconds, zone).strftime("%Y-%m-%d")


def month_of(day: str) -> str:
    return day[:7]


def bucket_start(epoch_seconds: float) -> int:
    return int(epoch_seconds // BUCKET_SECONDS * BUCKET_SECONDS)


@functools.lru_cache(maxsize=8192)
def bucket_name(bucket: int) -> str:
    return datetime.fromtimestamp(bucket, UTC).strftime("%Y-%m-%dT%H:%MZ")


def day_end_epoch(day: str, zone: ZoneInfo) -> int:
    start = datetime.fromisoformat(day).replace(tzinfo=zone)
    return int((start + timedelta(days=1)).timestamp())


def month_end_epoch(month: str, zone: ZoneInfo) -> int:
    year, number = int(month[:4]), int(month[5:7])
    following = date(year + number // 12, number % 12 + 1, 1)
    return int(datetime(following.year, following.month, 1, tzinfo=zone).timestamp())


def days_between(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=offset)).isoformat() for offset in range((end - start).days + 1)]


# Keys ----------------------------------------------------------------------------------------------------

KEY_PART_BYTES = 200
"""A value a client sent (user, model, team, tool, version, ...) takes at most this much of a key: DynamoDB
allows 2,048 bytes in a partition key and 1,024 in a sort key, and a key has at most four such parts."""
LABEL_BYTES = 1024
"""The same for a value kept as a plain attribute (labels); an item holds at most 400 KB."""


def clipped(value: str, limit: int) -> str:
    """`value` as valid UTF-8 of at most `limit` bytes. A longer one keeps its start and a hash of the whole,
    so distinct values stay distinct and the same value always gives the same text (writers and readers
    agree); lone surrogates (invalid Unicode from JSON) become their escape text."""
    encoded = value.encode("utf-8", "backslashreplace")
    if len(encoded) <= limit:
        return encoded.decode("utf-8")
    digest = hashlib.blake2b(encoded, digest_size=6).hexdigest()
    return encoded[: limit - len(digest) - 1].decode("utf-8", "ignore") + "~" + digest


@functools.lru_cache(maxsize=65536)
def key_part(value: str) -> str:
    return clipped(value, KEY_PART_BYTES)


def user_pk(user: str) -> str:
    return f"USER#{key_part(user)}"


def user_day_sk(day: str) -> str:
    return f"DAY#{day}"


def user_month_sk(month: str) -> str:
    return f"MONTH#{month}"


def top_pk(period: str) -> str:
    return f"TOP#{period}"


TOP_SK = "RANK"


def active_pk(day: str) -> str:
    return f"ACTIVE#{day}"


ACTIVE_DAY_SK = "DAY"


def total_pk(metric: str, day: str) -> str:
    return f"TOTAL#{key_part(metric)}#{day}"


def total_sk(bucket: int, token_type: str | None, model: str | None) -> str:
    return f"{bucket_name(bucket)}#{key_part(token_type or NO_VALUE)}#{key_part(model or NO_VALUE)}"


def day_pk(month: str) -> str:
    return f"DAY#{month}"


def day_sk(day: str, model: str | None) -> str:
    return f"{day}#{key_part(model or NO_VALUE)}"


def group_pk(day: str) -> str:
    return f"GROUP#{day}"


def group_sk(dimension: str, value: str) -> str:
    return f"{dimension}#{key_part(value)}"


def events_pk(day: str) -> str:
    return f"EVENTS#{day}"


def quality_pk(day: str) -> str:
    return f"QUALITY#{day}"


def quality_sk(aspect: str, value: str) -> str:
    return f"{aspect}#{key_part(value)}"


def events_sk(*parts: str) -> str:
    """An event day total: the event's name and what it is counted by (model, status, tool, decision)."""
    return "#".join(key_part(part) for part in parts)


def ledger_pk(batch_id: str) -> str:
    return f"LEDGER#{batch_id}"


CLAIM_SK = "IDS"


def claim_pk(stream: str, second: str) -> str:
    """The claims of the log events of one log stream (a digest of its group and name) stamped in one second."""
    return f"CLAIM#{stream}#{second}"


@functools.lru_cache(maxsize=65536)
def usage_shard(user: str) -> int:
    encoded = user.encode("utf-8", "backslashreplace")
    return int.from_bytes(hashlib.blake2b(encoded, digest_size=2).digest(), "big") % USAGE_INDEX_SHARDS


def usage_period(period_sk: str, user: str) -> str:
    """The usage index key of a user's day or month item (`period_sk` is its sort key)."""
    return f"{period_sk}#{usage_shard(user)}"


def usage_periods(period_sk: str) -> list[str]:
    """Every usage index key of a period: query them all to list its users."""
    return [f"{period_sk}#{shard}" for shard in range(USAGE_INDEX_SHARDS)]


def quota_pk(day: str) -> str:
    return f"QUOTA#{day}"


QUOTA_NEAR_SK = "NEAR"

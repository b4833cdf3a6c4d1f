"""Benchmark: one quota monitor run over 10,000 users with usage today and this month.

The rollup table (with the usage index) and the quota table are in moto on 127.0.0.1; each user has the day and
month items the aggregator writes (the labels, totals and usage index key it sets), spread over 40 teams and 8
departments, with long-tailed usage so that some users are past a threshold. Measured: wall time of the first
run (which sends the alerts) and of the next (which sends none), DynamoDB items read, read requests and read
request units, and the conditional writes. Moto answers over HTTP on the same two cores, so times are an
upper bound of what Lambda sees against DynamoDB. Alerts are counted, not published. Run: `make bench`
(`--write-readme` updates the README section between the quota markers).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from benchmarks.moto_dynamodb import moto_dynamodb
from benchmarks.readme import write_results, write_section
from components.quota import MONITOR_TIMEOUT_SECONDS
from lambda_src.common import rollups as keys
from lambda_src.common.quota_policies import QuotaPolicy
from lambda_src.quota_monitor.handler import (
    PUBLISH_CONCURRENCY,
    PUBLISH_RESERVE_SECONDS,
    AlertLedger,
    Claim,
    Settings,
    UsageReader,
    run,
)
from tests.lambda_src.rollup_table import create_quota_table, create_table

USERS = 10_000
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
POLICIES = [
    QuotaPolicy("default", daily_usd=60, monthly_usd=500),
    QuotaPolicy("department", "dept-3", monthly_usd=1500),
    QuotaPolicy("team", "team-7", monthly_tokens=50_000_000),
    *[QuotaPolicy("user", f"dev{n:05d}@example.com", monthly_usd=2000) for n in range(0, 10_000, 500)],
]


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (numbers counted as their digits)."""
    size = 0
    for name, typed in item.items():
        kind, value = next(iter(typed.items()))
        size += len(name.encode()) + (len(str(value).encode()) if kind in ("S", "N") else 32)
    return size


class MeteredReader(UsageReader):
    """The monitor's reader, also adding up the read request units its index queries consume (eventually
    consistent: half a unit per 4 KB of items read, per request)."""

    def __init__(self, client: Any, table: str) -> None:
        super().__init__(client, table)
        self.read_units = 0.0
        self._query = client.query
        client.query = self._metered_query

    def _metered_query(self, **request: Any) -> dict[str, Any]:
        response: dict[str, Any] = self._query(**request)
        size = sum(item_size(item) for item in response.get("Items", []))
        self.read_units += 0.5 * max(1, math.ceil(size / 4096))
        return response


class CountingLedger(AlertLedger):
    def __init__(self, client: Any, table: str, run_id: str) -> None:
        super().__init__(client, table, run_id)
        self.conditional_writes = 0

    def claim(self, standing: Any, now: datetime) -> Claim:
        self.conditional_writes += 1
        return super().claim(standing, now)


class CountingClient:
    """The DynamoDB client, counting requests by operation (the latency model multiplies them)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.exceptions = client.exceptions
        self.requests: dict[str, int] = {}
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def counted(**request: Any) -> Any:
            with self.lock:
                self.requests[name] = self.requests.get(name, 0) + 1
            return method(**request)

        return counted


# Latency of one request against the real services, from inside the region (p50 of a warm Lambda; AWS states
# single-digit milliseconds for DynamoDB reads and writes of small items, and a 1 MB query page costs more).
LATENCY_SECONDS = {"query": 0.030, "batch_get_item": 0.015, "update_item": 0.008, "put_item": 0.008, "publish": 0.020}
OWN_CPU_SECONDS_PER_USER = 1.0 / 10_000  # the monitor's own code: about 1 s at 10,000 users (issue #22)
INDEX_ITEM_BYTES = 300  # a usage index item: key, labels and totals (INCLUDE projection)
LAMBDA_TIMEOUT_SECONDS = MONITOR_TIMEOUT_SECONDS


def modelled_seconds(users: int, alerts: int, concurrency: int = PUBLISH_CONCURRENCY) -> dict[str, float]:
    """A run against DynamoDB and SNS: reading usage (two periods, 8 shards each, 1 MB pages, one after another),
    reading the due alerts' items in batches of 100, then per alert a claim, a start, a publish and a mark, with
    `concurrency` alerts at once; plus the monitor's own CPU."""
    pages = 2 * 8 + math.ceil(2 * users * INDEX_ITEM_BYTES / 1_000_000)
    reads = pages * LATENCY_SECONDS["query"] + math.ceil(alerts / 100) * LATENCY_SECONDS["batch_get_item"]
    per_alert = 3 * LATENCY_SECONDS["update_item"] + LATENCY_SECONDS["publish"]
    publishing = alerts * per_alert / concurrency
    cpu = users * OWN_CPU_SECONDS_PER_USER
    return {"reads": reads, "publishing": publishing, "cpu": cpu, "total": reads + publishing + cpu + 2 * 0.008}


def alerts_within_timeout(users: int, concurrency: int = PUBLISH_CONCURRENCY) -> int:
    """How many alerts one run can send before it stops claiming (PUBLISH_RESERVE_SECONDS before the timeout)."""
    fixed = modelled_seconds(users, 0, concurrency)["total"]
    per_alert = (3 * LATENCY_SECONDS["update_item"] + LATENCY_SECONDS["publish"]) / concurrency
    return int((LAMBDA_TIMEOUT_SECONDS - PUBLISH_RESERVE_SECONDS - fixed) / per_alert)


def usage_items(users: int, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible synthetic fleet
    day, month = NOW.strftime("%Y-%m-%d"), NOW.strftime("%Y-%m")
    items = []
    for n in range(users):
        user = f"dev{n:05d}@example.com"
        monthly_usd = rng.lognormvariate(math.log(150), 0.8)
        daily_usd = monthly_usd / rng.uniform(8, 22)
        for sort_key, cost in ((keys.user_day_sk(day), daily_usd), (keys.user_month_sk(month), monthly_usd)):
            tokens = int(cost / 0.9 * 1_000_000)
            items.append(
                {
                    "pk": {"S": keys.user_pk(user)},
                    "sk": {"S": sort_key},
                    "user": {"S": user},
                    "source": {"S": "user.email"},
                    "department": {"S": f"dept-{n % 8}"},
                    "team": {"S": f"team-{n % 40}"},
                    "cost_center": {"S": f"CC-{n % 12}"},
                    "tokens": {"N": str(tokens)},
                    "tokens_cacheRead": {"N": str(int(tokens * 0.9))},
                    "cost_usd": {"N": f"{cost:.6f}"},
                    "sessions": {"N": "3"},
                    keys.USAGE_INDEX_KEY: {"S": keys.usage_period(sort_key, user)},
                }
            )
    return items


def bench(users: int) -> dict[str, Any]:
    with moto_dynamodb() as client:
        rollups, quota_table = f"rollups-{uuid.uuid4().hex[:8]}", f"quota-{uuid.uuid4().hex[:8]}"
        create_table(client, rollups)
        create_quota_table(client, quota_table, POLICIES)
        items = usage_items(users)
        for start in range(0, len(items), 25):
            client.batch_write_item(
                RequestItems={rollups: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
            )
        settings = Settings(rollups, quota_table, "arn:aws:sns:eu-west-1:123456789012:quota", ZoneInfo("UTC"), "bench")
        sent: list[str] = []

        def publish(subject: str, body: str) -> str:
            sent.append(subject)
            return str(len(sent))

        runs = []
        for offset in (0, 15):
            reader = MeteredReader(client, rollups)
            counting = CountingClient(client)
            ledger = CountingLedger(counting, quota_table, uuid.uuid4().hex)
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the monitor's log line per alert
                report = run(NOW + timedelta(minutes=offset), settings, reader, ledger, publish)
            runs.append(
                {
                    "seconds": time.perf_counter() - started,
                    "users": report.users,
                    "alerts_sent": report.alerts_sent,
                    "already_sent": report.already_sent,
                    "items_read": reader.items_read,
                    "read_requests": reader.requests,
                    "read_units": reader.read_units,
                    "conditional_writes": ledger.conditional_writes,
                    "ledger_requests": dict(sorted(counting.requests.items())),
                }
            )
            client.query = reader._query
        return {"users": users, "runs": runs}


def report(result: dict[str, Any]) -> str:
    first, second = result["runs"]
    per_day = 96 * second["read_units"]
    return "\n".join(
        [
            f"One monitor run over {result['users']:,} users with usage today and this month (moto on 127.0.0.1):",
            "",
            "| Measure | First run | Next run (15 minutes later) |",
            "|---|---|---|",
            f"| Wall time | {first['seconds']:.1f} s | {second['seconds']:.1f} s |",
            f"| Users checked | {first['users']:,} | {second['users']:,} |",
            f"| Alerts sent | {first['alerts_sent']:,} | {second['alerts_sent']:,} |",
            f"| DynamoDB items read (usage index) | {first['items_read']:,} | {second['items_read']:,} |",
            f"| Read requests | {first['read_requests']:,} | {second['read_requests']:,} |",
            f"| Read request units | {first['read_units']:,.0f} | {second['read_units']:,.0f} |",
            f"| Conditional writes (alert claims) | {first['conditional_writes']:,} "
            f"| {second['conditional_writes']:,} |",
            f"| Alert-table requests | {fmt_requests(first['ledger_requests'])} "
            f"| {fmt_requests(second['ledger_requests'])} |",
            "",
            f"Every 15 minutes that is about {per_day:,.0f} read request units a day. Alerts already sent are read in "
            "batches of 100 (no failed conditional write each); each new alert costs a claim, a start and a mark.",
            "",
            "Against the real services (a latency model: requests counted as above, times "
            f"{', '.join(f'{k} {v * 1000:.0f} ms' for k, v in LATENCY_SECONDS.items())}, "
            f"{PUBLISH_CONCURRENCY} alerts at once, the monitor's own CPU about 1 s per 10,000 users):",
            "",
            "| Users | Alerts in the run | Reads | Publishing | CPU | Total | Timeout |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            *[
                f"| {users:,} | {alerts:,} | {m['reads']:.1f} s | {m['publishing']:.1f} s | {m['cpu']:.1f} s "
                f"| {m['total']:.1f} s | {LAMBDA_TIMEOUT_SECONDS} s |"
                for users, alerts in ((10_000, first["alerts_sent"]), (100_000, 15_000))
                for m in (modelled_seconds(users, alerts),)
            ],
            "",
            f"The limit: a run over 100,000 users sends about {alerts_within_timeout(100_000):,} alerts before it "
            f"stops claiming {PUBLISH_RESERVE_SECONDS} s before its timeout; the rest go out on the next run, 15 "
            "minutes later, and the near-quota list is written either way.",
        ]
    )


def fmt_requests(requests: dict[str, int]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in requests.items()) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--write-readme", action="store_true")
    options = parser.parse_args()
    result = bench(options.users)
    text = report(result)
    print(text)
    print(json.dumps(result))
    if options.write_readme:
        write_section("quota", text)
        users, steady = result["users"], result["runs"][1]
        write_results(
            "quota",
            headlines(),
            {
                "read_units_per_user_run": steady["read_units"] / users,
                "seconds_per_user_run": modelled_seconds(users, 0)["total"] / users,
            },
        )


def headlines() -> list[tuple[str, str, str]]:
    modelled = modelled_seconds(100_000, 15_000)
    return [
        (
            "Quota monitor, 100,000 users, 15,000 crossing a threshold in one run",
            f"about {modelled['total']:.0f} s of the {LAMBDA_TIMEOUT_SECONDS} s timeout (a latency model); "
            f"the limit is about {alerts_within_timeout(100_000):,} alerts a run",
            "[Quota](docs/quota.md)",
        )
    ]


if __name__ == "__main__":
    main()

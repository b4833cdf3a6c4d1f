"""Benchmark: the dashboard aggregator on a synthetic 10,000-user hour, and the widget function's reads at 100 and at
10,000 users.

Aggregator: every user works 15 random minutes of the hour and exports, each of those minutes, tokens of the
four types, cost and active time (awsemf log events); the collector's log events reach the aggregator in
deliveries of up to 5,000 log events per minute. Measured on one core, in CPU seconds (time.process_time), the
median of `--repeat` runs over the whole hour: log events and data points per CPU second, peak memory of one
delivery (tracemalloc), DynamoDB items written per delivery against the distinct items its rollup touches, and
the items written when every delivery is retried (must be 0), and the claims (UpdateItem calls and their write
units: per call, the larger of the claim item's sizes before and after, per KB begun). The table is an in-memory
stand-in with DynamoDB's transaction semantics for what the aggregator uses (ledger and version conditions,
the claims' `if_not_exists`); every run must leave the same table, and the fast reading of a metrics delivery
must give the rollups of the reference reading. Each minute's log events are delivered in user order, not time
order, so every delivery of a minute writes to each of its 60 claim items: more claim writes than CloudWatch
Logs' deliveries, which follow arrival time, would cause.

The deployed function also pays the AWS SDK's CPU: the calls of the first deliveries are replayed through a
real botocore DynamoDB client whose requests never leave the process (a `before-send` hook answers with what the
in-memory table answered), with parameter validation as deployed (off) and as botocore's default (on). From
these, the cost per million log events of the aggregator's Lambda, beside what AWS's Claude Code guidance
(Logs Insights queries every 5 minutes over the same log group) would pay for scanning the same hour.

Widget: the same rollups for 100 and for 10,000 users are written to a table in moto (127.0.0.1), and every
widget is rendered once on each: the items read must be the same. Run: `make bench` (`--write-readme` updates
the section between the dashboard markers in docs/).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import random
import statistics
import time
import tracemalloc
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from benchmarks.moto_dynamodb import moto_dynamodb
from benchmarks.readme import write_results, write_section
from components.dashboard import AGGREGATOR_MEMORY_MB
from lambda_src.common.log_records import read_logs_batch
from lambda_src.dashboard_aggregator.handler import (
    DYNAMODB_CONFIG,
    RollupStore,
    Settings,
    aggregate,
    delivery_id,
    reference_rollup_batch,
    rollup_batch,
)
from offline.prices import (
    DYNAMODB_CALL_SECONDS,
    LAMBDA_MB_PER_VCPU,
    REGION,
    TRANSACTION_WRITE_UNITS,
    Function,
    gb_seconds,
    usd,
)
from tests.lambda_src.memory_table import MemoryTable
from tests.lambda_src.rollup_table import canonical
from tests.telemetry import METRICS_LOG_GROUP, Developer, emf_event, logs_batch, subscription_event

USERS = 10_000
ACTIVE_MINUTES = 15
DELIVERY_EVENTS = 5_000
REPEAT = 3
CLIENT_DELIVERIES = 12
HOUR = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

GUIDANCE_QUERIES = 10
"""Logs Insights queries the guidance's metrics aggregator starts every 5 minutes, each over the last 5 minutes of
the metrics log group (total tokens, active users and their details, cache, top users, operations, languages,
commits, lines, per-model rates; one more with fine-grained quotas)."""
AGGREGATOR = Function(AGGREGATOR_MEMORY_MB, arm=True)


def arrival() -> float:
    """The deliveries of the synthetic hour arrive at its end (a fixed clock: the run does not depend on today)."""
    return (HOUR + timedelta(hours=1)).timestamp()


SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SETTINGS = Settings("rollups", {METRICS_LOG_GROUP: "metrics"}, "queue", ZoneInfo("UTC"), 400)


def developer(user: int) -> Developer:
    return Developer(f"dev{user:05d}@example.com", f"u-{user}", f"acc-{user}", f"dept-{user % 8}", f"team-{user % 40}")


def deliveries(users: int, active_minutes: int = ACTIVE_MINUTES, seed: int = 7) -> tuple[list[bytes], int, int]:
    """(gzip deliveries, log events, data points) of the synthetic hour."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible synthetic fleet
    by_minute: dict[int, list[dict[str, Any]]] = defaultdict(list)
    points = 0
    for user in range(users):
        who = developer(user)
        for minute in rng.sample(range(60), active_minutes):
            at = HOUR + timedelta(minutes=minute, seconds=rng.randrange(60))
            scale = rng.randint(1, 20)
            for kind, amount in (("input", 300), ("output", 120), ("cacheRead", 9000), ("cacheCreation", 400)):
                by_minute[minute].append(
                    emf_event(at, who, {"claude_code.token.usage": amount * scale}, model=SONNET, type=kind)
                )
            by_minute[minute].append(
                emf_event(at, who, {"claude_code.cost.usage": 0.01 * scale, "claude_code.active_time.total": 30.0})
            )
            points += 6
    payloads, events = [], 0
    for minute in sorted(by_minute):
        batch = by_minute[minute]
        events += len(batch)
        for start in range(0, len(batch), DELIVERY_EVENTS):
            payloads.append(logs_batch(METRICS_LOG_GROUP, batch[start : start + DELIVERY_EVENTS]))
    return payloads, events, points


class RecordingTable:
    """The in-memory table, counting the calls the aggregator makes and keeping those of the first deliveries
    (operation, request, response) for the client replay."""

    def __init__(self, table: MemoryTable) -> None:
        self.table = table
        self.exceptions = table.exceptions
        self.calls: Counter[str] = Counter()
        self.seconds = 0.0
        """CPU seconds spent in the stand-in itself (the deployed function runs the AWS SDK instead)."""
        self.recording = False
        self.recorded: list[tuple[str, dict[str, Any], Any]] = []

    def _call(self, operation: str, **request: Any) -> Any:
        self.calls[operation] += 1
        started = time.process_time()
        response = getattr(self.table, operation)(**request)
        self.seconds += time.process_time() - started
        if self.recording:
            self.recorded.append((operation, request, response))
        return response

    def transact_write_items(self, **request: Any) -> Any:
        return self._call("transact_write_items", **request)

    def batch_get_item(self, **request: Any) -> Any:
        return self._call("batch_get_item", **request)

    def get_item(self, **request: Any) -> Any:
        return self._call("get_item", **request)

    def put_item(self, **request: Any) -> Any:
        return self._call("put_item", **request)

    def update_item(self, **request: Any) -> Any:
        return self._call("update_item", **request)


@dataclass
class Run:
    seconds: float
    table_seconds: float
    table: MemoryTable
    calls: Counter[str]
    writes_per_delivery: list[int]
    recorded: list[tuple[str, dict[str, Any], Any]]


def aggregator_run(payloads: list[bytes], record_deliveries: int = 0) -> Run:
    """One pass over the hour on a fresh table, in CPU seconds."""
    table = MemoryTable()
    client = RecordingTable(table)
    store = RollupStore(client, "rollups", arrival, pause=lambda _: None)
    writes = []
    started = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        for index, payload in enumerate(payloads):
            client.recording = index < record_deliveries
            before = table.written
            aggregate(subscription_event(payload), SETTINGS, store, lambda _: None, arrival)
            writes.append(table.written - before)
    seconds = time.process_time() - started
    return Run(seconds, client.seconds, table, client.calls, writes, client.recorded)


class Body:
    """A response body botocore reads (urllib3's stream)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> list[bytes]:
        return [self.data]


def wire(value: Any) -> str:
    """A binary attribute value as DynamoDB's JSON carries it (a claim's owner)."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} in a recorded response")


WRITES = ("put_item", "update_item")
"""Calls that write one item (a ledger arrival, a claim); a transaction writes each of its items."""


def client_seconds_per_item(recorded: list[tuple[str, dict[str, Any], Any]], validation: bool) -> float:
    """CPU seconds of a real botocore client per item written, replaying the recorded calls: each request is
    validated (or not), serialised and signed, and the table's recorded answer parsed; nothing is sent."""
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="benchmark",
        aws_secret_access_key="benchmark",  # noqa: S106 - never sent anywhere
        config=Config(parameter_validation=validation, retries={"max_attempts": 0}),
    )
    answer = [b"{}"]

    def send(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, 200, {"x-amzn-RequestId": "benchmark"}, Body(answer[0]))

    client.meta.events.register("before-send.dynamodb", send)
    calls = [
        (getattr(client, operation), request, json.dumps(response or {}, default=wire).encode())
        for operation, request, response in recorded
    ]
    items = sum(
        len(request["TransactItems"]) if operation == "transact_write_items" else operation in WRITES
        for operation, request, _ in recorded
    )
    call, request, body = calls[0]
    answer[0] = body
    call(**request)  # the service model and handlers load once, in the first call
    started = time.process_time()
    for call, request, body in calls:
        answer[0] = body
        call(**request)
    return (time.process_time() - started) / items


def bench_aggregator(users: int, repeat: int = REPEAT) -> dict[str, Any]:
    payloads, log_events, points = deliveries(users)
    runs = [aggregator_run(payloads, CLIENT_DELIVERIES if index == 0 else 0) for index in range(repeat)]
    if any(run.table.items != runs[0].table.items for run in runs[1:]):
        raise SystemExit("the runs left different tables")
    if any(run.calls["update_item"] == 0 for run in runs):
        raise SystemExit("the aggregator claimed no log events")
    first = runs[0]
    seconds = statistics.median(run.seconds for run in runs)
    own_seconds = statistics.median(run.seconds - run.table_seconds for run in runs)
    distinct_per_delivery = []
    for payload in payloads:
        batch = read_logs_batch(payload)
        with contextlib.redirect_stdout(io.StringIO()):
            rollup = rollup_batch(batch, SETTINGS, arrival())
            if payload is payloads[len(payloads) // 2] and canonical(rollup) != canonical(
                reference_rollup_batch(batch, SETTINGS, arrival())
            ):
                raise SystemExit("the fast reading of a delivery differs from the reference reading")
        distinct_per_delivery.append(len(rollup.counters) + sum(len(b) for b in rollup.presence.values()))
    tracemalloc.start()
    with contextlib.redirect_stdout(io.StringIO()):
        aggregate(
            subscription_event(payloads[len(payloads) // 2]),
            SETTINGS,
            RollupStore(MemoryTable(), "r", arrival),
            lambda _: None,
            arrival,
        )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    retried_before = first.table.written
    retried_claim_units = first.table.claim_write_units
    store = RollupStore(first.table, "rollups", arrival, pause=lambda _: None)
    with contextlib.redirect_stdout(io.StringIO()):
        for payload in payloads:
            aggregate(subscription_event(payload), SETTINGS, store, lambda _: None, arrival)
    client_off = client_seconds_per_item(first.recorded, validation=DYNAMODB_CONFIG.parameter_validation)
    client_on = client_seconds_per_item(first.recorded, validation=True)
    log_bytes = sum(
        len(event["message"].encode()) for payload in payloads for event in read_logs_batch(payload)["logEvents"]
    )
    result = {
        "users": users,
        "log_events": log_events,
        "data_points": points,
        "deliveries": len(payloads),
        "runs_seconds": [round(run.seconds, 2) for run in runs],
        "seconds": seconds,
        "own_seconds": own_seconds,
        "own_log_events_per_second": log_events / own_seconds,
        "log_events_per_second": log_events / seconds,
        "points_per_second": points / own_seconds,
        "peak_mib": peak / 2**20,
        "writes": sum(first.writes_per_delivery),
        "writes_per_delivery_max": max(first.writes_per_delivery),
        "distinct_items_per_delivery_max": max(distinct_per_delivery),
        "retry_writes": first.table.written - retried_before,
        "claim_write_units": retried_claim_units,
        "claim_requests": first.calls["update_item"],
        "retry_claim_write_units": first.table.claim_write_units - retried_claim_units,
        "deliveries_ids_distinct": len({delivery_id(read_logs_batch(p)) for p in payloads}) == len(payloads),
        "calls": dict(first.calls),
        "client_us_per_item": client_off * 1e6,
        "client_us_per_item_validated": client_on * 1e6,
        "log_bytes": log_bytes,
    }
    result["cost"] = cost_per_million(result)
    return result


def cost_per_million(result: dict[str, Any]) -> dict[str, float]:
    """USD per million log events: the aggregator's Lambda, and the guidance's Logs Insights scans."""
    scale = 1_000_000 / result["log_events"]
    items = result["writes"] * scale
    own_cpu = result["own_seconds"] * scale
    client_cpu = result["client_us_per_item"] / 1e6 * (items + result["claim_requests"] * scale)  # as measured
    compute = gb_seconds(own_cpu + client_cpu, AGGREGATOR) * usd("lambda_arm_gb_second")
    calls = sum(result["calls"].values()) * scale
    waiting = gb_seconds(calls * DYNAMODB_CALL_SECONDS, AGGREGATOR, cpu_bound=False) * usd("lambda_arm_gb_second")
    requests = result["deliveries"] * scale * usd("lambda_request")
    lambda_total = compute + waiting + requests
    scanned_gb = result["log_bytes"] * scale / 1e9 * GUIDANCE_QUERIES
    insights = scanned_gb * usd("logs_insights_gb")
    return {
        "own_cpu_seconds": own_cpu,
        "client_cpu_seconds": client_cpu,
        "compute": compute,
        "calls": calls,
        "waiting": waiting,
        "requests": requests,
        "lambda": lambda_total,
        "scanned_gb": scanned_gb,
        "insights": insights,
        "ratio": insights / lambda_total,
        "dynamodb_writes": items * TRANSACTION_WRITE_UNITS * usd("dynamodb_wru"),
        "claim_writes": result["claim_write_units"] * scale * usd("dynamodb_wru"),
    }


def bench_widget(users: int) -> int:
    """Items read by rendering every widget once, on rollups of `users` users written to moto."""
    from lambda_src.dashboard_widget.handler import WIDGETS, RollupReader, render
    from tests.lambda_src.rollup_table import create_table

    with moto_dynamodb() as client:
        table = f"rollups-{users}"  # moto keeps its tables for the life of the process
        create_table(client, table)
        memory = MemoryTable()
        store = RollupStore(memory, "rollups", arrival, pause=lambda _: None)
        payloads, _, _ = deliveries(users, active_minutes=1)  # every user has rollups; the volume does not matter
        with contextlib.redirect_stdout(io.StringIO()):
            for payload in payloads:
                aggregate(subscription_event(payload), SETTINGS, store, lambda _: None, arrival)
        items = [item for key, item in memory.items.items() if not key[0].startswith("LEDGER#")]
        for start in range(0, len(items), 25):
            client.batch_write_item(
                RequestItems={table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
            )
        reader = RollupReader(client, table)
        end = HOUR + timedelta(hours=1)
        user = min(key[0].removeprefix("USER#") for key in memory.items if key[0].startswith("USER#"))
        for widget in WIDGETS:
            params = {"widget": widget, "measure": "cost_usd", "period": "day", "limit": 10, "dimension": "team"}
            params["user"] = user  # the user widget's; the others ignore it
            event = {
                "widgetContext": {
                    "params": params,
                    "timeRange": {
                        "start": int((end - timedelta(hours=3)).timestamp() * 1000),
                        "end": int(end.timestamp() * 1000),
                    },
                }
            }
            render(event, reader, ZoneInfo("UTC"), end)
        return reader.items_read


def report(aggregator: dict[str, Any], reads: dict[int, int]) -> str:
    a, c = aggregator, aggregator["cost"]
    return "\n".join(
        [
            f"Aggregator, one core, synthetic hour of {a['users']:,} users ({a['log_events']:,} log events, "
            f"{a['data_points']:,} data points, {a['deliveries']} deliveries of up to {DELIVERY_EVENTS:,} log events), "
            f"median of {len(a['runs_seconds'])} runs:",
            "",
            "| Measure | Value |",
            "|---|---|",
            f"| Log events per CPU second, the aggregator's code | {a['own_log_events_per_second']:,.0f} |",
            f"| Log events per CPU second, with the in-memory table's own time | {a['log_events_per_second']:,.0f} |",
            f"| Data points per CPU second, the aggregator's code | {a['points_per_second']:,.0f} |",
            f"| Peak memory of one delivery | {a['peak_mib']:.0f} MiB |",
            f"| DynamoDB items written, whole hour | {a['writes']:,} |",
            f"| Items written per delivery, most | {a['writes_per_delivery_max']:,} "
            f"(distinct items and user buckets it touches: {a['distinct_items_per_delivery_max']:,}) |",
            f"| Items written when every delivery is retried | {a['retry_writes']} |",
            f"| Claims: UpdateItem calls, whole hour | {a['claim_requests']:,} |",
            f"| Claims: write units, whole hour (and again when every delivery is retried) | "
            f"{a['claim_write_units']:,} ({a['retry_claim_write_units']:,}); the rollups' transactions: "
            f"{a['writes'] * TRANSACTION_WRITE_UNITS:,} |",
            f"| AWS SDK CPU per item written, as deployed (parameter validation off) | "
            f"{a['client_us_per_item']:,.0f} µs |",
            f"| The same with botocore's parameter validation | {a['client_us_per_item_validated']:,.0f} µs |",
            "",
            f"Cost per million log events ({REGION} list prices from offline/prices.py: Lambda on arm64 "
            f"${usd('lambda_arm_gb_second'):.10f} per GB-second and ${usd('lambda_request') * 1e6:.2f} per million "
            f"requests, DynamoDB ${usd('dynamodb_wru') * 1e6:.3f} per million write units; Logs Insights "
            f"${usd('logs_insights_gb')} per GB scanned, the us-east-1 price, as no {REGION} rate was found):",
            "",
            "| | USD per million log events |",
            "|---|---:|",
            f"| Aggregator Lambda: CPU ({c['own_cpu_seconds']:,.0f} s of ours, {c['client_cpu_seconds']:,.0f} s "
            f"of the SDK; a CPU second is {LAMBDA_MB_PER_VCPU / 1024:.3f} GB-seconds below "
            f"{LAMBDA_MB_PER_VCPU:,} MB) | {c['compute']:.4f} |",
            f"| Aggregator Lambda: waiting on DynamoDB ({c['calls']:,.0f} calls at an assumed "
            f"{DYNAMODB_CALL_SECONDS * 1000:.0f} ms, {AGGREGATOR_MEMORY_MB} MB) | {c['waiting']:.4f} |",
            f"| Aggregator Lambda: requests (one per delivery) | {c['requests']:.4f} |",
            f"| **Aggregator Lambda** | **{c['lambda']:.4f}** |",
            f"| **Logs Insights, {GUIDANCE_QUERIES} queries every 5 minutes over the last 5 minutes** "
            f"({c['scanned_gb']:.1f} GB scanned) | **{c['insights']:.4f}** |",
            f"| Ratio: Logs Insights to the aggregator's Lambda | {c['ratio']:.0f} × |",
            f"| For scale: the aggregator's DynamoDB writes ({TRANSACTION_WRITE_UNITS} write units an item) "
            f"| {c['dynamodb_writes']:.2f} |",
            f"| For scale: the claims' DynamoDB writes (a write unit per KB of the claim item) "
            f"| {c['claim_writes']:.2f} |",
            "",
            "Widget function, every widget rendered once over the last 3 hours:",
            "",
            "| Users | DynamoDB items read |",
            "|---|---|",
            *[f"| {users:,} | {count} |" for users, count in sorted(reads.items())],
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--repeat", type=int, default=REPEAT, help="aggregator runs; the median is reported")
    parser.add_argument("--write-readme", action="store_true")
    options = parser.parse_args()
    aggregator = bench_aggregator(options.users, options.repeat)
    reads = {100: bench_widget(100), options.users: bench_widget(options.users)}
    text = report(aggregator, reads)
    print(text)
    print(json.dumps(aggregator, default=str))
    if options.write_readme:
        write_section("dashboard", text)
        write_results("dashboard", headlines(aggregator), measures(aggregator))


def measures(aggregator: dict[str, Any]) -> dict[str, float]:
    """What the cost model (offline/cost.py) prices: the aggregator's own CPU, the SDK's per item, the DynamoDB
    calls it waits on, and per user of the synthetic hour the items written and the deliveries."""
    users, log_events = aggregator["users"], aggregator["log_events"]
    return {
        "log_events_per_cpu_second": aggregator["own_log_events_per_second"],
        "sdk_cpu_seconds_per_item": aggregator["client_us_per_item"] / 1e6,
        "dynamodb_calls_per_log_event": sum(aggregator["calls"].values()) / log_events,
        "items_per_user_hour": aggregator["writes"] / users,
        "claim_write_units_per_log_event": aggregator["claim_write_units"] / log_events,
        "claim_requests_per_log_event": aggregator["claim_requests"] / log_events,
        "deliveries_per_user_hour": aggregator["deliveries"] / users,
    }


def headlines(aggregator: dict[str, Any]) -> list[tuple[str, str, str]]:
    cost, details = aggregator["cost"], "[Dashboard](docs/dashboard.md)"
    return [
        (
            "Dashboard aggregator",
            f"{aggregator['own_log_events_per_second']:,.0f} log events per CPU second "
            f"({aggregator['log_events_per_second']:,.0f} with the benchmark's in-memory table)",
            details,
        ),
        (
            "Aggregator's Lambda against Logs Insights every 5 minutes (AWS's guidance), per million log events",
            f"${cost['lambda']:.4f} against ${cost['insights']:.4f}: Logs Insights costs {cost['ratio']:.0f} × as much",
            details,
        ),
    ]


if __name__ == "__main__":
    main()

"""Benchmark: the dashboard aggregator on a synthetic 10,000-user hour, and the widget function's reads at 100 and at
10,000 users.

Aggregator: every user works 15 random minutes of the hour and exports, each of those minutes, tokens of the
four types, cost and active time (awsemf log events); the collector's log events reach the aggregator in
deliveries of up to 5,000 log events per minute. Measured on one core: log events and data points per second,
peak memory of one delivery (tracemalloc), DynamoDB items written per delivery against the distinct items its
rollup touches, and the items written when every delivery is retried (must be 0). The table is an in-memory
stand-in with DynamoDB's transaction semantics for what the aggregator uses (ledger and version conditions).

Widget: the same rollups for 100 and for 10,000 users are written to a table in moto (127.0.0.1), and every
widget is rendered once on each: the items read must be the same. Run: `make bench` (`--write-readme` updates
the README section between the dashboard markers).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import time
import tracemalloc
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from benchmarks.moto_dynamodb import moto_dynamodb
from benchmarks.readme import write_section
from lambda_src.common.log_records import read_logs_batch
from lambda_src.dashboard_aggregator.handler import RollupStore, Settings, aggregate, delivery_id, rollup_batch
from tests.lambda_src.memory_table import MemoryTable
from tests.telemetry import METRICS_LOG_GROUP, Developer, emf_event, logs_batch, subscription_event

USERS = 10_000
ACTIVE_MINUTES = 15
DELIVERY_EVENTS = 5_000
HOUR = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


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


def bench_aggregator(users: int) -> dict[str, Any]:
    payloads, log_events, points = deliveries(users)
    table = MemoryTable()
    store = RollupStore(table, "rollups", arrival, pause=lambda _: None)
    writes_per_delivery, distinct_per_delivery = [], []
    started = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        for payload in payloads:
            before = table.written
            aggregate(subscription_event(payload), SETTINGS, store, lambda _: None, arrival)
            writes_per_delivery.append(table.written - before)
    elapsed = time.process_time() - started
    for payload in payloads:
        rollup = rollup_batch(read_logs_batch(payload), SETTINGS, HOUR.timestamp())
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
    retried_before = table.written
    with contextlib.redirect_stdout(io.StringIO()):
        for payload in payloads:
            aggregate(subscription_event(payload), SETTINGS, store, lambda _: None, arrival)
    return {
        "users": users,
        "log_events": log_events,
        "data_points": points,
        "deliveries": len(payloads),
        "seconds": elapsed,
        "log_events_per_second": log_events / elapsed,
        "points_per_second": points / elapsed,
        "peak_mib": peak / 2**20,
        "writes": sum(writes_per_delivery),
        "writes_per_delivery_max": max(writes_per_delivery),
        "distinct_items_per_delivery_max": max(distinct_per_delivery),
        "retry_writes": table.written - retried_before,
        "deliveries_ids_distinct": len({delivery_id(read_logs_batch(p)) for p in payloads}) == len(payloads),
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
        for widget in WIDGETS:
            params = {"widget": widget, "measure": "cost_usd", "period": "day", "limit": 10, "dimension": "team"}
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
    a = aggregator
    return "\n".join(
        [
            f"Aggregator, one core, synthetic hour of {a['users']:,} users ({a['log_events']:,} log events, "
            f"{a['data_points']:,} data points, {a['deliveries']} deliveries of up to {DELIVERY_EVENTS:,} log events):",
            "",
            "| Measure | Value |",
            "|---|---|",
            f"| Log events per second | {a['log_events_per_second']:,.0f} |",
            f"| Data points per second | {a['points_per_second']:,.0f} |",
            f"| Peak memory of one delivery | {a['peak_mib']:.0f} MiB |",
            f"| DynamoDB items written, whole hour | {a['writes']:,} |",
            f"| Items written per delivery, most | {a['writes_per_delivery_max']:,} "
            f"(distinct items and user buckets it touches: {a['distinct_items_per_delivery_max']:,}) |",
            f"| Items written when every delivery is retried | {a['retry_writes']} |",
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
    parser.add_argument("--write-readme", action="store_true")
    options = parser.parse_args()
    aggregator = bench_aggregator(options.users)
    reads = {100: bench_widget(100), options.users: bench_widget(options.users)}
    text = report(aggregator, reads)
    print(text)
    print(json.dumps(aggregator))
    if options.write_readme:
        write_section("dashboard", text)


if __name__ == "__main__":
    main()

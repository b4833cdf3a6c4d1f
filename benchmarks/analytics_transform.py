"""Benchmark: the analytics Firehose transform, log events and rows per CPU second on one core (time.process_time,
the median of `--repeat` runs), rows out against data points in.

A synthetic fleet exports Claude Code's metrics every minute and its events as it works, for a quarter of an
hour that crosses an hour boundary (so some batches are split and put back, as in production). Log events are
packed into CloudWatch Logs subscription batches of 100 and Firehose invocations of 0.2 MB, the transform's
buffer. Put-back records go through the transform again, as Firehose would send them. Run:
`make bench` (`--write-readme` updates the section between the analytics-transform markers in docs/).
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
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.readme import write_results, write_section
from components.analytics import TRANSFORM_BUFFER_BYTES, AnalyticsArgs
from lambda_src.analytics_transform.handler import Settings, transform
from tests.lake import PARQUET_COMPRESSION, arrow_values, parquet_bytes
from tests.telemetry import (
    EVENTS_LOG_GROUP,
    METRICS_LOG_GROUP,
    Developer,
    api_request,
    claude_event,
    emf_event,
    firehose_event,
    logs_batch,
)

USERS = 2_000
MINUTES = 15
REPEAT = 3
START = datetime(2026, 12, 31, 23, 52, tzinfo=UTC)
BATCH_EVENTS = 100
INVOCATION_BYTES = TRANSFORM_BUFFER_BYTES
FLUSH_SECONDS = AnalyticsArgs.buffering_interval_seconds
"""Firehose writes a partition's object every buffering interval (the stack's default) at this volume."""
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


def fleet(users: int, minutes: int, seed: int = 11) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """(metric log events, event log events, data points) of the fleet's quarter hour."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible synthetic fleet
    metric_events: list[dict[str, Any]] = []
    claude_events: list[dict[str, Any]] = []
    points = 0
    for user in range(users):
        who = Developer(
            f"dev{user}@example.com",
            f"u-{user}",
            f"acc-{user}",
            f"dept-{user % 8}",
            f"team-{user % 40}",
            f"CC-{user % 12}",
            f"s-{user}",
        )
        for minute in range(minutes):
            at = START + timedelta(minutes=minute, seconds=rng.randrange(60))
            for token_type in ("input", "output", "cacheRead", "cacheCreation"):
                metric_events.append(
                    emf_event(
                        at, who, {"claude_code.token.usage": rng.randrange(1, 50_000)}, model=SONNET, type=token_type
                    )
                )
            metric_events.append(emf_event(at, who, {"claude_code.cost.usage": rng.random()}, model=SONNET))
            metric_events.append(
                emf_event(at, who, {"claude_code.active_time.total": 40, "claude_code.commit.count": 1})
            )
            points += 7
            claude_events.append(api_request(at, who, SONNET, (1000, 200, 30_000, 500), 0.02))
            claude_events.append(
                claude_event(at, who, "tool_result", tool_name="Bash", success="true", duration_ms="90")
            )
    by_time = sorted(metric_events, key=lambda event: event["timestamp"])
    return by_time, sorted(claude_events, key=lambda event: event["timestamp"]), points + len(claude_events)


def invocations(log_group: str, log_events: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Firehose invocations of about INVOCATION_BYTES of gzip batches, as the 0.2 MB buffer hands them over."""
    payloads: list[bytes] = []
    size = 0
    for start in range(0, len(log_events), BATCH_EVENTS):
        batch = logs_batch(log_group, log_events[start : start + BATCH_EVENTS])
        payloads.append(batch)
        size += len(batch)
        if size >= INVOCATION_BYTES:
            yield firehose_event(payloads)
            payloads, size = [], 0
    if payloads:
        yield firehose_event(payloads)


def lake_bytes(written: dict[tuple[str, str], list[bytes]], flush_seconds: int = FLUSH_SECONDS) -> dict[str, int]:
    """What the rows the transform returned take in the lake: JSON bytes, and Parquet bytes with one object per
    table, partition and Firehose flush (rows grouped by `flush_seconds` of their event time)."""
    json_bytes = 0
    objects: dict[tuple[str, str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for (dt, hour), records in written.items():
        for record in records:
            json_bytes += len(record)
            for line in record.splitlines():
                values = json.loads(line)
                table = "metrics" if "metric_name" in values else "events"
                flush = int(datetime.fromisoformat(values["event_time"]).timestamp() // flush_seconds)
                objects[(table, dt, hour, flush)].append(arrow_values(values))
    parquet = sum(parquet_bytes(key[0], rows) for key, rows in objects.items())
    return {"json_bytes": json_bytes, "parquet_bytes": parquet, "lake_objects": len(objects)}


def measure(users: int = USERS, minutes: int = MINUTES, repeat: int = 1) -> dict[str, Any]:
    """The transform over the fleet's quarter hour, `repeat` times: the median CPU seconds of a run; the lake's
    size from the first run's rows."""
    metric_events, claude_events, points = fleet(users, minutes)
    written: dict[tuple[str, str], list[bytes]] = defaultdict(list)
    runs = [run(metric_events, claude_events, written if index == 0 else None) for index in range(repeat)]
    if any(result != runs[0] | {"cpu_seconds": result["cpu_seconds"]} for result in runs):
        raise SystemExit("the runs differ")
    return {
        **runs[0],
        "users": users,
        "minutes": minutes,
        "log_events": len(metric_events) + len(claude_events),
        "metric_event_bytes": statistics.mean(len(event["message"].encode()) for event in metric_events),
        "claude_event_bytes": statistics.mean(len(event["message"].encode()) for event in claude_events),
        "points": points,
        "runs_cpu_seconds": [round(result["cpu_seconds"], 2) for result in runs],
        "cpu_seconds": statistics.median(result["cpu_seconds"] for result in runs),
        **lake_bytes(written),
    }


def run(
    metric_events: list[dict[str, Any]],
    claude_events: list[dict[str, Any]],
    written: dict[tuple[str, str], list[bytes]] | None = None,
) -> dict[str, Any]:
    """One pass of the transform over the fleet; the rows of every Ok record go to `written` (dt, hour)."""
    pending = [*invocations(METRICS_LOG_GROUP, metric_events), *invocations(EVENTS_LOG_GROUP, claude_events)]
    settings = Settings({METRICS_LOG_GROUP: "metrics", EVENTS_LOG_GROUP: "events"})
    records = rows = put_back = failed = calls = 0
    cpu = 0.0
    while pending:
        event = pending.pop()
        stream: list[bytes] = []

        def put(batch: list[bytes], kept: list[bytes] = stream) -> list[bool]:
            kept.extend(batch)
            return [True] * len(batch)

        started = time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):  # the function's own JSON logs
            response = transform(event, settings, put, lambda: START.timestamp() + 3600)
        cpu += time.process_time() - started
        calls += 1
        records += len(event["records"])
        for record in response["records"]:
            if record["result"] == "Ok":
                data = base64.b64decode(record["data"])
                rows += data.count(b"\n")
                if written is not None:
                    keys = record["metadata"]["partitionKeys"]
                    written[(keys["dt"], keys["hour"])].append(data)
            failed += record["result"] == "ProcessingFailed"
        if stream:
            put_back += len(stream)
            pending.append(firehose_event(stream))
    return {
        "records": records,
        "invocations": calls,
        "put_back": put_back,
        "rows": rows,
        "failed": failed,
        "cpu_seconds": cpu,
    }


def table(result: dict[str, Any]) -> str:
    seconds = result["cpu_seconds"]
    lines = [
        "| Fleet | Log events | Data points and events in | Rows out | Firehose records | Put back | "
        "Log events per CPU second | Rows per CPU second |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| {result['users']:,} users, {result['minutes']} min across midnight | {result['log_events']:,} "
        f"| {result['points']:,} | {result['rows']:,} | {result['records']:,} | {result['put_back']:,} "
        f"| {result['log_events'] / seconds:,.0f} | {result['rows'] / seconds:,.0f} |",
        "",
        f"The rows returned, in the lake: {result['json_bytes'] / result['log_events']:,.0f} bytes of JSON per log "
        f"event, {result['parquet_bytes'] / result['log_events']:,.0f} bytes of Parquet ({PARQUET_COMPRESSION}, "
        f"{result['lake_objects']} objects: one per table, partition and {FLUSH_SECONDS} s buffer, written with "
        "pyarrow from the Glue schemas, a model of Firehose's conversion).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-readme", action="store_true", help="update the README's analytics-transform table")
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--repeat", type=int, default=REPEAT, help="runs; the median is reported")
    args = parser.parse_args()
    result = measure(args.users, repeat=args.repeat)
    if result["rows"] != result["points"] or result["failed"]:
        raise SystemExit(f"rows out {result['rows']:,} != data points in {result['points']:,}: {result}")
    text = table(result)
    print(text)
    print(
        f"{result['invocations']} transform invocations, {result['cpu_seconds']:.2f} s of CPU "
        f"(median of {result['runs_cpu_seconds']})"
    )
    if args.write_readme:
        write_section("analytics-transform", text)
        write_results(
            "analytics-transform",
            headlines(result),
            {
                "log_events_per_cpu_second": result["log_events"] / result["cpu_seconds"],
                "parquet_bytes_per_log_event": result["parquet_bytes"] / result["log_events"],
                "metric_event_bytes": result["metric_event_bytes"],
                "claude_event_bytes": result["claude_event_bytes"],
            },
        )


def headlines(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    rate = result["rows"] / result["cpu_seconds"]
    return [("Analytics transform (Firehose)", f"{rate:,.0f} rows per CPU second", "[Analytics](docs/analytics.md)")]


if __name__ == "__main__":
    main()

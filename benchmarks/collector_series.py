"""Benchmark: CloudWatch metric series the rendered collector configuration creates, by fleet size.

A synthetic fleet sends one day of Claude Code's documented metrics with realistic attributes (per-user
and per-session ones included). The awsemf model in `components.collector_config` turns each data point
into the series the exporter would emit. Run: `make bench` (prints the table; `--write-readme` updates
the README section between the collector-series markers).
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from benchmarks.readme import FLEETS, write_results, write_section
from components.collector_config import (
    EXAMPLE_ORGANISATION_VALUES,
    CollectorPipelineSettings,
    exported_series,
    render_collector_config,
)
from lambda_src.common.telemetry import COST_METRIC, TOKEN_METRIC, TOKEN_TYPES
from offline.prices import usd

MODELS = ("claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805", "claude-haiku-4-5-20251001")
TOOLS = ("Edit", "Write", "NotebookEdit")
DECISIONS = ("accept", "reject")
LANGUAGES = ("Python", "TypeScript", "Go", "Java", "Markdown", "unknown")
DEPARTMENTS, TEAMS, COST_CENTERS = (
    EXAMPLE_ORGANISATION_VALUES["*"][name] for name in ("department", "team.id", "cost_center")
)
PRICE_PER_METRIC_MONTH = usd("metric_month")


def fleet_day(users: int, seed: int = 7) -> list[tuple[str, dict[str, str]]]:
    """Data points of one day: two sessions per user, each sending every metric with its attributes."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible synthetic fleet, not a secret
    points: list[tuple[str, dict[str, str]]] = []
    for user in range(users):
        team = rng.randrange(TEAMS)
        identity = {
            "user.email": f"developer{user}@example.com",
            "user.id": f"{user:064x}",
            "user.account_uuid": f"00000000-0000-4000-8000-{user:012x}",
            "organization.id": "6f1c2d3e-0000-4000-8000-000000000001",
            "department": f"department-{team % DEPARTMENTS}",
            "team.id": f"team-{team}",
            "cost_center": f"CC-{1000 + team % COST_CENTERS}",
            "terminal.type": rng.choice(("vscode", "iTerm.app", "tmux")),
            "service.name": "claude-code",
            "os.type": rng.choice(("darwin", "linux", "windows")),
        }
        for session in range(2):
            base = {**identity, "session.id": f"{user}-{session}-{rng.getrandbits(32):08x}"}
            model = rng.choice(MODELS)
            for name in ("claude_code.session.count", "claude_code.active_time.total", "claude_code.commit.count",
                         "claude_code.pull_request.count"):  # fmt: skip
                points.append((name, base))
            points.append(("claude_code.cost.usage", {**base, "model": model}))
            for token_type in TOKEN_TYPES:
                points.append(("claude_code.token.usage", {**base, "model": model, "type": token_type}))
            for line_type in ("added", "removed"):
                points.append(("claude_code.lines_of_code.count", {**base, "type": line_type}))
            for _ in range(3):
                decision = {
                    "tool_name": rng.choice(TOOLS),
                    "decision": rng.choice(DECISIONS),
                    "language": rng.choice(LANGUAGES),
                }
                points.append(("claude_code.code_edit_tool.decision", {**base, **decision}))
    return points


ALL_GROUPS_FOR_USAGE = {group: [TOKEN_METRIC, COST_METRIC] for group in ("team", "costCenter")}
"""The opt-in a chargeback team might choose: tokens and cost per team and per cost center in CloudWatch."""


def exporter(rollup: str, group_metrics: dict[str, list[str]] | None = None) -> dict[str, Any]:
    settings = CollectorPipelineSettings(
        region="eu-west-1",
        environment="bench",
        metrics_namespace="ClaudeCode",
        metrics_log_group="/bench/metrics",
        events_log_group="/bench/events",
        identity_mode="jwt",
        group_metrics=group_metrics or {},
    )
    emf = render_collector_config(settings)["exporters"]["awsemf"]
    return {**emf, "dimension_rollup_option": rollup}


def measure() -> list[dict[str, Any]]:
    ours, default_rollup = exporter("NoDimensionRollup"), exporter("ZeroAndSingleDimensionRollup")
    opted_in = exporter("NoDimensionRollup", ALL_GROUPS_FOR_USAGE)
    rows = []
    for users in FLEETS:
        points = fleet_day(users)
        started = time.perf_counter()
        series = len(exported_series(ours, points))
        seconds = time.perf_counter() - started
        rows.append(
            {
                "users": users,
                "points": len(points),
                "series": series,
                "opted_in_series": len(exported_series(opted_in, points)),
                "default_rollup_series": len(exported_series(default_rollup, points)),
                "seconds": seconds,
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        "| Users | Data points per day | Series, default sets | Per month | Series, tokens and cost per team "
        "and cost center opted in | Per month | Series, awsemf default roll-up | Per month |"
    )
    lines = [header, "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        ours, opted, default = row["series"], row["opted_in_series"], row["default_rollup_series"]
        lines.append(
            f"| {row['users']:,} | {row['points']:,} | {ours:,} | ${ours * PRICE_PER_METRIC_MONTH:,.2f} "
            f"| {opted:,} | ${opted * PRICE_PER_METRIC_MONTH:,.2f} "
            f"| {default:,} | ${default * PRICE_PER_METRIC_MONTH:,.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-readme", action="store_true", help="update the README's collector-series table")
    args = parser.parse_args()
    rows = measure()
    text = table(rows)
    print(text)
    for row in rows:
        print(f"{row['users']:>6} users: {row['points']:,} points modelled in {row['seconds']:.2f} s")
    if args.write_readme:
        write_section("collector-series", text)
        write_results("collector-series", headlines(rows), measures(rows))


def measures(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Series with the default sets by fleet size (`series_<developers>`), which the cost model prices."""
    return {f"series_{row['users']}": row["series"] for row in rows}


def headlines(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    smallest, largest = rows[0], rows[-1]
    return [
        (
            f"CloudWatch metric series, default sets, {largest['users']:,} developers",
            f"{largest['series']:,} (${largest['series'] * PRICE_PER_METRIC_MONTH:,.2f} a month); "
            f"{smallest['series']:,} at {smallest['users']:,}",
            "[Collector](docs/collector.md#metrics-aggregate-dimensions-only)",
        )
    ]


if __name__ == "__main__":
    main()

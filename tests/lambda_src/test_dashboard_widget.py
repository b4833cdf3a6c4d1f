"""The widget function on rollups the aggregator wrote in moto: every widget with data and without, the dashboard's
time range, and reads that do not grow with the number of users."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from lambda_src.dashboard_widget.handler import MAX_DAYS, WIDGETS, RollupReader, render, time_range
from tests.clock import Clock
from tests.lambda_src.rollup_table import SONNET, SONNET_VERSION, Deployed, usage
from tests.telemetry import (
    EVENTS_LOG_GROUP,
    METRICS_LOG_GROUP,
    Developer,
    api_request,
    claude_event,
    emf_event,
    logs_batch,
)

NOON = datetime(2026, 11, 23, 12, 1, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")
PARAMS: dict[str, dict[str, Any]] = {
    "active_users": {},
    "cost": {},
    "top_users": {"measure": "tokens", "period": "day", "limit": 5},
    "groups": {"dimension": "team"},
    "api_errors": {},
    "api_latency": {},
    "tool_results": {},
    "data_quality": {},
    "quota": {},
}


def widget_event(widget: str, start: datetime, end: datetime, **params: Any) -> dict[str, Any]:
    """What the dashboard sends: the widget's parameters and the dashboard's time range in milliseconds."""
    return {
        "widgetContext": {
            "dashboardName": "ccm-test",
            "widgetId": "widget-1",
            "params": {"widget": widget, **params},
            "timeRange": {
                "mode": "relative",
                "start": int(start.timestamp() * 1000),
                "end": int(end.timestamp() * 1000),
            },
            "timezone": {"label": "UTC", "offsetISO": "+00:00", "offsetInMinutes": 0},
        }
    }


def show(deployed: Deployed, widget: str, hours: float = 3, **params: Any) -> tuple[str, int]:
    reader = RollupReader(deployed.dynamodb, deployed.table)
    output = render(
        widget_event(widget, NOON - timedelta(hours=hours), NOON + timedelta(minutes=5), **params),
        reader,
        UTC_ZONE,
        NOON,
    )
    assert isinstance(output, str)
    return output, reader.items_read


def fleet(size: int) -> list[Developer]:
    return [Developer(email=f"dev{i:05d}@example.com", team=f"team-{i % 4}", session=f"s-{i}") for i in range(size)]


def fill(deployed: Deployed, developers: list[Developer]) -> None:
    metrics = [event for index, dev in enumerate(developers) for event in usage(NOON, dev, scale=index + 1)]
    for start in range(0, len(metrics), 2000):
        deployed.deliver(logs_batch(METRICS_LOG_GROUP, metrics[start : start + 2000]))
    events = [
        api_request(NOON, developers[0], SONNET, (10, 20, 30, 40), 0.01),
        claude_event(NOON, developers[0], "api_error", model=SONNET, status_code="529", duration_ms="50"),
        claude_event(NOON, developers[0], "tool_result", tool_name="Bash", success="true", duration_ms="12"),
        claude_event(NOON, developers[0], "tool_result", tool_name="Bash", success="false", duration_ms="40"),
    ]
    deployed.deliver(logs_batch(EVENTS_LOG_GROUP, events))


@pytest.mark.parametrize("widget", sorted(WIDGETS))
def test_each_widget_says_there_is_no_data_yet_on_an_empty_table(deployed: Deployed, widget: str) -> None:
    output, _ = show(deployed, widget, **PARAMS[widget])
    assert "No data yet" in output


def test_the_widgets_show_the_rollups(deployed: Deployed) -> None:
    fill(deployed, fleet(3))

    active, _ = show(deployed, "active_users")
    assert '<span class="big">3</span> distinct users on 2026-11-23' in active
    assert "2026-11-23T12:00Z" in active

    cost, _ = show(deployed, "cost")
    # 1 + 2 + 3 minutes of work at $0.0105 each
    assert cost.count("$0.06") >= 3 and SONNET_VERSION in cost

    top, _ = show(deployed, "top_users", measure="cost_usd", period="month", limit=2)
    assert top.index("dev00002@example.com") < top.index("dev00001@example.com")
    assert "dev00000@example.com" not in top and "Top 2 by cost, month 2026-11" in top

    teams, _ = show(deployed, "groups", dimension="team")
    assert "team-0" in teams and "team-2" in teams

    errors, _ = show(deployed, "api_errors")
    assert "529" in errors and "50.0%" in errors

    latency, _ = show(deployed, "api_latency")
    assert "1.20 s" in latency and "≤ 2 s" in latency

    tools, _ = show(deployed, "tool_results")
    assert "Bash" in tools and "50.0%" in tools

    quality, _ = show(deployed, "data_quality")
    assert "0.0%</span> of tokens without a user" in quality and "2.0.14" in quality
    assert "Models without a price" not in quality and "not charted" not in quality


def test_data_quality_shows_unpriced_models_and_events_it_does_not_chart(deployed: Deployed) -> None:
    ada = Developer()
    deployed.deliver(
        logs_batch(
            METRICS_LOG_GROUP,
            [
                emf_event(NOON, ada, {"claude_code.token.usage": 5000}, model="claude-opus-5-5", type="input"),
                emf_event(NOON, ada, {"claude_code.cost.usage": 0.25}, model="claude-opus-5-5"),
            ],
        )
    )
    deployed.deliver(logs_batch(EVENTS_LOG_GROUP, [claude_event(NOON, ada, "assistant_response", response_length=6)]))
    quality, _ = show(deployed, "data_quality")
    assert "Models without a price: costed at the client's figure" in quality
    assert "<td>claude-opus-5-5</td><td>5,000</td><td>$0.25</td>" in quality
    assert "<td>assistant_response</td><td>1</td>" in quality


def test_an_unknown_widget_or_dimension_says_what_is_allowed(deployed: Deployed) -> None:
    output, _ = show(deployed, "pie_chart")
    assert "one of active_users, cost" in output
    groups, _ = show(deployed, "groups", dimension="user")
    assert "department, team, cost_center" in groups


def test_describe_returns_the_widget_documentation() -> None:
    output = render({"describe": True}, RollupReader(None, "unused"), UTC_ZONE, NOON)
    assert isinstance(output, dict) and "top_users" in output["markdown"]


def test_the_range_follows_the_zoom_and_is_bounded() -> None:
    zoomed = time_range(
        {
            "timeRange": {
                "start": int((NOON - timedelta(days=30)).timestamp() * 1000),
                "end": int(NOON.timestamp() * 1000),
                "zoom": {
                    "start": int((NOON - timedelta(days=1)).timestamp() * 1000),
                    "end": int(NOON.timestamp() * 1000),
                },
            }
        },
        UTC_ZONE,
        NOON,
    )
    assert zoomed.days == ["2026-11-22", "2026-11-23"]
    year = time_range(
        {
            "timeRange": {
                "start": int((NOON - timedelta(days=365)).timestamp() * 1000),
                "end": int(NOON.timestamp() * 1000),
            }
        },
        UTC_ZONE,
        NOON,
    )
    assert len(year.days) == MAX_DAYS and year.truncated and year.days[-1] == "2026-11-23"
    berlin = time_range({}, ZoneInfo("Europe/Berlin"), datetime(2026, 12, 31, 23, 30, tzinfo=UTC))
    assert berlin.days[-1] == "2027-01-01"


def test_items_read_per_render_do_not_grow_with_users(aws_client: Any, clock: Clock) -> None:
    few, many = Deployed(aws_client, "rollups-few", clock), Deployed(aws_client, "rollups-many", clock)
    fill(few, fleet(6))  # at least as many users as the top list's limit
    fill(many, fleet(60))
    for widget, params in PARAMS.items():
        _, read_few = show(few, widget, **params)
        _, read_many = show(many, widget, **params)
        assert read_few == read_many, widget

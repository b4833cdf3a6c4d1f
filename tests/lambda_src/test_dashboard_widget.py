"""The widget function on rollups the aggregator wrote in moto: every widget with data and without, the dashboard's
time range, reads that do not grow with the number of users, and hostile or broken input (wrong types, impossible
ranges, a missing or throttled table, reads that never finish), each shown as a short escaped message."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from lambda_src.common import rollups as keys
from lambda_src.common.dynamodb import ATTEMPTS
from lambda_src.dashboard_widget import handler as widget_handler
from lambda_src.dashboard_widget.handler import MAX_DAYS, STYLE, WIDGETS, RollupReader, render, time_range
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


# Hostile and broken input: every failure is a short escaped message, logged ------------------------------------

MARK = "<b>x</b>"  # hostile markup: must never come back as markup


class FakeContext:
    """Lambda's context object: a request id and the time left, which runs down with the test's clock."""

    def __init__(self, clock: Clock, seconds: float = 30.0) -> None:
        self.aws_request_id = "req-1234"
        self.clock = clock
        self.deadline = clock.now() + timedelta(seconds=seconds)

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - self.clock.now()).total_seconds() * 1000)


def logged(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def failed(output: str | dict[str, str]) -> str:
    """The output of a widget that could not be shown: one short message, every value escaped."""
    assert isinstance(output, str)
    assert output.startswith(STYLE) and "Cannot show this widget: " in output
    assert MARK not in output and "<script" not in output
    body = output.removeprefix(STYLE)
    assert set(re.findall(r"</?([a-z]+)", body)) <= {"p"}, body
    assert len(body) < 600
    return html.unescape(body)


def send(deployed: Deployed, event: Any, reader: RollupReader | None = None) -> str:
    return failed(render(event, reader or RollupReader(deployed.dynamodb, deployed.table), UTC_ZONE, NOON))


def with_context(**changes: Any) -> dict[str, Any]:
    event = widget_event("top_users", NOON - timedelta(hours=3), NOON)
    event["widgetContext"].update(changes)
    return event


def with_range(start: Any, end: Any, zoom: dict[str, Any] | None = None) -> dict[str, Any]:
    return with_context(timeRange={"start": start, "end": end, **({"zoom": zoom} if zoom else {})})


MS = int(NOON.timestamp() * 1000)


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ("cost", 'the request is "cost", not an object'),
        (["cost"], 'the request is ["cost"], not an object'),
        ({"widgetContext": "cost"}, 'widgetContext is "cost", not an object'),
        ({"widgetContext": {"params": ["cost"]}}, 'widgetContext.params is ["cost"], not an object'),
        ({"widgetContext": {"params": {"widget": MARK}}}, 'unknown widget "<b>x</b>"'),
        ({"widgetContext": {"params": {"widget": ["cost"]}}}, 'unknown widget ["cost"]'),
        ({"widgetContext": {"params": {"limit": 3}}}, "no widget parameter"),
        (with_context(timeRange="last 3 hours"), 'widgetContext.timeRange is "last 3 hours", not an object'),
        (with_range(MS - 1, MS, {"start": MS, "end": [MS]}), "the time range's end is [" + str(MS)),
        (with_range("yesterday", MS), 'the time range\'s start is "yesterday", not a time in epoch milliseconds'),
        (with_range(True, MS), "the time range's start is true, not a time in epoch milliseconds"),
    ],
    ids=[
        "text",
        "list",
        "context-text",
        "params-list",
        "markup",
        "widget-list",
        "no-widget",
        "range-text",
        "zoom-end-list",
        "start-text",
        "start-bool",
    ],
)
def test_parameters_of_the_wrong_type_say_what_is_wrong(deployed: Deployed, event: Any, says: str) -> None:
    text = send(deployed, event)
    assert says in text, text


@pytest.mark.parametrize(
    ("params", "says", "check"),
    [
        ({"limit": "ten"}, 'the limit parameter is "ten", not a whole number', "Set limit to a number from 1 to 25."),
        ({"limit": ""}, 'the limit parameter is "", not a whole number', "from 1 to 25"),
        ({"limit": [5]}, "the limit parameter is [5], not a whole number", "from 1 to 25"),
        ({"limit": True}, "the limit parameter is true, not a whole number", "from 1 to 25"),
        ({"limit": 2.5}, "the limit parameter is 2.5, not a whole number", "from 1 to 25"),
        ({"limit": float("nan")}, "the limit parameter is NaN, not a whole number", "from 1 to 25"),
        ({"limit": MARK}, 'the limit parameter is "<b>x</b>", not a whole number', "from 1 to 25"),
        ({"measure": ["cost_usd"]}, 'the measure parameter is ["cost_usd"]', "one of tokens, cost_usd"),
        ({"period": "week"}, 'the period parameter is "week"', "Set period to one of day, month."),
    ],
    ids=["word", "empty", "list", "bool", "fraction", "nan", "markup", "measure-list", "period-unknown"],
)
def test_bad_top_users_parameters_say_what_is_allowed(
    deployed: Deployed, params: dict[str, Any], says: str, check: str
) -> None:
    text = send(deployed, widget_event("top_users", NOON - timedelta(hours=3), NOON, **params))
    assert says in text and check in text, text


def test_a_dimension_of_the_wrong_type_says_what_is_allowed(deployed: Deployed) -> None:
    text = send(deployed, widget_event("groups", NOON - timedelta(hours=3), NOON, dimension=["team"]))
    assert 'the dimension parameter is ["team"]' in text and "one of department, team, cost_center" in text


def test_a_limit_given_as_digits_or_out_of_range_still_renders(deployed: Deployed) -> None:
    fill(deployed, fleet(3))
    assert "Top 2 by tokens" in show(deployed, "top_users", limit="2")[0]
    assert "Top 3 by tokens" in show(deployed, "top_users", limit=100)[0]  # held to the 25 kept, 3 users here
    assert "Top 1 by tokens" in show(deployed, "top_users", limit=-4)[0]


@pytest.mark.parametrize(
    ("event", "says"),
    [
        (
            widget_event("cost", NOON, NOON - timedelta(days=1)),
            "the time range starts (2026-11-23 12:01 UTC) after it ends (2026-11-22 12:01 UTC)",
        ),
        (
            with_range(MS - 3_600_000, MS, {"start": MS, "end": MS - 1}),
            "the time range starts (2026-11-23 12:01 UTC) after",
        ),
        (
            with_range(MS, int(datetime(9999, 12, 31, tzinfo=UTC).timestamp() * 1000)),
            "the time range's end (9999-12-31 00:00 UTC) is not a usable time: it must lie between 1970 and 2027-11-24",
        ),
        (with_range(MS, 10**30), "the time range's end (1000000000000000000000000000000) is not a usable time"),
        (with_range(-86_400_000, MS), "the time range's start (-86400000) is not a usable time"),
        (with_range(-(10**30), -1), "the time range's end (-1) is not a usable time"),
        (with_range(float("-inf"), MS), "the time range's start (-Infinity) is not a usable time"),
        (with_range(MS, float("nan")), "the time range's end (NaN) is not a usable time"),
    ],
    ids=[
        "start-after-end",
        "zoom-start-after-end",
        "year-9999",
        "beyond-any-date",
        "negative",
        "both-negative",
        "minus-infinity",
        "nan",
    ],
)
def test_ranges_that_cannot_be_shown_say_so(deployed: Deployed, event: dict[str, Any], says: str) -> None:
    text = send(deployed, event)
    assert says in text and "Pick a time range in the dashboard's time picker" in text, text


def test_a_range_ending_within_a_year_from_now_is_shown(deployed: Deployed) -> None:
    reader = RollupReader(deployed.dynamodb, deployed.table)
    output = render(widget_event("cost", NOON, NOON + timedelta(days=300)), reader, UTC_ZONE, NOON)
    assert isinstance(output, str) and "No data yet" in output


def test_a_missing_table_says_which_and_what_to_check(deployed: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    reader = RollupReader(deployed.dynamodb, "rollups-gone")
    for widget in sorted(WIDGETS):
        text = send(deployed, widget_event(widget, NOON - timedelta(hours=3), NOON, **PARAMS[widget]), reader)
        assert "the rollup table rollups-gone does not exist" in text
        assert "Check the function's TABLE_NAME" in text
    records = logged(capsys)
    assert len(records) == len(WIDGETS)
    assert all(r["level"] == "ERROR" and r["error"] == "ResourceNotFoundException" for r in records)
    assert {r["widget"] for r in records} == set(WIDGETS)


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "ThrottlingException"])
def test_throttling_says_to_refresh_and_where_to_look(deployed: Deployed, code: str) -> None:
    client = deployed.dynamodb
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "get_item", service_error_code=code, service_message="Rate exceeded", http_status_code=400
        )
        text = send(
            deployed, widget_event("quota", NOON - timedelta(hours=3), NOON), RollupReader(client, deployed.table)
        )
    assert f"DynamoDB is throttling reads of the rollup table {deployed.table}" in text
    assert "Refresh in a minute. If it lasts, check the rollup-read-throttles alarm" in text


class NeverProcessed:
    """The rollup table in moto, except that every batch read comes back with all its keys unprocessed."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.batches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803  boto3's name
        self.batches += 1
        return {"Responses": {}, "UnprocessedKeys": RequestItems}


def test_a_batch_read_that_never_completes_says_the_table_is_throttled(deployed: Deployed) -> None:
    fill(deployed, fleet(3))
    client, pauses = NeverProcessed(deployed.dynamodb), []
    reader = RollupReader(client, deployed.table, pause=pauses.append)
    text = send(deployed, widget_event("top_users", NOON - timedelta(hours=3), NOON, limit=3), reader)
    assert (
        f"DynamoDB is throttling reads of the rollup table {deployed.table} (keys still unread after 8 attempts)"
        in text
    )
    assert client.batches == ATTEMPTS and len(pauses) == ATTEMPTS


def test_reads_stop_before_the_invocation_runs_out(deployed: Deployed, clock: Clock) -> None:
    """A read that keeps backing off ends in a message while the function still has time to send it."""
    fill(deployed, fleet(3))
    context = FakeContext(clock, seconds=2.5)
    client = NeverProcessed(deployed.dynamodb)
    reader = RollupReader(
        client,
        deployed.table,
        remaining=lambda: context.get_remaining_time_in_millis() / 1000,
        pause=lambda seconds: clock.advance(timedelta(seconds=seconds)),
    )
    text = send(deployed, widget_event("top_users", NOON - timedelta(hours=3), NOON), reader)
    assert f"DynamoDB did not answer in time for the rollup table {deployed.table}" in text
    assert 0 < client.batches < ATTEMPTS and context.get_remaining_time_in_millis() >= 2000


@pytest.mark.parametrize(
    "error",
    [
        ReadTimeoutError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com/"),
        ConnectTimeoutError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com/"),
        EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com/"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_dynamodb_that_does_not_answer_says_so(deployed: Deployed, error: Exception) -> None:
    class Silent:
        def get_item(self, **_: Any) -> dict[str, Any]:
            raise error

    text = send(deployed, widget_event("quota", NOON - timedelta(hours=3), NOON), RollupReader(Silent(), "rollups"))
    assert "DynamoDB did not answer in time for the rollup table rollups" in text


def test_an_unexpected_failure_names_the_request_to_look_up(
    deployed: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed.dynamodb.put_item(
        TableName=deployed.table,
        Item={"pk": {"S": keys.top_pk("2026-11-23")}, "sk": {"S": keys.TOP_SK}, "entries": {"S": MARK}},
    )
    reader = RollupReader(deployed.dynamodb, deployed.table)
    output = render(
        widget_event("top_users", NOON - timedelta(hours=3), NOON), reader, UTC_ZONE, NOON, request_id="r-9"
    )
    text = failed(output)
    assert "the widget failed (JSONDecodeError)" in text
    assert "Check the widget function's log (request id r-9)." in text
    (record,) = logged(capsys)
    assert record["request_id"] == "r-9" and record["widget"] == "top_users" and "Traceback" in record["trace"]


def test_the_handler_renders_and_logs_failures_with_the_request_id(
    deployed: Deployed,
    aws_client: Callable[[str], Any],
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(widget_handler, "boto3", SimpleNamespace(client=lambda service, **_: aws_client(service)))
    monkeypatch.setenv("TIME_ZONE", "UTC")
    event = widget_event("cost", clock.now() - timedelta(hours=3), clock.now())

    monkeypatch.setenv("TABLE_NAME", deployed.table)
    output = widget_handler.handler(event, FakeContext(clock), now=clock.now)
    assert isinstance(output, str) and "No data yet" in output
    assert logged(capsys) == [
        {"level": "INFO", "message": "rendered", "widget": "cost", "items_read": 0, "request_id": "req-1234"}
    ]

    monkeypatch.setenv("TABLE_NAME", "rollups-never-deployed")
    text = failed(widget_handler.handler(event, FakeContext(clock), now=clock.now))
    assert "the rollup table rollups-never-deployed does not exist" in text
    failure, rendered = logged(capsys)
    assert failure["level"] == "ERROR" and failure["request_id"] == "req-1234" and failure["widget"] == "cost"
    assert "does not exist" in failure["problem"] and rendered["message"] == "rendered"

    bad_event = widget_event("top_users", clock.now(), clock.now() - timedelta(hours=1), limit=MARK)
    failed(widget_handler.handler(bad_event, FakeContext(clock), now=clock.now))
    warning, _ = logged(capsys)
    assert warning["level"] == "WARNING" and warning["request_id"] == "req-1234" and warning["trace"] is None


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [("TABLE_NAME", None, "KeyError"), ("TIME_ZONE", "Mars/Olympus", "ZoneInfoNotFoundError")],
)
def test_an_incomplete_environment_says_what_to_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str | None, says: str
) -> None:
    monkeypatch.setenv("TABLE_NAME", "rollups")
    monkeypatch.setenv("TIME_ZONE", "UTC")
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    text = failed(widget_handler.handler({"widgetContext": {"params": {"widget": "cost"}}}, None, now=lambda: NOON))
    assert f"the function's environment is incomplete ({says}" in text and "TABLE_NAME and TIME_ZONE" in text
    (record,) = logged(capsys)
    assert record["level"] == "ERROR" and record["problem"] == "environment"

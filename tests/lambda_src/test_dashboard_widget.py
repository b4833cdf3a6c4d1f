"""The widget function on rollups the aggregator wrote in moto: every widget with data and without, the dashboard's
time range, reads that do not grow with the number of users, and hostile or broken input (wrong types, impossible
ranges, a missing or throttled table, reads that never finish), each shown as a short escaped message."""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from lambda_src.common import aws
from lambda_src.common import rollups as keys
from lambda_src.common.dynamodb import ATTEMPTS
from lambda_src.dashboard_widget import handler as widget_handler
from lambda_src.dashboard_widget.handler import (
    CANVAS_LIMITS,
    MAX_DAYS,
    STYLE,
    WIDGETS,
    Canvas,
    RollupReader,
    canvas_of,
    render,
    time_range,
    timeline,
)
from tests.clock import Clock
from tests.lambda_src import dashboard_screenshots as screenshots
from tests.lambda_src.dashboard_screenshots import Rollups, write_near_quota
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
    "tokens": {"split": "type"},
    "top_users": {"measure": "tokens", "period": "day", "limit": 5},
    "groups": {"dimension": "team"},
    "api_errors": {},
    "api_latency": {},
    "tool_results": {},
    "data_quality": {},
    "quota": {},
    "user": {"user": "dev00000@example.com"},
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
    assert '<span class="big">3</span><small>distinct users on Mon 23 Nov</small>' in active
    assert "Mon 23 Nov 12:00–12:05 UTC: 3 distinct users" in active  # the 5-minute bucket, as a hover shows it
    assert "times in UTC" in active

    cost, _ = show(deployed, "cost")
    # 1 + 2 + 3 minutes of work at $0.0105 each
    assert cost.count("$0.06") >= 3 and SONNET_VERSION in cost
    # a range of just over three hours has 15-minute columns (an hour each for a day, a day each for a month)
    assert "Mon 23 Nov 12:00–12:15 UTC" in cost and "Estimated cost per 15 minutes by model" in cost

    tokens, _ = show(deployed, "tokens")
    assert "cache read" in tokens and "Tokens per 15 minutes by type" in tokens

    top, _ = show(deployed, "top_users", measure="cost_usd", period="month", limit=2)
    assert top.index("dev00002@example.com") < top.index("dev00001@example.com")
    assert "dev00000@example.com" not in top and "Top 2 by cost, month 2026-11" in top
    assert "<cwdb-action" in top and "Pull requests" in top  # every counter, in the popup a click opens

    teams, _ = show(deployed, "groups", dimension="team")
    assert "team-0" in teams and "team-2" in teams

    errors, _ = show(deployed, "api_errors")
    assert "529 overloaded" in errors and "50.0%" in errors

    latency, _ = show(deployed, "api_latency")
    assert "1.20 s" in latency and "≤ 2 s" in latency

    tools, _ = show(deployed, "tool_results")
    assert "Bash" in tools and "50.0%" in tools

    quality, _ = show(deployed, "data_quality")
    assert "0.0%</span><small>of tokens without a user</small>" in quality and "2.0.14" in quality
    assert "Models without a price" not in quality and "not charted" not in quality

    person, _ = show(deployed, "user", user="dev00002@example.com")
    assert "dev00002@example.com" in person and "$0.03" in person and "Minutes with activity per hour" in person


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
    assert "Models without a price: costed at the client&#x27;s figure" in quality
    assert '<span title="claude-opus-5-5">claude-opus-5-5</span></td><td class="">5,000 tokens, $0.25</td>' in quality
    assert '<span title="assistant_response">assistant_response</span></td><td class="">1</td>' in quality


def test_an_unknown_widget_or_dimension_says_what_is_allowed(deployed: Deployed) -> None:
    output, _ = show(deployed, "pie_chart")
    assert "one of active_users, cost" in output
    groups, _ = show(deployed, "groups", dimension="user")
    assert "department, team, cost_center" in groups


def test_describe_returns_the_widget_documentation() -> None:
    output = render({"describe": True}, RollupReader(None, "unused"), UTC_ZONE, NOON)
    assert isinstance(output, dict) and "top_users" in output["markdown"] and "`split`" in output["markdown"]


def test_a_user_widget_without_a_user_says_what_to_set(deployed: Deployed) -> None:
    text = send(deployed, widget_event("user", NOON - timedelta(hours=3), NOON))
    assert "the user parameter is null, not a name" in text and "Set the user parameter" in text


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
    client, pauses = NeverProcessed(deployed.dynamodb), list[float]()
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
    monkeypatch.setattr(aws, "boto3", SimpleNamespace(client=lambda service, **_: aws_client(service)))
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


# Charts that fit their box, in the reporting time zone, with readable labels and every value escaped -----------


def test_the_widget_lays_out_for_the_size_and_theme_cloudwatch_sends() -> None:
    assert canvas_of({"width": 588, "height": 369, "theme": "dark"}) == Canvas(582, 363, "dark")
    assert canvas_of({}) == canvas_of({"width": "wide", "height": None, "theme": MARK}) == Canvas(594, 314, "light")
    assert canvas_of({"width": 10**400, "height": -5}) == Canvas(3994, 154, "light")
    assert canvas_of({"width": float("nan"), "height": float("inf")}) == Canvas(594, 314, "light")


def test_tables_take_the_columns_that_fit_in_order_of_importance(deployed: Deployed) -> None:
    fill(deployed, fleet(3))
    headers = {}
    for width, theme in ((420, "light"), (1000, "dark")):
        event = widget_event("top_users", NOON - timedelta(hours=3), NOON)
        event["widgetContext"].update({"width": width, "height": 300, "theme": theme})
        output = render(event, RollupReader(deployed.dynamodb, deployed.table), UTC_ZONE, NOON)
        assert isinstance(output, str) and f'<div class="cw {theme}" style="width:{width - 6}px">' in output
        headers[width] = re.findall(r"<th[^>]*>([^<]*)</th>", output)
    assert headers[420] == ["#", "User", "", "Tokens", "Cost"]
    assert headers[1000][:6] == ["#", "User", "", "Tokens", "Cost", "Team"] and "Sessions" in headers[1000]


@pytest.mark.parametrize(
    ("hours", "step", "first"),
    [
        (3, 300, "Mon 23 Nov 14:00–14:05 CET"),
        (10, 900, "Mon 23 Nov 07:00–07:15 CET"),
        (24, 3600, None),
        (240, None, None),
    ],
)
def test_time_charts_use_sensible_buckets_in_the_reporting_time_zone(hours: int, step: int | None, first: str) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    end = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # 17:00 in Berlin
    line = timeline(time_range(range_context(end - timedelta(hours=hours), end), berlin, end), berlin)
    assert line.step == step
    if step is None:
        assert [slot.tick for slot in line.slots][-2:] == ["22 Nov", "23 Nov"] and len(line.slots) == 11
    else:
        assert len(line.slots) == hours * 3600 // step
        local = [datetime.fromtimestamp(start, berlin) for start in line.starts]
        assert all(at.minute % (step // 60 if step < 3600 else 60) == 0 for at in local)
        assert first is None or line.slots[0].label == first
    assert line.zone_label == "Europe/Berlin, CET"


def range_context(start: datetime, end: datetime) -> dict[str, Any]:
    return {"timeRange": {"start": int(start.timestamp() * 1000), "end": int(end.timestamp() * 1000)}}


def test_hours_and_days_are_those_of_the_reporting_time_zone(aws_client: Any, clock: Clock) -> None:
    berlin = Deployed(aws_client, f"rollups-berlin-{uuid.uuid4().hex[:8]}", clock, time_zone="Europe/Berlin")
    fill(berlin, fleet(2))
    reader = RollupReader(berlin.dynamodb, berlin.table)
    output = render(widget_event("cost", NOON - timedelta(hours=24), NOON), reader, ZoneInfo("Europe/Berlin"), NOON)
    assert isinstance(output, str)
    assert "Mon 23 Nov 13:00–14:00 CET: $0.03" in output  # the work at 12:01 UTC, in the hour of 13:00 in Berlin
    assert "Mon 23 Nov 12:00–13:00 CET: $0.00" in output and "times in Europe/Berlin, CET" in output


def test_quota_policies_and_limits_are_named_as_people_say_them(deployed: Deployed) -> None:
    rollups = Rollups(deployed.dynamodb, deployed.table, UTC_ZONE)
    write_near_quota(
        rollups,
        NOON,
        [
            ("grace@example.com", "daily_usd", 31.7, 25, 126.8, 158.0, "team#support-tools"),
            ("ada@example.com", "daily_tokens", 4_650_000, 5_000_000, 93.0, 118.0, "user#ada@example.com"),
            ("alan@example.com", "monthly_usd", 355.0, 400, 88.8, 122.0, "default"),
            ("joan@example.com", "monthly_tokens", 81e6, 1e8, 81.0, 109.0, "department#data"),
        ],
    )
    wide = widget_event("quota", NOON - timedelta(hours=3), NOON)
    wide["widgetContext"].update({"width": 1800, "height": 300})
    output = render(wide, RollupReader(deployed.dynamodb, deployed.table), UTC_ZONE, NOON)
    assert isinstance(output, str)
    for label in ("Team policy: support-tools", "Own policy", "Default policy", "Department policy: data"):
        assert label in output
    assert "team#" not in output and "department#" not in output
    assert "daily USD limit" in output and "$31.70 / $25.00" in output and "4.65M / 5.00M" in output
    assert "Mon 23 Nov 11:54 UTC" in output  # when the monitor ran, in the reporting zone


HOSTILE = '<img class="pwned" src=x>'
"""Markup in every name a client or a policy can set: it must come back as text, never as an element."""


def hostile_deliveries(at: datetime) -> list[bytes]:
    villain = Developer(
        email=f"{HOSTILE}@example.com",
        department=f"</td><b class=pwned>{HOSTILE}",
        team=f'"><i class="pwned">t</i>{HOSTILE}',
        cost_center=f"CC-{HOSTILE}",
        session="s-villain",
        app_version=f"2.0{HOSTILE}",
    )
    model = f"claude-{HOSTILE}"
    metrics = [event for minute in range(3) for event in usage(at + timedelta(minutes=5 * minute), villain, 40)]
    metrics.append(emf_event(at, villain, {"claude_code.token.usage": 9000}, model=model, type="input"))
    metrics.append(emf_event(at, villain, {"claude_code.cost.usage": 0.5}, model=model))
    events = [
        api_request(at, villain, model, (10, 20, 30, 40), 0.01),
        claude_event(at, villain, "api_error", model=model, status_code=f"5{HOSTILE}", duration_ms="50"),
        claude_event(at, villain, "tool_result", tool_name=f"Bash{HOSTILE}", success="false", duration_ms="12"),
        claude_event(at, villain, f"thing{HOSTILE}"),
    ]
    return [logs_batch(METRICS_LOG_GROUP, metrics), logs_batch(EVENTS_LOG_GROUP, events)]


HOSTILE_QUOTA = [(f"{HOSTILE}@example.com", "daily_usd", 99.0, 25, 396.0, 500.0, f"team#{HOSTILE}")]


@pytest.fixture
def screenshot_fleet(aws_client: Callable[[str], Any]) -> Rollups:
    """A smaller fleet than `make screenshots` draws (14 people, 4 days, in Europe/Berlin), and a villain."""
    at = screenshots.NOW - timedelta(hours=2)
    rollups = screenshots.fill_fleet(
        aws_client("dynamodb"), f"rollups-fleet-{uuid.uuid4().hex[:8]}", count=14, days=4, extra=hostile_deliveries(at)
    )
    write_near_quota(rollups, screenshots.NOW, [*HOSTILE_QUOTA, *screenshots_default_quota()])
    return rollups


def screenshots_default_quota() -> list[screenshots.NearEntry]:
    return [("ada.lovelace@example.com", "daily_tokens", 4.65e6, 5e6, 93.0, 118.0, "user#ada.lovelace@example.com")]


def every_shot() -> list[screenshots.Shot]:
    """Every custom widget of the dashboard body, and the user drill-down (not in the body) at 8 by 7."""
    return [
        *screenshots.shots(),
        screenshots.Shot("User", {"widget": "user", "user": f"{HOSTILE}@example.com"}, 0, 0, 8, 7),
    ]


class Elements(HTMLParser):
    """The elements of a widget's HTML as a browser's parser sees them: tag and attributes."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def test_hostile_names_come_back_as_text_in_every_widget(screenshot_fleet: Rollups) -> None:
    for shot in every_shot():
        for hours in (24, 96):
            output = screenshots.render_shot(screenshot_fleet, shot, shot.pixels(), hours=hours)
            assert "Cannot show this widget" not in output, shot.name
            if shot.params["widget"] not in ("active_users", "tokens"):  # counts only, no names
                assert HOSTILE in html.unescape(output), shot.name  # shown, as text
            for tag, attributes in Elements(output).found:
                assert tag not in ("script", "img", "iframe", "use", "foreignobject"), (shot.name, tag)
                assert "pwned" not in (attributes.get("class") or ""), (shot.name, tag, attributes)
                assert not [name for name in attributes if name.startswith("on") or name in ("src", "href")], (
                    shot.name,
                    attributes,
                )


@pytest.mark.parametrize("width", [int(CANVAS_LIMITS[0]), 300, 494])
def test_every_widget_renders_however_narrow_the_window(screenshot_fleet: Rollups, width: int) -> None:
    """A narrow window gives a widget less than its columns ask for: the columns it cannot do without stay (they
    squeeze the names), the optional ones go, and no widget fails (each failure would page the widget-failures
    alarm)."""
    for shot in every_shot():
        for hours in (24, 96):
            output = screenshots.render_shot(screenshot_fleet, shot, (width, shot.pixels()[1]), hours=hours)
            assert "Cannot show this widget" not in output, (shot.name, width, hours)


def test_every_widget_fits_its_box_at_its_dashboard_size(screenshot_fleet: Rollups) -> None:
    """Each widget rendered at the size the dashboard body gives it, on a wide and a laptop screen, for a day and
    for four days, in light and dark: laid out by headless Chromium, no box scrolls and no hostile name became
    an element."""
    binary = screenshots.chromium()
    if binary is None:
        pytest.skip("chromium is not installed: `make test` installs it (make chromium)")
    frames = []
    top = 0
    for shot in every_shot():
        for unit in (screenshots.UNIT_PX, screenshots.NARROW_UNIT_PX):
            for hours, theme in ((24, "light"), (96, "dark")):
                size = shot.pixels(unit)
                content = screenshots.render_shot(screenshot_fleet, shot, size, theme, hours)
                assert "Cannot show this widget" not in content, (shot.name, unit, hours)  # an error message fits too
                frames.append((f"{shot.name} {unit} {hours} h", 0, top, size[0], size[1], content))
                top += size[1] + 60
    measured = screenshots.measure(binary, screenshots.page_html(frames, "light", measure=True))
    assert len(measured) == len(frames)
    problems = [
        (frame[0], box)
        for frame, box in zip(frames, measured, strict=True)
        if box["sw"] > box["cw"] or box["sh"] > box["ch"] or box["injected"]
    ]
    assert problems == []


@pytest.mark.parametrize("widget", sorted(WIDGETS))
def test_a_range_without_length_still_renders(deployed: Deployed, widget: str) -> None:
    fill(deployed, fleet(2))
    reader = RollupReader(deployed.dynamodb, deployed.table)
    at = NOON.replace(minute=0)  # on a bucket's start
    output = render(widget_event(widget, at, at, **PARAMS[widget]), reader, UTC_ZONE, NOON)
    assert isinstance(output, str) and "Cannot show this widget" not in output

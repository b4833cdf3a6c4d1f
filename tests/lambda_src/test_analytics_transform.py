"""The Firehose transform on realistic CloudWatch Logs deliveries: rows, partitions, put-backs, malformed input."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lambda_src.analytics_transform import handler as transform_module
from lambda_src.analytics_transform.handler import (
    MAX_RECORD_BYTES,
    QUARANTINE_KEY,
    Settings,
    transform,
)
from lambda_src.common import aws
from lambda_src.common.lake_schema import EVENTS_COLUMNS, METRICS_COLUMNS
from lambda_src.common.log_records import coerce
from lambda_src.common.pricing import PriceTable
from tests.clock import Clock
from tests.telemetry import (
    EVENTS_LOG_GROUP,
    METRICS_LOG_GROUP,
    Developer,
    api_request,
    claude_event,
    control_message,
    emf_event,
    firehose_event,
    log_event,
    logs_batch,
)

SETTINGS = Settings({METRICS_LOG_GROUP: "metrics", EVENTS_LOG_GROUP: "events"})
NOON = datetime(2026, 12, 31, 12, 10, tzinfo=UTC)
ADA = Developer()
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


class RecordingStream:
    """Stands in for PutRecordBatch: keeps what was put back, refuses the first `refusals` calls."""

    def __init__(self, refusals: int = 0) -> None:
        self.records: list[bytes] = []
        self.refusals = refusals
        self.calls = 0

    def __call__(self, records: list[bytes]) -> list[bool]:
        self.calls += 1
        if self.calls <= self.refusals:
            return [False] * len(records)
        self.records.extend(records)
        return [True] * len(records)


def run(payloads: list[bytes], stream: Callable[[list[bytes]], list[bool]] | None = None) -> list[dict[str, Any]]:
    response = transform(firehose_event(payloads), SETTINGS, stream or RecordingStream(), Clock(NOON))
    return response["records"]


def rows_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in base64.b64decode(record["data"]).decode().splitlines()]


def until_settled(payloads: list[bytes]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the transform, then again on whatever it put back, as Firehose would; return (Ok records, failed)."""
    ok: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    while payloads:
        stream = RecordingStream()
        for record in run(payloads, stream):
            if record["result"] == "Ok":
                ok.append(record)
            elif record["result"] == "ProcessingFailed":
                failed.append(record)
        payloads = stream.records
    return ok, failed


def token_events(at: datetime, developer: Developer = ADA) -> list[dict[str, Any]]:
    return [
        emf_event(at, developer, {"claude_code.token.usage": 1200}, model=SONNET, type="input"),
        emf_event(at, developer, {"claude_code.token.usage": 300}, model=SONNET, type="output"),
        emf_event(at, developer, {"claude_code.token.usage": 50_000}, model=SONNET, type="cacheRead"),
        emf_event(at, developer, {"claude_code.cost.usage": 0.0513}, model=SONNET),
        emf_event(at, developer, {"claude_code.session.count": 1, "claude_code.commit.count": 2}),
    ]


def test_every_data_point_becomes_a_row_in_its_events_hour() -> None:
    (record,) = run([logs_batch(METRICS_LOG_GROUP, token_events(NOON))])
    assert record["result"] == "Ok"
    assert record["metadata"] == {"partitionKeys": {"dt": "2026-12-31", "hour": "12"}}
    rows = rows_of(record)
    assert len(rows) == 6  # 5 log events, one of them with two metrics
    assert {row["metric_name"] for row in rows} >= {"claude_code.session.count", "claude_code.commit.count"}
    assert sum(row["value"] for row in rows if row["metric_name"] == "claude_code.token.usage") == 51_500
    tokens = next(row for row in rows if row["type"] == "cacheRead")
    assert tokens["event_time"] == "2026-12-31T12:10:00.000Z"
    assert tokens["user_key"] == "ada@example.com" and tokens["user_key_source"] == "user.email"
    assert tokens["model_version"] == "claude-sonnet-4-5"
    assert (tokens["team_id"], tokens["department"], tokens["cost_center"]) == ("platform", "engineering", "CC-100")
    assert tokens["unit"] == "Count" and tokens["session_id"] == "s-1" and tokens["app_version"] == "2.0.14"
    assert set(rows[0]) == {column.name for column in METRICS_COLUMNS}
    assert len({row["row_id"] for row in rows}) == 6


def test_attributes_without_a_column_are_kept_in_the_map() -> None:
    event = emf_event(NOON, ADA, {"claude_code.token.usage": 5}, model=SONNET, type="input", organization="acme")
    (row,) = rows_of(run([logs_batch(METRICS_LOG_GROUP, [event])])[0])
    assert row["attributes"] == {"organization": "acme"}


def test_an_unknown_metric_is_kept() -> None:
    event = emf_event(NOON, ADA, {"claude_code.future.metric": 7})
    (row,) = rows_of(run([logs_batch(METRICS_LOG_GROUP, [event])])[0])
    assert (row["metric_name"], row["value"]) == ("claude_code.future.metric", 7.0)


def test_a_metric_no_declaration_names_is_read_without_the_emf_directive() -> None:
    message = json.dumps(
        {**ADA.resource_attributes(), **ADA.point_attributes(), "claude_code.token.usage": 9, "type": "output"}
    )
    (row,) = rows_of(run([logs_batch(METRICS_LOG_GROUP, [log_event(NOON, message)])])[0])
    assert row["value"] == 9.0 and row["event_time"] == "2026-12-31T12:10:00.000Z"  # the log event's own time


def test_events_become_typed_rows_with_identity_from_the_record() -> None:
    events = [
        api_request(NOON, ADA, SONNET, (1200, 300, 50_000, 2000), 0.0513),
        claude_event(NOON, ADA, "tool_result", tool_name="Bash", success="true", duration_ms="85"),
        claude_event(NOON, ADA, "api_error", model=SONNET, error="overloaded", status_code="529", attempt="2"),
        claude_event(NOON, ADA, "user_prompt", prompt_length="42", prompt="<REDACTED>"),
    ]
    (record,) = run([logs_batch(EVENTS_LOG_GROUP, events)])
    request, tool, error, prompt = rows_of(record)
    assert set(request) == {column.name for column in EVENTS_COLUMNS}
    assert request["event_name"] == "api_request" and request["event_time"] == "2026-12-31T12:10:00.000Z"
    assert (request["input_tokens"], request["output_tokens"]) == (1200, 300)
    assert (request["cache_read_tokens"], request["cache_creation_tokens"]) == (50_000, 2000)
    assert request["cost_usd"] == pytest.approx(0.0513) and request["model_version"] == "claude-sonnet-4-5"
    assert request["user_email"] == "ada@example.com" and request["team_id"] == "platform"
    assert request["provider"] == "firstParty" and request["user_account_id"] == "acct-1"
    assert request["resource_attributes"] == {}  # what the record repeats is stored once
    assert tool["success"] is True and tool["duration_ms"] == 85.0 and tool["tool_name"] == "Bash"
    assert (error["status_code"], error["attempt"], error["error"]) == ("529", 2, "overloaded")
    assert prompt["prompt_length"] == 42 and prompt["attributes"] == {"prompt": "<REDACTED>"}


def test_a_value_that_does_not_fit_its_column_stays_as_text() -> None:
    event = claude_event(NOON, ADA, "tool_result", tool_name="Edit", success="maybe", duration_ms="fast")
    (row,) = rows_of(run([logs_batch(EVENTS_LOG_GROUP, [event])])[0])
    assert row["success"] is None and row["duration_ms"] is None
    assert row["attributes"] == {"success": "maybe", "duration_ms": "fast"}


def test_users_without_email_are_attributed_by_user_id_then_account() -> None:
    events = [
        emf_event(NOON, Developer(email=None), {"claude_code.token.usage": 1}, model=SONNET, type="input"),
        emf_event(NOON, Developer(email=None, user_id=None), {"claude_code.token.usage": 1}, type="input"),
        emf_event(NOON, Developer(email=None, user_id=None, account_uuid=None), {"claude_code.token.usage": 1}),
    ]
    rows = rows_of(run([logs_batch(METRICS_LOG_GROUP, events)])[0])
    assert [(row["user_key"], row["user_key_source"]) for row in rows] == [
        ("u-ada", "user.id"),
        ("acc-ada", "user.account_uuid"),
        (None, None),
    ]


def test_control_messages_are_dropped() -> None:
    (record,) = run([control_message(METRICS_LOG_GROUP)])
    assert record["result"] == "Dropped"


def test_a_batch_across_an_hour_boundary_is_split_by_partition() -> None:
    before, after = datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC), datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC)
    batch = logs_batch(METRICS_LOG_GROUP, token_events(before) + token_events(after))
    stream = RecordingStream()
    (record,) = run([batch], stream)
    assert record["result"] == "Dropped" and len(stream.records) == 2
    ok, failed = until_settled([batch])
    assert not failed
    partitions = sorted((r["metadata"]["partitionKeys"]["dt"], r["metadata"]["partitionKeys"]["hour"]) for r in ok)
    assert partitions == [("2026-12-31", "23"), ("2027-01-01", "00")]
    assert sum(len(rows_of(r)) for r in ok) == 12  # rows out equal data points in


def test_a_late_event_lands_in_the_partition_of_its_own_time() -> None:
    late = NOON - timedelta(days=3, hours=5)
    ok, _ = until_settled(
        [
            logs_batch(
                EVENTS_LOG_GROUP,
                [api_request(NOON, ADA, SONNET, (1, 1, 1, 1), 0.1), api_request(late, ADA, SONNET, (1, 1, 1, 1), 0.1)],
            )
        ]
    )
    keys = sorted(r["metadata"]["partitionKeys"]["dt"] + "/" + r["metadata"]["partitionKeys"]["hour"] for r in ok)
    assert keys == ["2026-12-28/07", "2026-12-31/12"]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not json at all", "message is not JSON"),
        ('{"claude_code.token.usage": NaN, "type": "input"}', "non-finite number NaN"),
        ('{"claude_code.token.usage": Infinity}', "non-finite number Infinity"),
        ('{"claude_code.token.usage": 1e999}', "non-finite metric value"),
        (
            '{"_aws": {"Timestamp": 1798675200000, "CloudWatchMetrics": '
            '[{"Metrics": [{"Name": "claude_code.token.usage"}]}]}, "type": "input"}',
            "declared metric without a numeric value: claude_code.token.usage",
        ),
        ('{"type": "input", "model": "x"}', "no metric value in the log event"),
        ("[1, 2]", "an EMF log event must be a JSON object"),
    ],
)
def test_a_malformed_log_event_is_quarantined_and_the_rest_of_its_batch_goes_on(message: str, reason: str) -> None:
    good = token_events(NOON)
    batch = logs_batch(METRICS_LOG_GROUP, [good[0], log_event(NOON, message), good[1]])
    stream = RecordingStream()
    (record,) = run([batch], stream)
    assert record["result"] == "Dropped"
    rows_record, quarantine = stream.records
    assert len(rows_record.splitlines()) == 2
    kept = json.loads(quarantine)
    assert kept[QUARANTINE_KEY]["message"] == message and kept["reason"] == reason
    ok, failed = until_settled([batch])
    assert sum(len(rows_of(r)) for r in ok) == 2 and len(failed) == 1  # the bad event goes to the error prefix


def test_an_unexpected_error_in_one_log_event_quarantines_only_that_event(monkeypatch: pytest.MonkeyPatch) -> None:
    real = transform_module.metric_rows

    def fails_on_commits(log_event: dict[str, Any], arrival: float, prices: PriceTable) -> list[Any]:
        if "claude_code.commit.count" in log_event["message"]:
            raise TypeError("a bug")
        return real(log_event, arrival, prices)

    monkeypatch.setattr(transform_module, "metric_rows", fails_on_commits)
    stream = RecordingStream()
    (record,) = run([logs_batch(METRICS_LOG_GROUP, token_events(NOON))], stream)
    rows, quarantine = stream.records
    assert record["result"] == "Dropped" and len(rows.splitlines()) == 4
    assert json.loads(quarantine)["reason"] == "unexpected TypeError while reading the log event"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(logs_batch(METRICS_LOG_GROUP, token_events(NOON))[:40], id="truncated gzip"),
        pytest.param(gzip.compress(b"{not json"), id="gzip of bad JSON"),
        pytest.param(logs_batch("/some/other/group", token_events(NOON)), id="unknown log group"),
        pytest.param(b"plain text, neither a batch nor rows", id="not a batch"),
    ],
)
def test_a_record_that_cannot_be_read_goes_to_the_error_prefix_alone(payload: bytes) -> None:
    good = logs_batch(METRICS_LOG_GROUP, token_events(NOON))
    bad, fine = run([payload, good])
    assert bad["result"] == "ProcessingFailed" and fine["result"] == "Ok"


def test_data_that_is_not_base64_fails_only_its_record() -> None:
    event = firehose_event([logs_batch(METRICS_LOG_GROUP, token_events(NOON))])
    event["records"].append({"recordId": "broken", "data": "%%%"})
    records = transform(event, SETTINGS, RecordingStream(), Clock(NOON))["records"]
    assert [r["result"] for r in records] == ["Ok", "ProcessingFailed"]


def test_put_back_is_retried_and_then_the_original_fails_whole() -> None:
    batch = logs_batch(METRICS_LOG_GROUP, token_events(NOON) + token_events(NOON + timedelta(hours=1)))
    flaky = RecordingStream(refusals=1)
    (record,) = run([batch], flaky)
    assert record["result"] == "Dropped" and len(flaky.records) == 2
    refusing = RecordingStream(refusals=99)
    (record,) = run([batch], refusing)
    assert record["result"] == "ProcessingFailed" and refusing.calls == 3


def test_put_back_calls_use_the_firehose_api_shape() -> None:
    class Client:
        def __init__(self) -> None:
            self.requests: list[dict[str, Any]] = []

        def put_record_batch(self, **request: Any) -> dict[str, Any]:
            self.requests.append(request)
            return {"FailedPutCount": 1, "RequestResponses": [{"RecordId": "1"}, {"ErrorCode": "ServiceUnavailable"}]}

    client = Client()
    accepted = transform_module.firehose_put(client, "stream-1")([b"a", b"b"])
    assert accepted == [True, False]
    assert client.requests == [{"DeliveryStreamName": "stream-1", "Records": [{"Data": b"a"}, {"Data": b"b"}]}]


def test_rows_beyond_one_record_are_split_into_records_under_the_limit() -> None:
    many = [api_request(NOON, ADA, SONNET, (1, 1, 1, 1), 0.1) for _ in range(2500)]
    ok, failed = until_settled([logs_batch(EVENTS_LOG_GROUP, many)])
    assert not failed and len(ok) > 1
    assert all(len(base64.b64decode(r["data"])) <= MAX_RECORD_BYTES for r in ok)
    assert sum(len(rows_of(r)) for r in ok) == 2500


def test_records_beyond_the_response_budget_are_put_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transform_module, "RESPONSE_BUDGET_BYTES", 3000)
    payloads = [logs_batch(METRICS_LOG_GROUP, token_events(NOON)) for _ in range(3)]
    stream = RecordingStream()
    records = run(payloads, stream)
    assert [r["result"] for r in records] == ["Ok", "Dropped", "Dropped"] and len(stream.records) == 2


@pytest.mark.parametrize(
    ("value", "column_type", "expected"),
    [
        ("12", "bigint", 12),
        ("12.0", "bigint", 12),
        ("12.5", "bigint", None),
        (2**31, "int", None),
        (2**31, "bigint", 2**31),
        (True, "bigint", None),
        ("nan", "double", None),
        ("TRUE", "boolean", True),
        (3, "string", "3"),
        ({"a": 1}, "string", '{"a":1}'),
    ],
)
def test_coerce(value: Any, column_type: str, expected: Any) -> None:
    assert coerce(value, column_type) == expected


def test_the_handler_puts_records_back_into_the_stream_it_was_called_by(
    aws_client: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, firehose = aws_client("s3"), aws_client("firehose")
    s3.create_bucket(Bucket="lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    firehose.create_delivery_stream(
        DeliveryStreamName="ccm-test-analytics-metrics",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::lake",
            "Prefix": "metrics/",
        },
    )
    monkeypatch.setenv("METRICS_LOG_GROUP", METRICS_LOG_GROUP)
    monkeypatch.setenv("EVENTS_LOG_GROUP", EVENTS_LOG_GROUP)
    monkeypatch.setattr(aws.boto3, "client", lambda service, **_: {"firehose": firehose}[service])
    batch = logs_batch(METRICS_LOG_GROUP, token_events(NOON) + token_events(NOON + timedelta(hours=1)))
    response = transform_module.handler(firehose_event([batch]), None, clock=Clock(NOON))
    assert [r["result"] for r in response["records"]] == ["Dropped"]
    delivered = b"".join(
        s3.get_object(Bucket="lake", Key=item["Key"])["Body"].read()
        for item in s3.list_objects_v2(Bucket="lake")["Contents"]
    )
    assert len(delivered.splitlines()) == 12  # both partitions' rows went back into the stream

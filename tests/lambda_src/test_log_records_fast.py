"""log_records read and written fast (orjson, cached times and column indexes) give what the standard library's
json and the original algorithms give: the same values, the same refusals and reasons; and the transform's
put-back records of one partition pass through as they are."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_src.analytics_transform.handler import ROW_START, decide_put_back, one_partition, transform
from lambda_src.analytics_transform.handler import Settings as TransformSettings
from lambda_src.common.lake_schema import EVENTS_COLUMNS, METRICS_COLUMNS, Column
from lambda_src.common.log_records import (
    as_text,
    coerce,
    dumps_line,
    fill_columns,
    iso_time,
    model_key,
    parse_batch,
    parse_json,
    quarantine_reason,
)
from lambda_src.common.pricing import DEFAULT_PRICE_TABLE, ModelPrice, PriceTable, model_version
from tests.clock import Clock
from tests.telemetry import (
    EVENTS_LOG_GROUP,
    METRICS_LOG_GROUP,
    Developer,
    claude_event,
    emf_event,
    firehose_event,
    log_event,
    logs_batch,
)

NOON = datetime(2026, 12, 31, 12, 10, tzinfo=UTC)
ADA = Developer()


def standard(text: str | bytes) -> Any:
    """What log_records read before: json, refusing NaN and Infinity."""

    def refuse(name: str) -> Any:
        raise ValueError(f"non-finite number {name}")

    return json.loads(text, parse_constant=refuse)


def outcome(read: Any, text: str | bytes) -> tuple[str, Any]:
    try:
        value = read(text)
    except Exception as error:  # noqa: BLE001 - the reason is what is compared
        return "refused", quarantine_reason(error) if not str(error).startswith("non-finite") else str(error)
    return "read", json.dumps(value, sort_keys=True, default=repr) + repr(typed(value))


def typed(value: Any) -> Any:
    """The value with every number's type (1 and 1.0 are equal in Python, not in a row)."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value if not isinstance(value, float) or math.isfinite(value) else repr(value))


TEXTS = [
    '{"a": 1, "b": 2.5, "c": "x", "d": null, "e": true, "f": [1, {"g": -0.0}]}',
    '{"claude_code.token.usage": NaN}',
    '{"claude_code.token.usage": Infinity}',
    '{"claude_code.token.usage": -Infinity}',
    "1e999",
    "-1e999",
    "123456789012345678901234567890",
    "-12345678901234567890",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "9999999999999999999",
    '{"id": "36836826426880386378474346858217467187226006102335553536", "n": 1795435200000000000}',
    '"\\ud800 lone"',
    '"\\ud83d\\ude00 pair"',
    "\ufeff{}",
    '{"a": 1} trailing',
    '{"a": "\x01"}',
    '{"a": 1, "a": 2}',
    "[" * 300 + "]" * 300,
    "[" * 990 + "]" * 990,
    "[" * 1100 + "]" * 1100,
    '{"text": "\u2028 and \x85"}',
    "0.30000000000000004",
    "5e-324",
    "1e-400",
    "",
    "not json",
]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_parse_json_reads_and_refuses_as_json_does(text: str) -> None:
    assert outcome(parse_json, text) == outcome(standard, text)
    assert outcome(parse_json, text.encode("utf-8", "surrogatepass")) == outcome(
        standard, text.encode("utf-8", "surrogatepass")
    )


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
        max_leaves=20,
    )
)
def test_parse_json_of_any_document(value: Any) -> None:
    text = json.dumps(value)
    assert outcome(parse_json, text) == outcome(standard, text)


def test_parse_batch_keeps_big_integers_exact() -> None:
    for text in (
        '{"logEvents": [{"id": "1", "timestamp": 123456789012345678901234567890, "message": "x"}]}',
        '{"logEvents": [{"id": "1", "timestamp": 1, "message": "x", "extractedFields": {"n": -99999999999999999999}}]}',
        '{"logEvents": [{"id": "1", "timestamp": 1.5e300, "message": "x"}], "owner": 123456789012345678901}',
        '{"logEvents": "odd", "nested": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}',
    ):
        assert outcome(parse_batch, text.encode()) == outcome(standard, text.encode())


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=6),
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text()
        | st.dictionaries(st.text(max_size=4), st.text(max_size=6), max_size=3),
        max_size=6,
    )
)
def test_a_row_written_by_orjson_reads_back_as_json_wrote_it(row: dict[str, Any]) -> None:
    line = dumps_line(row)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert typed(json.loads(line)) == typed(json.loads(json.dumps(row, separators=(",", ":"), allow_nan=False)))


def test_rows_orjson_cannot_write_are_written_by_json() -> None:
    for row in ({"user": "ada\ud800"}, {"sequence": 2**70}):
        assert json.loads(dumps_line(row)) == json.loads(json.dumps(row))


def reference_iso_time(milliseconds: float) -> str:
    moment = datetime.fromtimestamp(milliseconds / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 5_000_000_000_000) | st.floats(0, 4e12, allow_nan=False))
def test_iso_time_is_the_datetime_formula(milliseconds: float) -> None:
    assert iso_time(milliseconds) == reference_iso_time(milliseconds)


def test_iso_time_at_second_and_year_boundaries() -> None:
    for milliseconds in (0, 999, 1000, 1_735_689_599_999, 1_735_689_600_000, 3_999_999_999_999, 4_000_000_000_000):
        assert iso_time(milliseconds) == reference_iso_time(milliseconds)


def reference_fill_columns(columns: Any, sources: list[dict[str, Any]], row: dict[str, Any]) -> None:
    """fill_columns as first written: every column in turn."""
    for column in columns:
        found = next(((source, name) for name in column.attributes for source in sources if name in source), None)
        if found is None:
            continue
        source, name = found
        raw = source[name]
        for other in sources:
            if other is not source and other.get(name) == raw:
                del other[name]
        value = coerce(raw, column.type)
        row[column.name] = value
        if value is not None or raw is None:
            del source[name]
        else:
            source[name] = as_text(raw)


ATTRIBUTE_NAMES = sorted({name for column in (*METRICS_COLUMNS, *EVENTS_COLUMNS) for name in column.attributes})
VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**65), 2**65)
    | st.floats(allow_nan=True)
    | st.sampled_from(["12", "12.5", "true", "FALSE", " 7 ", "nan", "x"])
    | st.text(max_size=5)
    | st.lists(st.integers(), max_size=2)
)
SOURCE = st.dictionaries(st.sampled_from([*ATTRIBUTE_NAMES, "other", "more"]), VALUES, max_size=12)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["metrics", "events"]), st.lists(SOURCE, min_size=1, max_size=2))
def test_fill_columns_is_the_column_by_column_algorithm(table: str, sources: list[dict[str, Any]]) -> None:
    columns: tuple[Column, ...] = METRICS_COLUMNS if table == "metrics" else EVENTS_COLUMNS
    copies = [dict(source) for source in sources]
    row: dict[str, Any] = {column.name: None for column in columns}
    expected_row = dict(row)
    outcomes = []
    for fill, fill_sources, fill_row in ((fill_columns, sources, row), (reference_fill_columns, copies, expected_row)):
        try:
            fill(columns, fill_sources, fill_row)
        except Exception as error:  # noqa: BLE001 - both must fail alike (a null attribute in one source only)
            outcomes.append(type(error).__name__)
        else:
            outcomes.append("filled")
        outcomes.append(json.dumps([fill_row, fill_sources], default=repr))
    assert outcomes[:2] == outcomes[2:]


def test_model_keys_are_the_price_tables() -> None:
    contract = PriceTable.with_overrides({"claude-opus-5*": ModelPrice(4, 20, 0.4, 5)})
    for prices in (DEFAULT_PRICE_TABLE, contract):
        for model in (None, "", "  ", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-opus-5-5", "Claude[1m]"):
            assert model_key(prices, model) == (prices.key_for(model) or model_version(model))
            assert model_key(prices, model) == (prices.key_for(model) or model_version(model))  # cached


# The transform's put-back records ----------------------------------------------------------------------------

SETTINGS = TransformSettings({METRICS_LOG_GROUP: "metrics", EVENTS_LOG_GROUP: "events"})


def put_back_records(events: list[dict[str, Any]], log_group: str = METRICS_LOG_GROUP) -> list[bytes]:
    stream: list[bytes] = []

    def put(records: list[bytes]) -> list[bool]:
        stream.extend(records)
        return [True] * len(records)

    transform(firehose_event([logs_batch(log_group, events)]), SETTINGS, put, Clock(NOON + timedelta(hours=2)))
    return stream


def test_a_put_back_record_of_one_partition_is_returned_as_it_is() -> None:
    before, after = datetime(2026, 12, 31, 12, 59, 58, tzinfo=UTC), datetime(2026, 12, 31, 13, 0, 1, tzinfo=UTC)
    records = put_back_records(
        [
            emf_event(at, ADA, {"claude_code.token.usage": 5}, model="ü-model\u2028", type="input")
            for at in (before, after)
        ]
    )
    assert len(records) == 2
    for record in records:
        decision = decide_put_back("r", record)
        assert (decision.result, decision.data, decision.rows) == ("Ok", record, 1)
        again = b"".join(dumps_line(json.loads(line)) for line in record.split(b"\n") if line)
        assert again == record  # what reading the rows and writing them again would return
    assert [decide_put_back("r", r).partition for r in records] == [("2026-12-31", "12"), ("2026-12-31", "13")]
    assert [one_partition(r) for r in records] == [("2026-12-31", "12"), ("2026-12-31", "13")]  # not read again


def test_every_lake_row_begins_with_the_event_time() -> None:
    """one_partition reads a put-back record's partition from the first column of its rows."""
    assert METRICS_COLUMNS[0].name == EVENTS_COLUMNS[0].name == "event_time"
    assert ROW_START == b'{"event_time":"'


def test_put_back_records_that_are_not_one_partition_are_read_row_by_row() -> None:
    first, second = put_back_records(
        [
            emf_event(NOON, ADA, {"claude_code.token.usage": 5}, type="input"),
            emf_event(NOON + timedelta(hours=1), ADA, {"claude_code.token.usage": 6}, type="input"),
        ]
    )
    mixed = first + second
    assert one_partition(mixed) is None
    decision = decide_put_back("r", mixed)
    assert decision.result == "Dropped" and sorted(decision.put_back) == sorted([first, second])
    assert one_partition(first.replace(b'{"event_time":"', b'{"event_time": "', 1)) is None
    assert one_partition(first + b"\n") is None
    assert one_partition(first[:-1]) is None
    (quarantine,) = put_back_records([log_event(NOON, "{not json")])
    assert decide_put_back("r", quarantine).result == "ProcessingFailed"


def test_a_row_with_a_line_separator_in_a_value_goes_through_put_back_whole() -> None:
    events = [
        claude_event(NOON, ADA, "tool_result", tool_name="Edit\u2028Write\x85", success="true"),
        claude_event(NOON + timedelta(hours=1), ADA, "tool_result", tool_name="Bash", success="true"),
    ]
    records = put_back_records(events, EVENTS_LOG_GROUP)
    rows = []
    for record in records:
        decision = decide_put_back("r", record)
        assert decision.result == "Ok"
        rows += [json.loads(line) for line in decision.data.split(b"\n") if line]
    assert sorted(row["tool_name"] for row in rows) == ["Bash", "Edit\u2028Write\x85"]
    assert base64.b64encode(records[0])  # returned to Firehose as bytes

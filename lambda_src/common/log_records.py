"""Claude Code log events as typed records: what the collector wrote to CloudWatch Logs, read once, the same way,
by the Firehose transform (lake rows) and the dashboard aggregator (rollups).

`metric_rows` turns one EMF log event into one row per data point; `event_rows` one Claude Code event into one
row. Rows carry the lake's columns (lake_schema): documented attributes typed, every other attribute kept in a
map, the user attributed by `user_key`, the model normalised to its priced version, the time in UTC.
A log event that cannot become rows raises MalformedLogEventError (or a JSON error) with a reason that is safe
to log.

JSON is read and written with orjson, and every value is what the standard library's json would give: a
document orjson could read differently (an integer beyond 64 bits, which it makes a float; NaN and Infinity,
lone surrogates, a byte order mark, deep nesting, which it refuses) is read by json instead, so the reasons
and values stay the same. Rows are written as UTF-8 where json wrote escapes: the same values.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from lambda_src.common.lake_schema import EVENTS_COLUMNS, METRICS_COLUMNS, Column
from lambda_src.common.pricing import DEFAULT_PRICE_TABLE, PriceTable, model_version
from lambda_src.common.telemetry import (
    EARLIEST_EVENT_DAY,
    EVENT_NUMBER_CEILING,
    LATEST_EVENT_SKEW_SECONDS,
    METRICS_BY_NAME,
    user_key,
)

Partition = tuple[str, str]  # (dt, hour)

EMF_FORMAT_FIELDS = ("_aws", "Version")
EARLIEST_EVENT_MILLISECONDS = datetime.fromisoformat(EARLIEST_EVENT_DAY).replace(tzinfo=UTC).timestamp() * 1000
# Event columns that count or measure: negative or absurd values are refused, as for metric values.
MEASURED_EVENT_COLUMNS = (
    "cost_usd",
    "duration_ms",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "prompt_length",
)
INTEGER_BITS = {"int": 32, "bigint": 64}


class MalformedLogEventError(ValueError):
    """One log event that cannot become a row; the reason is safe to log (no event content)."""


class UnreadableBatchError(ValueError):
    """A CloudWatch Logs delivery that is not gzip-compressed JSON."""


@dataclass(frozen=True)
class Row:
    partition: Partition
    values: dict[str, Any]

    def encoded(self) -> bytes:
        return dumps_line(self.values)


def dumps_line(values: Mapping[str, Any]) -> bytes:
    """One JSON line. orjson writes UTF-8 where json escapes, the same values; a value orjson cannot write (a
    lone surrogate, an integer beyond 64 bits) is written by json."""
    try:
        return orjson.dumps(values, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return (json.dumps(values, separators=(",", ":"), allow_nan=False) + "\n").encode()


# Values ---------------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> float:
    raise MalformedLogEventError(f"non-finite number {name}")


_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x2D if byte == 0x2D else 0x20 for byte in range(256))
_LONG_NUMBER, _LONG_NEGATIVE = b"0" * 20, b"-" + b"0" * 19
"""Where orjson could read as a float an integer json keeps exact: 20 digits or more (orjson keeps integers
below 2**64), or minus and 19 digits (above -2**63)."""
_MAX_CONTAINERS = 256
"""Fewer arrays and objects than this nest too shallow for either parser to refuse."""
_BIG = 2.0**63


def parse_json(text: str | bytes) -> Any:
    """json.loads that refuses NaN and Infinity (a lake row must hold real numbers), read with orjson when
    orjson reads it the same: no integer it could make a float (checked on the text, strings included), not
    deeply nested; what orjson refuses is read (and refused, with json's reason) by json."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    shape = raw.translate(_DIGITS)
    if (
        _LONG_NUMBER not in shape
        and _LONG_NEGATIVE not in shape
        and raw.count(b"[") + raw.count(b"{") < _MAX_CONTAINERS
    ):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text, parse_constant=_reject_constant)


def _plain(value: Any, depth: int = 0) -> bool:
    """No float json would have read as an integer (orjson makes floats of integers beyond 64 bits), and
    shallow. Walks the structure: for a delivery, whose log event ids are long runs of digits."""
    if depth > 32:
        return False
    kind = type(value)
    if kind is float:
        return -_BIG < value < _BIG
    if kind is dict:
        return all(_plain(item, depth + 1) for item in value.values() if type(item) is not str)
    if kind is list:
        return all(_plain(item, depth + 1) for item in value if type(item) is not str)
    return True


def _plain_batch(document: Any) -> bool:
    """_plain for a delivery, its log events' ids, times and messages looked at without a call each."""
    if type(document) is not dict:
        return _plain(document)
    for name, value in document.items():
        if name == "logEvents" and type(value) is list:
            for log_event in value:
                if type(log_event) is not dict:
                    if not _plain(log_event, 1):
                        return False
                    continue
                for item in log_event.values():
                    kind = type(item)
                    if kind is not str and kind is not int and not _plain(item, 2):
                        return False
        elif type(value) is not str and not _plain(value, 1):
            return False
    return True


def parse_batch(data: bytes) -> Any:
    """A delivery's JSON document, as json reads it (with parse_json's refusals), read with orjson when that
    is the same."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    else:
        if _plain_batch(document):
            return document
    return json.loads(data, parse_constant=_reject_constant)


_SECOND_PREFIXES: dict[int, str] = {}
_FAST_TIME_LIMIT_MS = 4_000_000_000_000
"""Up to here (year 2096) a whole number of milliseconds survives the division by 1000 to the microsecond."""


def iso_time(milliseconds: float) -> str:
    if type(milliseconds) is int and 0 <= milliseconds < _FAST_TIME_LIMIT_MS:
        second, millisecond = divmod(milliseconds, 1000)
        prefix = _SECOND_PREFIXES.get(second)
        if prefix is None:
            if len(_SECOND_PREFIXES) >= 100_000:
                _SECOND_PREFIXES.clear()
            prefix = _SECOND_PREFIXES[second] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        return f"{prefix}{millisecond:03d}Z"
    moment = datetime.fromtimestamp(milliseconds / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: Any) -> float | None:
    """ISO 8601 text -> epoch milliseconds, or None when it is not a time."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000


def partition_of(event_time: str) -> Partition:
    return event_time[:10], event_time[11:13]


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def coerce(value: Any, column_type: str) -> Any:
    """The value in the column's type, or None when it does not fit (the caller keeps the raw text)."""
    if value is None:
        return None
    if type(value) is str and column_type == "string":
        return value
    if column_type == "string":
        return as_text(value)
    if column_type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return None
    number: float
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number):
        return None
    if column_type == "double":
        return number
    if column_type in INTEGER_BITS:
        whole = value if isinstance(value, int) else int(number) if number.is_integer() else None
        limit = 2 ** (INTEGER_BITS[column_type] - 1)
        return whole if whole is not None and -limit <= whole < limit else None  # else Parquet conversion fails
    return None


@dataclass(frozen=True)
class ColumnIndex:
    """Where each attribute goes in a column list (built once per list)."""

    columns: Sequence[Column]
    positions: dict[str, tuple[int, ...]]
    """attribute name -> positions of the columns it can fill"""
    one_to_one: bool
    """Every column reads at most one attribute and every attribute fills one column."""


_COLUMN_INDEX: dict[int, ColumnIndex] = {}


def _column_index(columns: Sequence[Column]) -> ColumnIndex:
    cached = _COLUMN_INDEX.get(id(columns))
    if cached is None or cached.columns is not columns:
        index: dict[str, list[int]] = {}
        for position, column in enumerate(columns):
            for name in column.attributes:
                index.setdefault(name, []).append(position)
        cached = _COLUMN_INDEX[id(columns)] = ColumnIndex(
            columns,
            {name: tuple(found) for name, found in index.items()},
            all(len(column.attributes) <= 1 for column in columns) and all(len(f) == 1 for f in index.values()),
        )
    return cached


def fill_columns(columns: Sequence[Column], sources: Sequence[dict[str, Any]], row: dict[str, Any]) -> None:
    """Set each attribute column from the first source that has the attribute; consumed attributes leave their
    source, a value that does not fit its column stays there as text. Columns none of whose attributes is
    present are skipped without a look (sources only lose attributes here)."""
    index = _column_index(columns)
    if len(sources) == 1 and index.one_to_one:
        # One source, one column per attribute: each attribute is settled on its own, in any order.
        (source,) = sources
        for name in [name for name in source if name in index.positions]:
            column = columns[index.positions[name][0]]
            raw = source[name]
            value = coerce(raw, column.type)
            row[column.name] = value
            if value is not None or raw is None:
                del source[name]
            else:
                source[name] = as_text(raw)
        return
    positions = index.positions
    wanted = sorted({position for source in sources for name in source for position in positions.get(name, ())})
    for position in wanted:
        column = columns[position]
        found = None
        for name in column.attributes:
            for source in sources:
                if name in source:
                    found = source, name
                    break
            if found is not None:
                break
        if found is None:
            continue
        source, name = found
        raw = source[name]
        for other in sources:  # the client repeats resource attributes on every record: keep one copy
            if other is not source and other.get(name) == raw:
                del other[name]
        value = coerce(raw, column.type)
        row[column.name] = value
        if value is not None or raw is None:
            del source[name]
        else:
            source[name] = as_text(raw)


_MODEL_KEYS: dict[int, tuple[PriceTable, dict[Any, str | None]]] = {}


def model_key(prices: PriceTable, model: Any) -> str | None:
    """The prices table's key for a reported model, else its normalised id (cached per table and model)."""
    cached = _MODEL_KEYS.get(id(prices))
    if cached is None or cached[0] is not prices:
        if len(_MODEL_KEYS) >= 64:
            _MODEL_KEYS.clear()
        cached = _MODEL_KEYS[id(prices)] = (prices, {})
    keys = cached[1]
    try:
        return keys[model]
    except KeyError:
        pass
    except TypeError:  # not hashable: not cached
        return prices.key_for(model) or model_version(model)
    if len(keys) >= 10_000:
        keys.clear()
    found = keys[model] = prices.key_for(model) or model_version(model)
    return found


def identity_columns(row: dict[str, Any], prices: PriceTable) -> None:
    key, source = user_key(
        {
            "user.email": row.get("user_email"),
            "user.id": row.get("user_id"),
            "user.account_uuid": row.get("user_account_uuid"),
        }
    )
    row["user_key"], row["user_key_source"] = key, source
    row["model_version"] = model_key(prices, row.get("model"))
    row["app_version"] = row.get("app_version") or row.get("service_version")  # app.version is opt-in


def text_map(values: Mapping[str, Any]) -> dict[str, str]:
    return {key: text for key, value in values.items() if (text := as_text(value)) is not None}


_EMPTY_ROWS: dict[int, tuple[Sequence[Column], dict[str, Any]]] = {}


def empty_row(columns: Sequence[Column]) -> dict[str, Any]:
    cached = _EMPTY_ROWS.get(id(columns))
    if cached is None or cached[0] is not columns:
        cached = _EMPTY_ROWS[id(columns)] = (columns, {column.name: None for column in columns})
    return dict(cached[1])


# Log events -> rows ---------------------------------------------------------------------------------------


def metric_rows(
    log_event: Mapping[str, Any], arrival_milliseconds: float, prices: PriceTable = DEFAULT_PRICE_TABLE
) -> list[Row]:
    """Every data point of one EMF log event, as metrics rows."""
    document = parse_json(log_event["message"])
    if not isinstance(document, dict):
        raise MalformedLogEventError("an EMF log event must be a JSON object")
    emf: dict[str, Any] = document["_aws"] if isinstance(document.get("_aws"), dict) else {}
    units: dict[str, str | None] = {}
    for directive in emf.get("CloudWatchMetrics") or []:
        for metric in (directive or {}).get("Metrics") or []:
            if isinstance(metric, dict) and isinstance(metric.get("Name"), str):
                units[metric["Name"]] = metric.get("Unit")
    values: dict[str, float] = {}
    attributes: dict[str, Any] = {}
    for name, value in document.items():
        if name in EMF_FORMAT_FIELDS:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            values[name] = float(value)
        elif isinstance(value, dict) and isinstance(value.get("Sum"), int | float):
            values[name] = float(value["Sum"])  # a summary: its sum is the total of the interval
        else:
            attributes[name] = value
    missing = sorted(name for name in units if name not in values)
    if missing:
        raise MalformedLogEventError(f"declared metric without a numeric value: {', '.join(missing)}")
    if not values:
        raise MalformedLogEventError("no metric value in the log event")
    if any(not math.isfinite(value) for value in values.values()):
        raise MalformedLogEventError("non-finite metric value")
    for metric, value in values.items():
        checked_value(metric, value)
    timestamp = emf.get("Timestamp")
    milliseconds = timestamp if isinstance(timestamp, int | float) and timestamp > 0 else log_event.get("timestamp")
    event_time = checked_time(milliseconds, arrival_milliseconds)
    base = empty_row(METRICS_COLUMNS)
    remaining = dict(attributes)
    fill_columns(METRICS_COLUMNS, [remaining], base)
    identity_columns(base, prices)
    base["attributes"] = text_map(remaining)
    base["event_time"] = event_time
    base["log_event_id"] = log_event.get("id")
    rows = []
    for position, (metric, value) in enumerate(sorted(values.items())):
        row = dict(base, metric_name=metric, value=value, unit=units.get(metric))
        row["row_id"] = f"{log_event.get('id')}:{position}"
        rows.append(Row(partition_of(event_time), row))
    return rows


def event_rows(
    log_event: Mapping[str, Any], arrival_milliseconds: float, prices: PriceTable = DEFAULT_PRICE_TABLE
) -> list[Row]:
    """One Claude Code event (an OpenTelemetry log record), as an events row."""
    document = parse_json(log_event["message"])
    if not isinstance(document, dict):
        raise MalformedLogEventError("an event log record must be a JSON object")
    attributes = document.get("attributes") or {}
    resource = document.get("resource") or {}
    if not isinstance(attributes, dict) or not isinstance(resource, dict):
        raise MalformedLogEventError("attributes and resource must be JSON objects")
    if not attributes and "body" not in document:
        raise MalformedLogEventError("neither attributes nor body: not an OpenTelemetry log record")
    attributes, resource = dict(attributes), dict(resource)
    body = as_text(document.get("body"))
    name = as_text(attributes.pop("event.name", None))
    if name is None and body and body.startswith("claude_code."):
        name = body.removeprefix("claude_code.")
    when = parse_time(attributes.get("event.timestamp"))
    if when is not None:
        del attributes["event.timestamp"]
    else:
        logged = log_event.get("timestamp")
        when = logged if isinstance(logged, int | float) and logged > 0 else arrival_milliseconds
    event_time = checked_time(when, arrival_milliseconds)
    row = empty_row(EVENTS_COLUMNS)
    fill_columns(EVENTS_COLUMNS, [attributes, resource], row)
    for column in MEASURED_EVENT_COLUMNS:
        if row[column] is not None and not 0 <= row[column] <= EVENT_NUMBER_CEILING:
            raise MalformedLogEventError(f"{column} {row[column]!r} is outside 0 to {EVENT_NUMBER_CEILING:g}")
    identity_columns(row, prices)
    row.update(
        event_time=event_time,
        event_name=name,
        body=body,
        severity_text=as_text(document.get("severity_text")),
        attributes=text_map(attributes),
        resource_attributes=text_map(resource),
        log_event_id=log_event.get("id"),
        row_id=f"{log_event.get('id')}:0",
    )
    return [Row(partition_of(event_time), row)]


def checked_time(milliseconds: Any, arrival_milliseconds: float) -> str:
    """The event's time as lake text, if it lies in the window the dashboards and Athena show."""
    if not isinstance(milliseconds, int | float) or isinstance(milliseconds, bool) or not math.isfinite(milliseconds):
        raise MalformedLogEventError("no usable timestamp")
    if milliseconds < EARLIEST_EVENT_MILLISECONDS:
        raise MalformedLogEventError(f"timestamp before {EARLIEST_EVENT_DAY}")
    if milliseconds > arrival_milliseconds + LATEST_EVENT_SKEW_SECONDS * 1000:
        raise MalformedLogEventError(f"timestamp more than {LATEST_EVENT_SKEW_SECONDS} s after the delivery arrived")
    return iso_time(milliseconds)


def checked_value(metric: str, value: float) -> float:
    """A counter's value: finite, not negative, not above what one data point can honestly carry."""
    ceiling = METRICS_BY_NAME[metric].ceiling if metric in METRICS_BY_NAME else EVENT_NUMBER_CEILING
    if not 0 <= value <= ceiling:
        raise MalformedLogEventError(f"{metric} value {value!r} is outside 0 to {ceiling:g}")
    return value


def batch_shape_problem(batch: Any) -> str | None:
    """Why a decoded delivery is not a CloudWatch Logs data or control message, or None."""
    if not isinstance(batch, dict):
        return f"a CloudWatch Logs batch must be a JSON object, got {type(batch).__name__}"
    if batch.get("messageType") not in ("DATA_MESSAGE", "CONTROL_MESSAGE"):
        return f"messageType must be DATA_MESSAGE or CONTROL_MESSAGE, got {str(batch.get('messageType'))[:40]!r}"
    if batch["messageType"] == "DATA_MESSAGE":
        if not isinstance(batch.get("logGroup"), str):
            return "logGroup must be a string"
        if not isinstance(batch.get("logEvents"), list):
            return "logEvents must be a list"
    return None


def read_logs_batch(payload: bytes) -> Any:
    """The JSON document of a CloudWatch Logs subscription delivery (gzip-compressed)."""
    try:
        return parse_batch(gzip.decompress(payload))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError):
        raise UnreadableBatchError("not a readable CloudWatch Logs batch (gzip/JSON)") from None


def quarantine_reason(error: Exception) -> str:
    """Why a log event could not be read, for the quarantine record and the log line."""
    if isinstance(error, MalformedLogEventError):
        return str(error)
    if isinstance(error, json.JSONDecodeError):
        return "message is not JSON"
    return f"unexpected {type(error).__name__} while reading the log event"

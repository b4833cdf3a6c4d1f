"""Firehose transform: CloudWatch Logs subscription batches become rows of the data lake's metrics or events
table, partitioned by each event's own time.

For each Firehose record:
- a CloudWatch Logs control message is Dropped (it carries no log events);
- a data message becomes rows (every data point of every EMF log event, or one row per Claude Code event).
  Rows of one partition that fit in one record are returned Ok with that partition's keys. Rows that span
  partitions (a batch across an hour boundary, a late event) or do not fit are put back into the same stream,
  one record per partition and chunk, and the original is Dropped; rows come back through here unchanged;
- a log event that cannot be parsed is put back as a quarantine record, which this function marks
  ProcessingFailed, so Firehose writes it under the error prefix while the rest of its batch goes on;
- a record that cannot be decoded at all is ProcessingFailed, and so is a record whose rows could not be put
  back after retries: Firehose then keeps it whole under the error prefix. Nothing is dropped silently.

Environment: METRICS_LOG_GROUP and EVENTS_LOG_GROUP, the log groups whose batches become metrics and events.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
import os
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import boto3

from lambda_src.common.lake_schema import EVENTS_COLUMNS, METRICS_COLUMNS, Column
from lambda_src.common.logs import log
from lambda_src.common.pricing import model_version
from lambda_src.common.telemetry import user_key

Table = Literal["metrics", "events"]
Partition = tuple[str, str]  # (dt, hour)

MAX_RECORD_BYTES = 900_000  # a Firehose record holds at most 1,000 KiB
RESPONSE_BUDGET_BYTES = 4_000_000  # base64 makes it ~5.3 MB of the 6 MB a Lambda response may carry
PUT_BATCH_RECORDS = 500
PUT_BATCH_BYTES = 4_000_000  # PutRecordBatch takes at most 4 MiB
PUT_ATTEMPTS = 3
QUARANTINE_KEY = "quarantined_log_event"
EMF_FORMAT_FIELDS = ("_aws", "Version")
INTEGER_BITS = {"int": 32, "bigint": 64}


class MalformedLogEventError(ValueError):
    """One log event that cannot become a row; the reason is safe to log (no event content)."""


@dataclass(frozen=True)
class Settings:
    log_groups: Mapping[str, Table]

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Settings:
        return cls({environment["METRICS_LOG_GROUP"]: "metrics", environment["EVENTS_LOG_GROUP"]: "events"})


@dataclass(frozen=True)
class Row:
    partition: Partition
    values: dict[str, Any]

    def encoded(self) -> bytes:
        return (json.dumps(self.values, separators=(",", ":"), allow_nan=False) + "\n").encode()


@dataclass
class Decision:
    """What becomes of one input record."""

    record_id: str
    result: Literal["Ok", "Dropped", "ProcessingFailed"]
    data: bytes = b""
    partition: Partition | None = None
    put_back: list[bytes] = field(default_factory=list)
    """Records to put back into the stream first; the result stands only if all of them are accepted."""
    rows: int = 0
    quarantined: int = 0
    reason: str = ""


# Values ---------------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> float:
    raise MalformedLogEventError(f"non-finite number {name}")


def parse_json(text: str | bytes) -> Any:
    """json.loads that refuses NaN and Infinity (a lake row must hold real numbers)."""
    return json.loads(text, parse_constant=_reject_constant)


def iso_time(milliseconds: float) -> str:
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


def fill_columns(columns: Sequence[Column], sources: Sequence[dict[str, Any]], row: dict[str, Any]) -> None:
    """Set each attribute column from the first source that has the attribute; consumed attributes leave their
    source, a value that does not fit its column stays there as text."""
    for column in columns:
        if column.attribute is None:
            continue
        for source in sources:
            if column.attribute in source:
                raw = source[column.attribute]
                value = coerce(raw, column.type)
                row[column.name] = value
                if value is not None or raw is None:
                    del source[column.attribute]
                else:
                    source[column.attribute] = as_text(raw)
                break


def identity_columns(row: dict[str, Any]) -> None:
    key, source = user_key(
        {
            "user.email": row.get("user_email"),
            "user.id": row.get("user_id"),
            "user.account_uuid": row.get("user_account_uuid"),
        }
    )
    row["user_key"], row["user_key_source"] = key, source
    row["model_version"] = model_version(row.get("model"))


def text_map(values: Mapping[str, Any]) -> dict[str, str]:
    return {key: text for key, value in values.items() if (text := as_text(value)) is not None}


def empty_row(columns: Sequence[Column]) -> dict[str, Any]:
    return {column.name: None for column in columns}


# Log events -> rows ---------------------------------------------------------------------------------------


def metric_rows(log_event: Mapping[str, Any]) -> list[Row]:
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
    timestamp = emf.get("Timestamp")
    milliseconds = timestamp if isinstance(timestamp, int | float) and timestamp > 0 else log_event.get("timestamp")
    event_time = checked_time(milliseconds)
    base = empty_row(METRICS_COLUMNS)
    remaining = dict(attributes)
    fill_columns(METRICS_COLUMNS, [remaining], base)
    identity_columns(base)
    base["attributes"] = text_map(remaining)
    base["event_time"] = event_time
    base["log_event_id"] = log_event.get("id")
    rows = []
    for position, (metric, value) in enumerate(sorted(values.items())):
        row = dict(base, metric_name=metric, value=value, unit=units.get(metric))
        row["row_id"] = f"{log_event.get('id')}:{position}"
        rows.append(Row(partition_of(event_time), row))
    return rows


def event_rows(log_event: Mapping[str, Any], arrival_milliseconds: float) -> list[Row]:
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
    event_time = checked_time(when)
    row = empty_row(EVENTS_COLUMNS)
    fill_columns(EVENTS_COLUMNS, [attributes, resource], row)
    identity_columns(row)
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


def checked_time(milliseconds: Any) -> str:
    if not isinstance(milliseconds, int | float) or isinstance(milliseconds, bool) or not math.isfinite(milliseconds):
        raise MalformedLogEventError("no usable timestamp")
    try:
        text = iso_time(milliseconds)
    except (OverflowError, OSError, ValueError):
        raise MalformedLogEventError("timestamp out of range") from None
    if not text[:4].isdigit() or text < "2000":
        raise MalformedLogEventError("timestamp before 2000")
    return text


# Records -> decisions -------------------------------------------------------------------------------------


def chunk_records(rows: Iterable[Row]) -> Iterator[tuple[Partition, bytes]]:
    """One record per partition, split so that no record exceeds MAX_RECORD_BYTES."""
    by_partition: dict[Partition, list[bytes]] = {}
    for row in rows:
        by_partition.setdefault(row.partition, []).append(row.encoded())
    for partition, lines in sorted(by_partition.items()):
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            if chunk and size + len(line) > MAX_RECORD_BYTES:
                yield partition, b"".join(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        if chunk:
            yield partition, b"".join(chunk)


def quarantine_reason(error: Exception) -> str:
    if isinstance(error, MalformedLogEventError):
        return str(error)
    if isinstance(error, json.JSONDecodeError):
        return "message is not JSON"
    return f"unexpected {type(error).__name__} while reading the log event"


def quarantine_record(log_group: str, log_event: Mapping[str, Any], reason: str) -> bytes:
    return json.dumps({QUARANTINE_KEY: dict(log_event), "log_group": log_group, "reason": reason}).encode() + b"\n"


def decide(record: Mapping[str, Any], settings: Settings) -> Decision:
    """What to do with one Firehose record, before the response budget is applied."""
    record_id = record["recordId"]
    try:
        payload = base64.b64decode(record["data"], validate=True)
    except (binascii.Error, ValueError, KeyError):
        return Decision(record_id, "ProcessingFailed", reason="data is not base64")
    if payload[:2] == b"\x1f\x8b":
        return decide_log_batch(record_id, payload, settings, record.get("approximateArrivalTimestamp"))
    return decide_put_back(record_id, payload)


def decide_log_batch(record_id: str, payload: bytes, settings: Settings, arrival: Any) -> Decision:
    try:
        batch = parse_json(gzip.decompress(payload))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError):
        return Decision(record_id, "ProcessingFailed", reason="not a readable CloudWatch Logs batch (gzip/JSON)")
    if not isinstance(batch, dict):
        return Decision(record_id, "ProcessingFailed", reason="a CloudWatch Logs batch must be a JSON object")
    if batch.get("messageType") == "CONTROL_MESSAGE":
        return Decision(record_id, "Dropped", reason="control message")
    table = settings.log_groups.get(batch.get("logGroup", ""))
    if batch.get("messageType") != "DATA_MESSAGE" or table is None or not isinstance(batch.get("logEvents"), list):
        return Decision(record_id, "ProcessingFailed", reason="not a data message from a configured log group")
    arrival_milliseconds = arrival if isinstance(arrival, int | float) else time.time() * 1000
    rows: list[Row] = []
    quarantine: list[bytes] = []
    for log_event in batch["logEvents"]:
        try:
            if not isinstance(log_event, dict) or not isinstance(log_event.get("message"), str):
                raise MalformedLogEventError("a log event needs a message")
            if table == "metrics":
                rows.extend(metric_rows(log_event))
            else:
                rows.extend(event_rows(log_event, arrival_milliseconds))
        except Exception as error:  # noqa: BLE001  one bad log event must never fail the rest of its batch
            reason = quarantine_reason(error)
            quarantine.append(quarantine_record(batch["logGroup"], log_event, reason))
            log(
                "WARN",
                "quarantined a log event",
                table=table,
                reason=reason,
                log_event_id=log_event.get("id") if isinstance(log_event, dict) else None,
            )
    return settle(record_id, rows, quarantine)


def decide_put_back(record_id: str, payload: bytes) -> Decision:
    """A record this function put back: rows of one table, or a quarantine record."""
    rows: list[Row] = []
    try:
        for line in payload.decode().splitlines():
            if not line.strip():
                continue
            values = parse_json(line)
            if not isinstance(values, dict):
                raise MalformedLogEventError("not a JSON object")
            if QUARANTINE_KEY in values:
                return Decision(record_id, "ProcessingFailed", quarantined=1, reason=str(values.get("reason")))
            event_time = values.get("event_time")
            if not isinstance(event_time, str) or len(event_time) < 13 or "row_id" not in values:
                raise MalformedLogEventError("not a row of the lake")
            rows.append(Row(partition_of(event_time), values))
    except (UnicodeDecodeError, ValueError):
        return Decision(record_id, "ProcessingFailed", reason="neither a CloudWatch Logs batch nor lake rows")
    return settle(record_id, rows, [])


def settle(record_id: str, rows: list[Row], quarantine: list[bytes]) -> Decision:
    chunks = list(chunk_records(rows))
    if len(chunks) == 1 and not quarantine:
        partition, data = chunks[0]
        return Decision(record_id, "Ok", data=data, partition=partition, rows=len(rows))
    if not chunks and not quarantine:
        return Decision(record_id, "Dropped", reason="no log events")
    return Decision(
        record_id,
        "Dropped",
        put_back=[data for _, data in chunks] + quarantine,
        rows=len(rows),
        quarantined=len(quarantine),
        reason="rows span partitions, exceed a record, or include quarantined log events",
    )


def within_budget(decisions: list[Decision], budget: int | None = None) -> list[Decision]:
    """Ok records beyond what one Lambda response can carry are put back instead of returned."""
    budget = RESPONSE_BUDGET_BYTES if budget is None else budget
    used = 0
    for decision in decisions:
        if decision.result != "Ok":
            continue
        if used and used + len(decision.data) > budget:  # the first always goes, so every call makes progress
            decision.put_back, decision.data, decision.partition = [decision.data], b"", None
            decision.result, decision.reason = "Dropped", "beyond the response size budget"
        else:
            used += len(decision.data)
    return decisions


def response_record(decision: Decision) -> dict[str, Any]:
    record: dict[str, Any] = {"recordId": decision.record_id, "result": decision.result}
    if decision.result == "Ok":
        record["data"] = base64.b64encode(decision.data).decode()
        dt, hour = decision.partition or ("", "")
        record["metadata"] = {"partitionKeys": {"dt": dt, "hour": hour}}
    else:
        record["data"] = ""
    return record


# Putting records back -------------------------------------------------------------------------------------


def put_batches(payloads: Sequence[tuple[int, bytes]]) -> Iterator[list[tuple[int, bytes]]]:
    batch: list[tuple[int, bytes]] = []
    size = 0
    for item in payloads:
        if batch and (len(batch) == PUT_BATCH_RECORDS or size + len(item[1]) > PUT_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += len(item[1])
    if batch:
        yield batch


def put_back(
    decisions: list[Decision],
    put_record_batch: Callable[[list[bytes]], list[bool]],
    attempts: int = PUT_ATTEMPTS,
    pause: Callable[[float], None] = time.sleep,
) -> None:
    """Put back every decision's records; a decision with a record still refused after retries fails."""
    pending = [(index, data) for index, decision in enumerate(decisions) for data in decision.put_back]
    for attempt in range(attempts):
        if not pending:
            break
        if attempt:
            pause(0.2 * 2**attempt)
        refused: list[tuple[int, bytes]] = []
        for batch in put_batches(pending):
            accepted = put_record_batch([data for _, data in batch])
            refused.extend(item for item, ok in zip(batch, accepted, strict=True) if not ok)
        pending = refused
    for index in {index for index, _ in pending}:
        decision = decisions[index]
        decision.result, decision.reason = "ProcessingFailed", "records could not be put back into the stream"
        log("ERROR", "could not put records back; the original goes to the error prefix", record_id=decision.record_id)


def firehose_put(client: Any, stream_name: str) -> Callable[[list[bytes]], list[bool]]:
    def put(records: list[bytes]) -> list[bool]:
        try:
            response = client.put_record_batch(
                DeliveryStreamName=stream_name, Records=[{"Data": data} for data in records]
            )
        except Exception as error:  # noqa: BLE001  any failure of the call: every record is retried
            log("WARN", "PutRecordBatch failed", error=str(error))
            return [False] * len(records)
        return ["ErrorCode" not in result for result in response["RequestResponses"]]

    return put


def transform(
    event: Mapping[str, Any], settings: Settings, put_record_batch: Callable[[list[bytes]], list[bool]]
) -> dict[str, Any]:
    decisions = within_budget([decide(record, settings) for record in event.get("records", [])])
    put_back(decisions, put_record_batch)
    log(
        "INFO",
        "transformed",
        records=len(decisions),
        ok=sum(d.result == "Ok" for d in decisions),
        dropped=sum(d.result == "Dropped" for d in decisions),
        failed=sum(d.result == "ProcessingFailed" for d in decisions),
        rows=sum(d.rows for d in decisions),
        put_back=sum(len(d.put_back) for d in decisions),
        quarantined=sum(d.quarantined for d in decisions),
    )
    for decision in decisions:
        if decision.result == "ProcessingFailed":
            log("WARN", "record to the error prefix", record_id=decision.record_id, reason=decision.reason)
    return {"records": [response_record(decision) for decision in decisions]}


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    stream_name = str(event["deliveryStreamArn"]).rsplit("/", 1)[-1]
    put = firehose_put(boto3.client("firehose"), stream_name)
    return transform(event, Settings.from_environment(os.environ), put)

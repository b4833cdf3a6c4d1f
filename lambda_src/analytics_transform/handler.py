"""Firehose transform: CloudWatch Logs subscription batches become rows of the data lake's metrics or events
table, partitioned by each event's own time.

For each Firehose record:
- a CloudWatch Logs control message is Dropped (it carries no log events);
- a data message becomes rows (every data point of every EMF log event, or one row per Claude Code event).
  Rows of one partition that fit in one record are returned Ok with that partition's keys. Rows that span
  partitions (a batch across an hour boundary, a late event) or do not fit are put back into the same stream,
  one record per partition and chunk, and the original is Dropped; rows come back through here unchanged (a
  record of one partition as it is, without being read again);
- a log event that cannot be parsed is put back as a quarantine record, which this function marks
  ProcessingFailed, so Firehose writes it under the error prefix while the rest of its batch goes on;
- a record that cannot be decoded at all is ProcessingFailed, and so is a record whose rows could not be put
  back after retries: Firehose then keeps it whole under the error prefix. Nothing is dropped silently.

Environment: METRICS_LOG_GROUP and EVENTS_LOG_GROUP, the log groups whose batches become metrics and events.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lambda_src.common import aws
from lambda_src.common.clock import Seconds, wall_clock_seconds
from lambda_src.common.lake_schema import METRICS_COLUMNS
from lambda_src.common.log_records import (
    MalformedLogEventError,
    Partition,
    Row,
    UnreadableBatchError,
    batch_shape_problem,
    event_rows,
    metric_rows,
    parse_json,
    partition_of,
    quarantine_reason,
    read_logs_batch,
)
from lambda_src.common.logs import log
from lambda_src.common.pricing import DEFAULT_PRICE_TABLE, PRICE_TABLE_VARIABLE, PriceTable

Table = Literal["metrics", "events"]

MAX_RECORD_BYTES = 900_000  # a Firehose record holds at most 1,000 KiB
RESPONSE_BUDGET_BYTES = 4_000_000  # base64 makes it ~5.3 MB of the 6 MB a Lambda response may carry
PUT_BATCH_RECORDS = 500
PUT_BATCH_BYTES = 4_000_000  # PutRecordBatch takes at most 4 MiB
PUT_ATTEMPTS = 3
QUARANTINE_KEY = "quarantined_log_event"


@dataclass(frozen=True)
class Settings:
    log_groups: Mapping[str, Table]
    prices: PriceTable = DEFAULT_PRICE_TABLE
    """Resolves each row's model_version, the key the analytics prices table joins on."""

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Settings:
        return cls(
            {environment["METRICS_LOG_GROUP"]: "metrics", environment["EVENTS_LOG_GROUP"]: "events"},
            PriceTable.from_json(environment.get(PRICE_TABLE_VARIABLE)),
        )


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


def quarantine_record(log_group: str, log_event: Any, reason: str) -> bytes:
    kept = dict(log_event) if isinstance(log_event, Mapping) else {"not_an_object": log_event}
    return json.dumps({QUARANTINE_KEY: kept, "log_group": log_group, "reason": reason}, default=str).encode() + b"\n"


def decide(record: Mapping[str, Any], settings: Settings, now_milliseconds: float) -> Decision:
    """What to do with one Firehose record, before the response budget is applied. Whatever the record holds,
    this returns a decision for it alone: an odd shape fails that record (to the error prefix), never the
    invocation."""
    record_id = str(record.get("recordId")) if isinstance(record, Mapping) else "None"
    try:
        return decide_record(record_id, record, settings, now_milliseconds)
    except Exception as error:  # noqa: BLE001  one record's shape must never fail the other records
        return Decision(record_id, "ProcessingFailed", reason=f"unexpected {type(error).__name__} in the record")


def decide_record(record_id: str, record: Mapping[str, Any], settings: Settings, now_milliseconds: float) -> Decision:
    try:
        payload = base64.b64decode(record["data"], validate=True)
    except (binascii.Error, ValueError, KeyError):
        return Decision(record_id, "ProcessingFailed", reason="data is not base64")
    if payload[:2] == b"\x1f\x8b":
        return decide_log_batch(
            record_id, payload, settings, record.get("approximateArrivalTimestamp"), now_milliseconds
        )
    return decide_put_back(record_id, payload)


def decide_log_batch(
    record_id: str, payload: bytes, settings: Settings, arrival: Any, now_milliseconds: float
) -> Decision:
    try:
        batch = read_logs_batch(payload)
    except UnreadableBatchError as error:
        return Decision(record_id, "ProcessingFailed", reason=str(error))
    problem = batch_shape_problem(batch)
    if problem is not None:
        return Decision(record_id, "ProcessingFailed", reason=problem)
    if batch["messageType"] == "CONTROL_MESSAGE":
        return Decision(record_id, "Dropped", reason="control message")
    table = settings.log_groups.get(batch.get("logGroup", ""))
    if batch.get("messageType") != "DATA_MESSAGE" or table is None or not isinstance(batch.get("logEvents"), list):
        return Decision(record_id, "ProcessingFailed", reason="not a data message from a configured log group")
    arrival_milliseconds = arrival if isinstance(arrival, int | float) else now_milliseconds
    rows: list[Row] = []
    quarantine: list[bytes] = []
    for log_event in batch["logEvents"]:
        try:
            if not isinstance(log_event, dict) or not isinstance(log_event.get("message"), str):
                raise MalformedLogEventError("a log event needs a message")
            if table == "metrics":
                rows.extend(metric_rows(log_event, arrival_milliseconds, settings.prices))
            else:
                rows.extend(event_rows(log_event, arrival_milliseconds, settings.prices))
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


ROW_START = f'{{"{METRICS_COLUMNS[0].name}":"'.encode()
"""How every lake row this function writes begins (its first column, the event time, in both tables)."""
PARTITION_STAMP = re.compile(rb"\d{4}-\d{2}-\d{2}T\d{2}")


def one_partition(payload: bytes) -> Partition | None:
    """The partition of a put-back record every line of which is a row of the same hour, as this function
    writes them (the event time first), within a record's size; None for anything else."""
    end = len(ROW_START) + 13
    if not payload.startswith(ROW_START) or not payload.endswith(b"\n") or len(payload) > MAX_RECORD_BYTES:
        return None
    stamp = payload[len(ROW_START) : end]
    if PARTITION_STAMP.fullmatch(stamp) is None:
        return None
    if payload.count(b"\n" + payload[:end]) != payload.count(b"\n") - 1:
        return None
    return partition_of(stamp.decode())


def decide_put_back(record_id: str, payload: bytes) -> Decision:
    """A record this function put back: rows of one table, or a quarantine record. Rows of one partition
    that fit in a record (as this function puts them back) are returned as they are, not read again: they
    are the bytes writing the rows again would give."""
    partition = one_partition(payload)
    if partition is not None:
        return Decision(record_id, "Ok", data=payload, partition=partition, rows=payload.count(b"\n"))
    rows: list[Row] = []
    try:
        for line in payload.decode().split("\n"):  # rows are written as UTF-8: U+2028 and the like stay in them
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
    event: Mapping[str, Any],
    settings: Settings,
    put_record_batch: Callable[[list[bytes]], list[bool]],
    clock: Seconds,
) -> dict[str, Any]:
    """One Firehose invocation. `clock` stands in for a record's arrival time when Firehose gives none."""
    now_milliseconds = clock() * 1000
    decisions = within_budget([decide(record, settings, now_milliseconds) for record in event.get("records", [])])
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


def handler(event: Mapping[str, Any], context: Any, clock: Seconds = wall_clock_seconds) -> dict[str, Any]:
    stream_name = str(event["deliveryStreamArn"]).rsplit("/", 1)[-1]
    put = firehose_put(aws.client("firehose"), stream_name)
    return transform(event, Settings.from_environment(os.environ), put, clock)

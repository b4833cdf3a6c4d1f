"""The data lake as Parquet, written with pyarrow from the Glue schemas (lambda_src/common/lake_schema): what
Firehose's Parquet conversion writes, modelled (Firehose itself cannot run here). The Athena query tests read
it with DuckDB; the transform benchmark measures its size."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from lambda_src.common.lake_schema import TABLES, Column
from lambda_src.common.log_records import Row

PARQUET_COMPRESSION = "snappy"
"""Firehose's Parquet serializer compresses with Snappy unless told otherwise (the stack leaves the default)."""


def arrow_type(column: Column) -> pa.DataType:
    return {
        "string": pa.string(),
        "double": pa.float64(),
        "bigint": pa.int64(),
        "int": pa.int32(),
        "boolean": pa.bool_(),
        "timestamp": pa.timestamp("ms", tz="UTC"),
        "map<string,string>": pa.map_(pa.string(), pa.string()),
    }[column.type]


def arrow_values(values: dict[str, Any]) -> dict[str, Any]:
    """A lake row (JSON values, as the transform writes it) in the types pyarrow takes for the Glue schema."""
    converted = dict(values, event_time=datetime.fromisoformat(values["event_time"]))
    for name in ("attributes", "resource_attributes"):
        if name in converted:
            converted[name] = list(converted[name].items())
    return converted


def arrow_table(table: str, rows: Sequence[dict[str, Any]]) -> pa.Table:
    schema = pa.schema([pa.field(column.name, arrow_type(column)) for column in TABLES[table]])
    return pa.Table.from_pylist(list(rows), schema=schema)


def parquet_bytes(table: str, rows: Sequence[dict[str, Any]]) -> int:
    """The size of one Parquet object holding `rows` (values as arrow_values gives them)."""
    buffer = io.BytesIO()
    pq.write_table(arrow_table(table, rows), buffer, compression=PARQUET_COMPRESSION)
    return buffer.tell()


def write_table(root: Path, table: str, rows: Sequence[Row | dict[str, Any]]) -> None:
    """One Parquet object per partition under root/table/dt=.../hour=... (rows that are plain dicts: unpartitioned)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if isinstance(row, Row):
            groups[row.partition].append(arrow_values(row.values))
        else:
            groups[("", "")].append(row)
    for (dt, hour), values in groups.items():
        folder = root / table / (f"dt={dt}/hour={hour}" if dt else "")
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(arrow_table(table, values), folder / "part-0.parquet", compression=PARQUET_COMPRESSION)

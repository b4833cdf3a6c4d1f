"""Structured logs: one JSON object per line on stdout, which Lambda sends to the function's log group, so
CloudWatch Logs Insights can filter on any field."""

from __future__ import annotations

import json
import sys
from typing import Any


def log(level: str, message: str, **fields: Any) -> None:
    """Write `{"level": ..., "message": ..., **fields}` as one line."""
    record = {"level": level, "message": message, **fields}
    sys.stdout.write(json.dumps(record, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()

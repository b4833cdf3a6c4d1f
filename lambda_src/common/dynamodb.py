"""DynamoDB reads shared by the functions that use the rollup table: batched gets with their unprocessed keys
retried under backoff, and the low-level attribute values turned into plain Python."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

BATCH_GET_LIMIT = 100
ATTEMPTS = 8

Key = tuple[str, str]


class UnprocessedKeysError(RuntimeError):
    """DynamoDB kept returning unprocessed keys (the table is throttled) after every retry."""


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter, capped at 2 s: about 0.05, 0.1, 0.2 ... seconds."""
    return min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())  # noqa: S311  jitter, not a secret


def key_value(key: Key) -> dict[str, Any]:
    return {"pk": {"S": key[0]}, "sk": {"S": key[1]}}


def batch_get(
    client: Any,
    table: str,
    keys: Sequence[Key],
    *,
    projection: str | None = None,
    names: Mapping[str, str] | None = None,
    consistent: bool = False,
    pause: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """The items of these keys that exist, in low-level form, 100 keys per request.

    DynamoDB returns keys it could not read under load as UnprocessedKeys; they are asked for again after a
    backoff, and after ATTEMPTS tries the read fails rather than return a silently incomplete answer."""
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        request: dict[str, Any] = {"Keys": [key_value(key) for key in keys[start : start + BATCH_GET_LIMIT]]}
        if consistent:
            request["ConsistentRead"] = True
        if projection:
            request["ProjectionExpression"] = projection
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        pending: dict[str, Any] = {table: request}
        for attempt in range(ATTEMPTS):
            response = client.batch_get_item(RequestItems=pending)
            yield from response.get("Responses", {}).get(table, [])
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
            pause(backoff_seconds(attempt))
        else:
            raise UnprocessedKeysError(f"DynamoDB left keys of table {table} unprocessed after {ATTEMPTS} attempts")


def plain_value(typed: Mapping[str, Any]) -> Any:
    """A low-level attribute value as Python: numbers as float, number sets as sets of float."""
    kind, content = next(iter(typed.items()))
    if kind == "N":
        return float(content)
    if kind == "NS":
        return {float(number) for number in content}
    if kind == "SS":
        return set(content)
    if kind == "M":
        return plain_item(content)
    if kind == "L":
        return [plain_value(value) for value in content]
    if kind == "NULL":
        return None
    return content


def plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: plain_value(typed) for name, typed in item.items()}

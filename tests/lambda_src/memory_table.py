"""DynamoDB in memory, for what the aggregator uses of it (items, transactions with their conditions, gets,
puts, and the claims' updates with their item size limit), with a count of items written and of the claims'
write units: the benchmark's table and the property tests' (moto is too slow for hundreds of generated
cases)."""

from __future__ import annotations

import copy
import math
from typing import Any

from botocore.exceptions import ClientError

ITEM_BYTES = 400 * 1024


def copied(item: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of an item of attribute values (strings, and lists of strings in sets), without
    copy.deepcopy's bookkeeping; anything else is deep-copied."""
    result: dict[str, Any] = {}
    for name, typed in item.items():
        if type(typed) is not dict or len(typed) != 1:
            result[name] = copy.deepcopy(typed)
            continue
        ((kind, content),) = typed.items()
        if type(content) is str:
            result[name] = {kind: content}
        elif type(content) is list and all(type(element) is str for element in content):
            result[name] = {kind: list(content)}
        else:
            result[name] = copy.deepcopy(typed)
    return result


ZERO: dict[str, str] = {"N": "0"}  # read, never stored
NO_BUCKETS: dict[str, list[str]] = {"NS": []}
VALUE_OF = {f"#{kind}{index}": f":{kind}{index}" for kind in "as" for index in range(64)}
"""The value placeholder of a name placeholder (#a0 -> :a0), for the common ones."""


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it, for strings, binaries and numbers: names plus values (a number is
    about one byte per two digits, plus one)."""
    size = 0
    for name, typed in item.items():
        ((kind, content),) = typed.items()
        size += len(name.encode())
        if kind == "S":
            size += len(content.encode("utf-8", "surrogatepass"))
        elif kind == "B":
            size += len(content)
        elif kind == "N":
            size += (len(content.lstrip("-0").replace(".", "")) + 1) // 2 + 1
        else:
            raise NotImplementedError(f"the size of a {kind} attribute")
    return size


class ConditionFailedError(Exception):
    def __init__(self, reasons: list[dict[str, str]]) -> None:
        super().__init__("cancelled")
        self.response = {"CancellationReasons": reasons}


class MemoryTable:
    """What the aggregator needs of DynamoDB, in memory: items, transactions with their conditions, claims,
    counts."""

    class exceptions:  # noqa: N801 - mirrors botocore's client.exceptions
        TransactionCanceledException = ConditionFailedError
        ConditionalCheckFailedException = ConditionFailedError

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.written = 0
        """Items written by transactions and puts (the rollups and the ledger)."""
        self.claim_write_units = 0
        """Write units of the UpdateItem calls (the claims): the larger of the item's sizes before and after,
        per KB begun, as DynamoDB charges a write outside a transaction."""

    def update_item(self, **request: Any) -> dict[str, Any]:
        """The claims' shape: `SET #iN = if_not_exists(#iN, :d), ..., #x = :x`, returning the whole item."""
        key = (request["Key"]["pk"]["S"], request["Key"]["sk"]["S"])
        before = self.items.get(key) or copied(request["Key"])
        after = dict(before)
        values = request["ExpressionAttributeValues"]
        for placeholder, name in request["ExpressionAttributeNames"].items():
            if placeholder == "#x":
                after[name] = values[":x"]
            elif name not in after:
                after[name] = values[":d"]
        size = item_bytes(after)
        if size > ITEM_BYTES:
            error = {"Code": "ValidationException", "Message": "Item size has exceeded the maximum allowed size"}
            raise ClientError({"Error": error}, "UpdateItem")
        self.items[key] = after
        self.claim_write_units += math.ceil(max(item_bytes(before), size) / 1024)
        return {"Attributes": after}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        """Only the attributes the projection asks for, as DynamoDB answers."""
        ((table, request),) = RequestItems.items()
        names = request.get("ExpressionAttributeNames", {})
        wanted = {names.get(part.strip(), part.strip()) for part in request.get("ProjectionExpression", "").split(",")}
        found = []
        for key in request["Keys"]:
            item = self.items.get((key["pk"]["S"], key["sk"]["S"]))
            if item is not None:
                found.append(
                    {name: value for name, value in item.items() if name in wanted} if wanted != {""} else item
                )
        return {"Responses": {table: found}}

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> None:  # noqa: N803
        items = self.items
        reasons = []
        failed = False
        for action in TransactItems:
            body = action.get("Put") or action["Update"]
            item_key = body.get("Item", body.get("Key"))
            current = items.get((item_key["pk"]["S"], item_key["sk"]["S"]))
            condition = body.get("ConditionExpression", "")
            ok = True
            if condition.startswith("attribute_not_exists"):
                ok = current is None or ("#v" in condition and "v" not in current)
            elif condition:
                ok = current is not None and current.get("v") == body["ExpressionAttributeValues"][":expected"]
            failed = failed or not ok
            reasons.append({"Code": "None" if ok else "ConditionalCheckFailed"})
        if failed:
            raise ConditionFailedError(reasons)
        for action in TransactItems:
            self.written += 1
            if "Put" in action:
                item = action["Put"]["Item"]
                items[(item["pk"]["S"], item["sk"]["S"])] = copied(item)
                continue
            update = action["Update"]
            key = (update["Key"]["pk"]["S"], update["Key"]["sk"]["S"])
            item = items.get(key)
            if item is None:
                item = items[key] = copied(update["Key"])
            values = update["ExpressionAttributeValues"]
            for placeholder, name in update["ExpressionAttributeNames"].items():
                if name == "v":
                    item["v"] = {"N": str(int(item.get("v", ZERO)["N"]) + 1)}
                    continue
                value = values.get(VALUE_OF.get(placeholder) or ":" + placeholder[1:]) if placeholder != "#v" else None
                if value is None:
                    continue
                if name == "buckets":
                    item["buckets"] = {"NS": sorted(set(item.get("buckets", NO_BUCKETS)["NS"]) | set(value["NS"]))}
                elif "N" in value and placeholder[:2] == "#a":
                    item[name] = {"N": str(float(item.get(name, ZERO)["N"]) + float(value["N"]))}
                else:
                    item[name] = value

    def get_item(self, TableName: str, Key: dict[str, Any], **_: Any) -> dict[str, Any]:  # noqa: N803
        item = self.items.get((Key["pk"]["S"], Key["sk"]["S"]))
        return {"Item": item} if item else {}

    def put_item(self, **request: Any) -> None:
        item = request["Item"]
        key = (item["pk"]["S"], item["sk"]["S"])
        current = self.items.get(key)
        if current is not None and current.get("v") != request.get("ExpressionAttributeValues", {}).get(":expected"):
            raise ConditionFailedError([{"Code": "ConditionalCheckFailed"}])
        self.items[key] = item
        self.written += 1

"""DynamoDB in memory, for what the aggregator uses of it (items, transactions with their conditions, gets and
puts), with a count of items written: the benchmark's table and the property tests' (moto is too slow for
hundreds of generated cases)."""

from __future__ import annotations

import copy
from typing import Any


class ConditionFailedError(Exception):
    def __init__(self, reasons: list[dict[str, str]]) -> None:
        super().__init__("cancelled")
        self.response = {"CancellationReasons": reasons}


class MemoryTable:
    """What the aggregator needs of DynamoDB, in memory: items, transactions with their conditions, counts."""

    class exceptions:  # noqa: N801 - mirrors botocore's client.exceptions
        TransactionCanceledException = ConditionFailedError
        ConditionalCheckFailedException = ConditionFailedError

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.written = 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        ((table, request),) = RequestItems.items()
        found = []
        for key in request["Keys"]:
            item = self.items.get((key["pk"]["S"], key["sk"]["S"]))
            if item is not None:
                found.append(item)
        return {"Responses": {table: found}}

    def transact_write_items(self, TransactItems: list[dict[str, Any]]) -> None:  # noqa: N803
        reasons = []
        for action in TransactItems:
            body = action.get("Put") or action["Update"]
            key = (body.get("Item", body.get("Key"))["pk"]["S"], body.get("Item", body.get("Key"))["sk"]["S"])
            current = self.items.get(key)
            condition = body.get("ConditionExpression", "")
            ok = True
            if condition.startswith("attribute_not_exists"):
                ok = current is None or ("#v" in condition and "v" not in current)
            elif condition:
                ok = current is not None and current.get("v") == body["ExpressionAttributeValues"][":expected"]
            reasons.append({"Code": "None" if ok else "ConditionalCheckFailed"})
        if any(reason["Code"] != "None" for reason in reasons):
            raise ConditionFailedError(reasons)
        for action in TransactItems:
            self.written += 1
            if "Put" in action:
                item = action["Put"]["Item"]
                self.items[(item["pk"]["S"], item["sk"]["S"])] = copy.deepcopy(item)
                continue
            update = action["Update"]
            key = (update["Key"]["pk"]["S"], update["Key"]["sk"]["S"])
            item = self.items.setdefault(key, copy.deepcopy(update["Key"]))
            names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]
            for placeholder, name in names.items():
                value = values.get(":" + placeholder[1:]) if placeholder != "#v" else None
                if name == "v":
                    item["v"] = {"N": str(int(item.get("v", {"N": "0"})["N"]) + 1)}
                elif name == "buckets" and value is not None:
                    item["buckets"] = {"NS": sorted(set(item.get("buckets", {"NS": []})["NS"]) | set(value["NS"]))}
                elif value is not None and "N" in value and placeholder.startswith("#a"):
                    item[name] = {"N": str(float(item.get(name, {"N": "0"})["N"]) + float(value["N"]))}
                elif value is not None:
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

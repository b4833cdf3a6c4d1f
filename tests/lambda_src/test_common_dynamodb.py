"""The shared batched read: unprocessed keys are asked for again after a pause, and never dropped silently."""

from __future__ import annotations

from typing import Any

import pytest

from lambda_src.common.dynamodb import ATTEMPTS, UnprocessedKeysError, batch_get, plain_item


class ThrottlingClient:
    """Answers each batch with its first key only and returns the rest as unprocessed, `throttled` times."""

    def __init__(self, throttled: int) -> None:
        self.throttled = throttled
        self.requests: list[int] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803  boto3's name
        ((table, request),) = RequestItems.items()
        keys = request["Keys"]
        self.requests.append(len(keys))
        if self.throttled > 0:
            self.throttled -= 1
            rest = {table: {**request, "Keys": keys[1:]}} if keys[1:] else {}
            return {"Responses": {table: [dict(keys[0], n={"N": "1"})]}, "UnprocessedKeys": rest}
        return {"Responses": {table: [dict(key, n={"N": "1"}) for key in keys]}, "UnprocessedKeys": {}}


def test_unprocessed_keys_are_read_again_after_a_pause() -> None:
    client, pauses = ThrottlingClient(throttled=3), []
    keys = [("USER#u", f"DAY#2026-11-{day:02}") for day in range(1, 11)]
    items = list(batch_get(client, "rollups", keys, pause=pauses.append))
    assert sorted((item["pk"]["S"], item["sk"]["S"]) for item in items) == sorted(keys)
    assert client.requests == [10, 9, 8, 7]
    assert len(pauses) == 3 and all(0 < pause <= 2.0 for pause in pauses)


def test_more_than_a_hundred_keys_go_in_several_requests() -> None:
    client = ThrottlingClient(throttled=0)
    keys = [("USER#u", f"DAY#{n:04}") for n in range(250)]
    assert len(list(batch_get(client, "rollups", keys, pause=lambda _: None))) == 250
    assert client.requests == [100, 100, 50]


def test_keys_left_unprocessed_after_every_attempt_fail_the_read() -> None:
    client = ThrottlingClient(throttled=10**6)
    keys = [("USER#u", f"DAY#{n:04}") for n in range(ATTEMPTS + 5)]
    with pytest.raises(UnprocessedKeysError, match="rollups"):
        list(batch_get(client, "rollups", keys, pause=lambda _: None))


def test_plain_item_turns_typed_values_into_python() -> None:
    item = {"pk": {"S": "USER#u"}, "tokens": {"N": "12.5"}, "buckets": {"NS": ["1", "2"]}, "gone": {"NULL": True}}
    assert plain_item(item) == {"pk": "USER#u", "tokens": 12.5, "buckets": {1.0, 2.0}, "gone": None}

"""What a function's IAM statements allow, to check every AWS call its handler makes against them: moto does not
enforce IAM, so a call a grant leaves out passes every other test and is AccessDenied on AWS."""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Iterable
from typing import Any


def granted_actions(statements: Iterable[dict[str, Any]]) -> set[str]:
    """The actions the statements allow, as written: a string or a list, wildcards such as `dynamodb:*` kept."""
    actions: set[str] = set()
    for statement in statements:
        if statement["Effect"] == "Allow":
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    return actions


def allowed(action: str, granted: Iterable[str]) -> bool:
    """IAM matches action names case-insensitively, with `*` and `?` wildcards."""
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in granted)


TRANSACTION_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
"""IAM has no action for a DynamoDB transaction: each of its items is authorised as its own action."""


SQS_BATCH_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
"""SQS's batch calls have no IAM action of their own: the single action's permission allows them (Amazon SQS
Developer Guide, "Amazon SQS batch actions")."""


def actions_of(service: str, operation: str, params: dict[str, Any]) -> set[str]:
    """The IAM actions an API call needs."""
    if (service, operation) == ("dynamodb", "TransactWriteItems"):
        return {f"dynamodb:{TRANSACTION_ACTIONS[kind]}" for item in params["TransactItems"] for kind in item}
    if (service, operation) == ("dynamodb", "TransactGetItems"):
        return {"dynamodb:GetItem"}
    if service == "sqs" and operation in SQS_BATCH_ACTIONS:
        return {f"sqs:{SQS_BATCH_ACTIONS[operation]}"}
    return {f"{service}:{operation}"}


def recording(make: Callable[..., Any], called: set[str]) -> Callable[..., Any]:
    """`make` (service, **options) -> client, with the IAM actions of every call of every client it makes added
    to `called` (botocore's before-parameter-build event; thread-safe)."""
    lock = threading.Lock()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        with lock:
            called.update(actions_of(model.service_model.service_name, model.name, params))

    def recording_client(service: str, **options: Any) -> Any:
        made = make(service, **options)
        made.meta.events.register("before-parameter-build.*.*", record)
        return made

    return recording_client

"""AWS clients are created once per execution environment and reused by later invocations."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.config import Config

from lambda_src.common import aws


def test_a_client_is_created_once_per_service_and_config(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[str, Any]] = []

    def create(service: str, config: Config | None = None) -> object:
        made.append((service, config))
        return object()

    monkeypatch.setattr(aws.boto3, "client", create)
    quiet = Config(parameter_validation=False)
    first = aws.client("dynamodb", quiet)
    assert aws.client("dynamodb", quiet) is first
    assert aws.client("dynamodb") is not first
    assert aws.client("sns") is not first
    assert made == [("dynamodb", quiet), ("dynamodb", None), ("sns", None)]

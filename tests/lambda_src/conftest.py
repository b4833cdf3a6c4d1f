"""A moto server on 127.0.0.1 for the Lambda tests: real HTTP and botocore serialization, no AWS account."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lambda_src.common import aws
from tests.clock import Clock
from tests.lambda_src.rollup_table import Deployed

REGION = "eu-west-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_client(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    """`aws_client("sns")`: a client of the moto server, with throwaway credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)

    def make(service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=moto_endpoint)

    return make


@pytest.fixture
def deployed(aws_client: Callable[[str], Any], clock: Clock) -> Deployed:
    """A fresh rollup table and failed-event queue with the aggregator wired to them."""
    return Deployed(aws_client, f"rollups-{uuid.uuid4().hex[:12]}", clock)


@pytest.fixture(autouse=True)
def fresh_aws_clients() -> Iterator[None]:
    """Each test starts with no AWS clients (the functions keep theirs between invocations, as on Lambda, and a
    test's moto server or patched boto3 must not reach the next test)."""
    aws.client.cache_clear()
    yield
    aws.client.cache_clear()

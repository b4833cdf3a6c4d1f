"""AWS clients, created once per execution environment: Lambda keeps the module loaded between invocations, so
only the first invocation pays for building a client (the service model, the credential chain)."""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config


@functools.cache
def client(service: str, config: Config | None = None) -> Any:
    """The client of `service` with `config` (a module constant, so the same config finds the same client).
    botocore clients are thread-safe, so one is shared by the threads of an invocation too."""
    return boto3.client(service, config=config)

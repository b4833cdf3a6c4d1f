"""Resources in the shape the Pulumi engine hands a policy pack, and the pack's verdict on them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import struct_pb2
from pulumi.runtime.rpc import UNKNOWN
from pulumi_policy import EnforcementLevel

from offline.engine import Registration
from offline.policy import Violation, evaluate
from policies.pack import PACK_NAME, POLICIES

SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"  # how the engine marks a secret value on the wire
SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270"
__all__ = ["UNKNOWN", "analyze", "resource", "secret", "urn", "violations_of"]


def urn(token: str, name: str) -> str:
    return f"urn:pulumi:test::p::{token}::{name}"


def secret(value: Any) -> dict[str, Any]:
    return {SECRET_SIGNATURE: SECRET_SIG_VALUE, "value": value}


def resource(
    token: str,
    name: str,
    props: Mapping[str, Any],
    *,
    depends_on: Sequence[str] = (),
    property_dependencies: Mapping[str, Sequence[str]] | None = None,
) -> Registration:
    """A registration with camelCase inputs; numbers become floats on the way through the protobuf Struct."""
    struct = struct_pb2.Struct()
    struct.update(dict(props))
    by_property = {key: list(urns) for key, urns in (property_dependencies or {}).items()}
    return Registration(
        urn=urn(token, name),
        type=token,
        name=name,
        parent=None,
        custom=True,
        properties=struct,
        dependencies=sorted({*depends_on, *(u for urns in by_property.values() for u in urns)}),
        property_dependencies=by_property,
        provider="",
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        additional_secret_outputs=[],
    )


def analyze(
    resources: Sequence[Registration], config: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Violation]:
    """Every violation the pack reports, through the analyzer servicer the CLI talks to."""
    return evaluate(
        list(resources),
        PACK_NAME,
        POLICIES,
        EnforcementLevel.ADVISORY,
        {name: dict(entry) for name, entry in (config or {}).items()},
    )


def violations_of(
    policy: str, resources: Sequence[Registration], config: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Violation]:
    return [v for v in analyze(resources, config) if v.policy == policy]

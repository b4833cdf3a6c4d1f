"""Evaluate a policy pack the way the Pulumi engine does, through the pack's own analyzer service.

The engine talks to a policy pack over gRPC: `Configure` with the policy configuration, `Analyze` once per
resource and `AnalyzeStack` once for the whole stack. Here the same servicer class that `PolicyPack`
serves is called directly with the same protobuf requests, so each policy receives what it would receive
from `pulumi preview --policy-pack`: camelCase inputs, numbers as floats, read-only mappings, secrets
unwrapped, and the stack's policy configuration.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from google.protobuf import struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel, Policy
from pulumi_policy.policy import _PolicyAnalyzerServicer

from offline.engine import OfflineError, Registration

_LEVELS: dict[str, analyzer_pb2.EnforcementLevel.ValueType] = {
    "advisory": analyzer_pb2.ADVISORY,
    "mandatory": analyzer_pb2.MANDATORY,
    "remediate": analyzer_pb2.REMEDIATE,
    "disabled": analyzer_pb2.DISABLED,
}
_LEVEL_NAMES = {value: name for name, value in _LEVELS.items()}


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement_level: str
    urn: str | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "enforcementLevel": self.enforcement_level,
            "urn": self.urn,
            "message": self.message,
        }


def load_policy_config(path: Path | None, policies: Sequence[Policy]) -> dict[str, dict[str, Any]]:
    """Read a `--policy-pack-config` JSON file and check it as the CLI does (known policies, schemas)."""
    if path is None:
        return {}
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise OfflineError(f"{path}: not a readable JSON policy configuration ({error})") from None
    by_name = {policy.name: policy for policy in policies}
    config: dict[str, dict[str, Any]] = {}
    for name, value in document.items():
        if name != "all" and name not in by_name:
            raise OfflineError(
                f"{path}: {name!r} is not a policy of this pack; policies: " + ", ".join(sorted(by_name))
            )
        entry = {"enforcementLevel": value} if isinstance(value, str) else dict(value)
        level = entry.get("enforcementLevel")
        if level is not None and level not in _LEVELS:
            raise OfflineError(f"{path}: {name}.enforcementLevel must be one of {', '.join(_LEVELS)}, got {level!r}")
        properties = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        schema = by_name[name].config_schema if name in by_name else None
        if properties and schema is not None:
            try:
                jsonschema.validate(
                    properties,
                    {
                        "type": "object",
                        "properties": schema.properties,
                        "required": schema.required or [],
                        "additionalProperties": False,
                    },
                )
            except jsonschema.ValidationError as error:
                raise OfflineError(f"{path}: {name}: {error.message}") from None
        elif properties:
            raise OfflineError(f"{path}: {name} takes no configuration besides enforcementLevel")
        config[name] = entry
    if "all" in config:
        shared = config.pop("all")
        for policy_name in by_name:
            config.setdefault(policy_name, dict(shared))
    return config


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def _servicer(
    pack_name: str, policies: Sequence[Policy], level: EnforcementLevel, config: dict[str, dict[str, Any]]
) -> _PolicyAnalyzerServicer:
    servicer = _PolicyAnalyzerServicer(pack_name, "0.0.1", list(policies), level)
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for name, entry in config.items():
        level_name = entry.get("enforcementLevel")
        policy_level = _LEVELS[level_name] if level_name else _level_of(policies, name, level)
        properties = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        request.policyConfig[name].CopyFrom(
            analyzer_pb2.PolicyConfig(enforcementLevel=policy_level, properties=_struct(properties))
        )
    servicer.Configure(request, None)
    return servicer


def _level_of(
    policies: Sequence[Policy], name: str, default: EnforcementLevel
) -> analyzer_pb2.EnforcementLevel.ValueType:
    policy = next(p for p in policies if p.name == name)
    level = policy.enforcement_level or default
    return _LEVELS[level.value]


def _options(registration: Registration) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=registration.protect,
        ignoreChanges=registration.ignore_changes,
        deleteBeforeReplace=bool(registration.delete_before_replace),
        deleteBeforeReplaceDefined=registration.delete_before_replace is not None,
        additionalSecretOutputs=registration.additional_secret_outputs,
        parent=registration.parent or "",
    )


def evaluate(
    registrations: Sequence[Registration],
    pack_name: str,
    policies: Sequence[Policy],
    default_level: EnforcementLevel,
    config: dict[str, dict[str, Any]],
) -> list[Violation]:
    """Every violation the pack reports for these resources and for the stack as a whole."""
    servicer = _servicer(pack_name, policies, default_level, config)
    violations: list[Violation] = []
    resources = list(registrations)
    for registration in resources:
        request = analyzer_pb2.AnalyzeRequest(
            type=registration.type,
            properties=registration.properties,
            urn=registration.urn,
            name=registration.name,
            options=_options(registration),
        )
        response = servicer.Analyze(request, None)
        violations.extend(_violations(response, default_urn=registration.urn))
    stack_request = analyzer_pb2.AnalyzeStackRequest(
        resources=[
            analyzer_pb2.AnalyzerResource(
                type=r.type,
                properties=r.properties,
                urn=r.urn,
                name=r.name,
                options=_options(r),
                parent=r.parent or "",
                dependencies=r.dependencies,
                propertyDependencies={
                    k: analyzer_pb2.AnalyzerPropertyDependencies(urns=v) for k, v in r.property_dependencies.items()
                },
            )
            for r in resources
        ]
    )
    violations.extend(_violations(servicer.AnalyzeStack(stack_request, None), default_urn=None))
    return violations


def _violations(response: analyzer_pb2.AnalyzeResponse, default_urn: str | None) -> list[Violation]:
    return [
        Violation(
            policy=d.policyName,
            enforcement_level=_LEVEL_NAMES.get(d.enforcementLevel, "advisory"),
            urn=d.urn or default_urn,
            message=d.message,
        )
        for d in response.diagnostics
    ]

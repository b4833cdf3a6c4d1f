"""Documents a stack stores inside resources: collector configurations and Claude Code managed settings.

A collector configuration can ride in a container's environment, an SSM parameter, a bucket object or a
secret; so can the managed settings handed to developers' machines. The rules look in all of those.
Reading a value that is unknown during preview raises `UnknownValueError`, which the engine reports as
an advisory naming the property.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

TASK_DEFINITION_TYPE = "aws:ecs/taskDefinition:TaskDefinition"
SSM_PARAMETER_TYPE = "aws:ssm/parameter:Parameter"
BUCKET_OBJECT_TYPES = ("aws:s3/bucketObject:BucketObject", "aws:s3/bucketObjectv2:BucketObjectv2")
SECRET_VERSION_TYPE = "aws:secretsmanager/secretVersion:SecretVersion"  # noqa: S105 (a type token)

OTLP_ENDPOINT_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


@dataclass(frozen=True)
class StoredDocument:
    where: str
    """The property that holds it, e.g. `insecureValue` or `containerDefinitions[collector].env.OTELCOL_CONFIG`."""
    document: Mapping[str, Any]


def stored_texts(resource_type: str, props: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(property, text) for every text value of the resource that may hold a document."""
    if resource_type == TASK_DEFINITION_TYPE:
        return _container_environment(props.get("containerDefinitions"))
    if resource_type == SSM_PARAMETER_TYPE:
        return [(key, props[key]) for key in ("value", "insecureValue") if isinstance(props.get(key), str)]
    if resource_type in BUCKET_OBJECT_TYPES:
        texts = [("content", props["content"])] if isinstance(props.get("content"), str) else []
        encoded = props.get("contentBase64")
        if isinstance(encoded, str):
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                texts.append(("contentBase64", base64.b64decode(encoded, validate=True).decode()))
        return texts
    if resource_type == SECRET_VERSION_TYPE:
        return [("secretString", props["secretString"])] if isinstance(props.get("secretString"), str) else []
    return []


def _container_environment(definitions: Any) -> list[tuple[str, str]]:
    try:
        containers = json.loads(definitions) if isinstance(definitions, str) else []
    except json.JSONDecodeError:
        return []
    texts: list[tuple[str, str]] = []
    for container in containers if isinstance(containers, list) else []:
        if not isinstance(container, dict):
            continue
        for variable in container.get("environment") or []:
            if isinstance(variable, dict) and isinstance(variable.get("value"), str):
                where = f"containerDefinitions[{container.get('name')}].environment.{variable.get('name')}"
                texts.append((where, variable["value"]))
    return texts


def _parsed(text: str) -> Any:
    try:
        return yaml.safe_load(text)  # YAML is a superset of JSON: one parser for both kinds of document
    except yaml.YAMLError:
        return None


def is_collector_config(document: Any) -> bool:
    """An OpenTelemetry collector configuration: a mapping with an OTLP receiver."""
    receivers = document.get("receivers") if isinstance(document, Mapping) else None
    return isinstance(receivers, Mapping) and any(str(name).split("/")[0] == "otlp" for name in receivers)


def is_claude_code_settings(document: Any) -> bool:
    """Claude Code settings that configure telemetry: an `env` mapping with OTEL_* or the telemetry switch."""
    env = document.get("env") if isinstance(document, Mapping) else None
    return isinstance(env, Mapping) and any(
        str(key).startswith("OTEL_") or key == "CLAUDE_CODE_ENABLE_TELEMETRY" for key in env
    )


def collector_configs(resource_type: str, props: Mapping[str, Any]) -> list[StoredDocument]:
    return [
        StoredDocument(where, document)
        for where, text in stored_texts(resource_type, props)
        if is_collector_config(document := _parsed(text))
    ]


def claude_code_settings(resource_type: str, props: Mapping[str, Any]) -> list[StoredDocument]:
    return [
        StoredDocument(where, document)
        for where, text in stored_texts(resource_type, props)
        if is_claude_code_settings(document := _parsed(text))
    ]

"""What the rule families share: names, configuration defaults, stored documents; and the pack's own shape."""

from __future__ import annotations

import base64
import json
import re

import pytest

from policies.common import Setting, normalized_name, settings
from policies.documents import claude_code_settings, collector_configs, stored_texts
from policies.pack import POLICIES


@pytest.mark.parametrize(
    "spelling",
    [
        "user.email",
        "UserEmail",
        "user_email",
        "USER-EMAIL",
        "@resource.user.email",
        "$.user.email",
        '"user.email"',
        "$.attributes['user.email']",
        '$.resource["user.email"]',
    ],
)
def test_spellings_of_one_attribute_normalize_alike(spelling: str) -> None:
    assert normalized_name(spelling) == "useremail"


def test_settings_apply_declared_defaults_and_keep_given_values() -> None:
    age = Setting("maximumCredentialAgeDays", {"type": "integer"}, 90)
    extra = Setting("extra", {"type": "array"}, [])
    assert settings(None, age, extra) == {"maximumCredentialAgeDays": 90, "extra": []}
    assert settings({"maximumCredentialAgeDays": 30}, age, extra)["maximumCredentialAgeDays"] == 30


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_every_rule_has_a_plain_name_a_fix_and_schema_defaults(policy) -> None:  # type: ignore[no-untyped-def]
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", policy.name)
    assert "Fix:" in policy.description
    for name, schema in (policy.config_schema.properties if policy.config_schema else {}).items():
        assert "default" in schema, f"{policy.name}.{name} has no default for the CLI to apply"
        assert schema.get("description"), f"{policy.name}.{name} is undocumented"


def test_pack_rule_names_are_unique() -> None:
    names = [policy.name for policy in POLICIES]
    assert len(names) == len(set(names)) == 14


def test_documents_are_found_in_base64_bucket_objects() -> None:
    settings_text = json.dumps({"env": {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://o"}})
    props = {"contentBase64": base64.b64encode(settings_text.encode()).decode()}
    (found,) = claude_code_settings("aws:s3/bucketObjectv2:BucketObjectv2", props)
    assert found.where == "contentBase64"


@pytest.mark.parametrize(
    "props",
    [
        {"containerDefinitions": "not json"},
        {"containerDefinitions": json.dumps([{"environment": [{"name": "X", "value": "key: [unclosed"}]}])},
        {"containerDefinitions": json.dumps({"not": "a list"})},
        {"containerDefinitions": json.dumps(["not a container"])},
    ],
    ids=["not-json", "bad-yaml", "not-a-list", "not-a-container"],
)
def test_malformed_task_definitions_hold_no_documents(props: dict[str, str]) -> None:
    assert collector_configs("aws:ecs/taskDefinition:TaskDefinition", props) == []


def test_other_resource_types_hold_no_texts() -> None:
    assert stored_texts("aws:sns/topic:Topic", {"name": "x"}) == []

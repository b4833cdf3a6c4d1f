"""Pulumi.yaml, the stack files and the policy pack files agree with the code that reads them."""

from __future__ import annotations

import json

import pytest
import yaml

from infra.config import PROJECT, SCALAR_KEYS, SECTION_KEYS, StackConfig
from offline.policy import load_policy_config
from offline.preview import PROJECT_ROOT
from policies.pack import POLICIES


def project_file() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "Pulumi.yaml").read_text())


def test_project_runs_infra_with_uv() -> None:
    project = project_file()
    assert project["name"] == PROJECT
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "uv", "virtualenv": ".venv"}}
    assert project["main"] == "infra/"
    assert (PROJECT_ROOT / "infra" / "__main__.py").is_file()


def test_every_scalar_key_is_declared_with_type_description_and_the_code_default() -> None:
    declared = project_file()["config"]
    assert set(declared) == set(SCALAR_KEYS)
    fields = {field.alias: field for field in StackConfig.model_fields.values()}
    for key in SCALAR_KEYS:
        declaration = declared[key]
        assert declaration["type"] in ("string", "integer", "boolean", "array")
        assert declaration["description"]
        assert declaration["default"] == fields[key].default


def test_object_sections_are_documented_in_the_project_file() -> None:
    text = (PROJECT_ROOT / "Pulumi.yaml").read_text()
    assert all(f"#   {section}" in text for section in SECTION_KEYS)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_file_sets_region_tags_and_every_section(stack: str) -> None:
    config = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    assert config["aws:region"]
    assert config["aws:defaultTags"]["tags"]["environment"] == stack
    assert all(f"{PROJECT}:{section}" in config for section in SECTION_KEYS)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_policy_config_per_stack_is_valid_for_the_pack(stack: str) -> None:
    path = PROJECT_ROOT / "policies" / "config" / f"{stack}.json"
    config = load_policy_config(path, POLICIES)
    assert config["load-balancer-listeners-use-https"]["enforcementLevel"] == "mandatory"
    assert json.loads(path.read_text())


def test_policy_pack_entry_point_is_one_call() -> None:
    main = (PROJECT_ROOT / "policies" / "__main__.py").read_text()
    assert main.count("PolicyPack(") == 1
    pack = yaml.safe_load((PROJECT_ROOT / "policies" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python"
    assert pack["version"]


def test_every_policy_tells_the_fix() -> None:
    assert all("Fix:" in policy.description for policy in POLICIES)

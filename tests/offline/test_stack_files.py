"""Stack files as the Pulumi CLI reads them, and the provider keys and region the program checks.

- A key given twice in one YAML mapping is an error naming the key and its line (the CLI's YAML decoder refuses
  it; PyYAML would keep the last value).
- `aws:region` must be a region botocore knows (any partition), and the error lists the nearest ones.
- An `aws:` key the AWS provider does not declare (a typo such as `aws:regoin`) is an error listing the keys.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import AWS_PROVIDER_KEYS, REGION_SHAPE, ConfigError, known_regions, parse_stack_config
from offline.engine import Program, StackConfigFile, StackFileError
from offline.preview import EXIT_INVALID_CONFIG, PROJECT_ROOT, main

PROD = PROJECT_ROOT / "Pulumi.prod.yaml"


def prod_config(**changes: Any) -> dict[str, Any]:
    config = dict(yaml.safe_load(PROD.read_text())["config"])
    config.update(changes)
    return config


def problems(config: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as failure:
        parse_stack_config(config, "Pulumi.prod.yaml")
    return failure.value.problems


# Duplicate keys ------------------------------------------------------------------------------------------------


def with_duplicate(tmp_path: Path, old: str, new: str) -> Path:
    text = PROD.read_text()
    assert old in text
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def line_of(path: Path, text: str, occurrence: int = 1) -> int:
    lines = [number for number, line in enumerate(path.read_text().splitlines(), start=1) if text in line]
    return lines[occurrence - 1]


def test_a_top_level_key_given_twice_is_named_with_both_lines(tmp_path: Path) -> None:
    path = with_duplicate(
        tmp_path, "  aws:region: eu-west-1\n", "  aws:region: eu-west-1\n  aws:region: eu-central-1\n"
    )
    with pytest.raises(StackFileError) as failure:
        StackConfigFile.load(path, Program.load(PROJECT_ROOT))
    second, first = line_of(path, "aws:region:", 2), line_of(path, "aws:region:")
    assert str(failure.value) == (
        f"Pulumi.prod.yaml, line {second}: the key `aws:region` is given twice in the same mapping (first on line "
        f"{first}); YAML would keep only the last value and the Pulumi CLI refuses the file: keep one"
    )


def test_a_nested_key_given_twice_is_named(tmp_path: Path) -> None:
    path = with_duplicate(tmp_path, "    desiredCount: 2\n", "    desiredCount: 2\n    desiredCount: 6\n")
    with pytest.raises(StackFileError, match=rf"line {line_of(path, 'desiredCount', 2)}: the key `desiredCount`"):
        StackConfigFile.load(path, Program.load(PROJECT_ROOT))


def test_the_same_key_in_different_mappings_and_merge_keys_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(
        "config:\n"
        "  claude-code-monitoring:dashboard: &board\n    enabled: true\n    logRetentionDays: 7\n"
        "  claude-code-monitoring:analytics:\n    enabled: true\n    logRetentionDays: 7\n"
        "  claude-code-monitoring:quota:\n    <<: *board\n    enabled: false\n"
    )
    values = StackConfigFile.load(path, Program.load(PROJECT_ROOT)).values
    assert values["claude-code-monitoring:quota"] == '{"enabled": false, "logRetentionDays": 7}'


def test_the_preview_exits_2_on_a_duplicate_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = with_duplicate(tmp_path, "    enabled: true\n", "    enabled: true\n    enabled: false\n")
    status = main(["--program", str(PROJECT_ROOT), "--config", str(path), "--out", str(tmp_path / "out")])
    assert status == EXIT_INVALID_CONFIG
    assert "the key `enabled` is given twice" in capsys.readouterr().err


# Region ------------------------------------------------------------------------------------------------------------


def test_known_regions_cover_every_partition() -> None:
    regions = known_regions()
    assert {"eu-west-1", "us-east-1", "cn-north-1", "us-gov-west-1", "us-isob-east-1", "eusc-de-east-1"} <= set(regions)
    assert "eu-west-9" not in regions and "aws-global" not in regions
    assert all(re.fullmatch(REGION_SHAPE, region) for region in regions)  # the shape checked first fits them all


@pytest.mark.parametrize("region", ["eu-west-1", "us-gov-west-1", "cn-northwest-1", "eusc-de-east-1"])
def test_known_regions_are_accepted(region: str) -> None:
    assert parse_stack_config(prod_config(**{"aws:region": region}), "Pulumi.prod.yaml").region == region


@pytest.mark.parametrize(
    ("region", "nearest"),
    [
        ("eu-west-9", "eu-west-1, eu-west-2 or eu-west-3"),
        ("eu-wset-1", "eu-west-1, "),
        ("us-east-7", "us-east-1, us-east-2 or "),
    ],
)
def test_an_unknown_region_names_the_key_the_file_and_nearby_regions(region: str, nearest: str) -> None:
    (problem,) = problems(prod_config(**{"aws:region": region}))
    assert problem.startswith(f"aws:region must be a region AWS has, such as {nearest}")
    assert f"(botocore knows {len(known_regions())} regions with EC2; set aws:skipRegionValidation: true" in problem
    assert problem.endswith(f'(Pulumi.prod.yaml), got "{region}"')


def test_skip_region_validation_lets_a_newer_region_through_but_not_a_misshapen_one() -> None:
    config = prod_config(**{"aws:region": "eu-west-9", "aws:skipRegionValidation": True})
    assert parse_stack_config(config, "Pulumi.prod.yaml").region == "eu-west-9"
    (problem,) = problems({**config, "aws:region": "Ireland"})
    assert problem == 'aws:region must be an AWS region such as eu-west-1 (Pulumi.prod.yaml), got "Ireland"'


def test_a_region_that_is_not_a_string_is_refused() -> None:
    (problem,) = problems(prod_config(**{"aws:region": 5}))
    assert problem == "aws:region must be an AWS region such as eu-west-1 (Pulumi.prod.yaml), got 5"


# Provider keys -----------------------------------------------------------------------------------------------------


def test_a_misspelt_provider_key_is_named_with_a_guess_and_the_known_keys() -> None:
    config = prod_config(**{"aws:regoin": "eu-west-1"})
    (problem,) = problems(config)
    assert problem == (
        "aws:regoin is not a setting of the AWS provider (did you mean aws:region?); its keys are "
        + ", ".join(AWS_PROVIDER_KEYS)
        + " (Pulumi.prod.yaml)"
    )


def test_an_unknown_provider_key_without_a_near_miss_has_no_guess() -> None:
    (problem,) = problems(prod_config(**{"aws:colour": "blue"}))
    assert problem.startswith("aws:colour is not a setting of the AWS provider; its keys are accessKey, ")


@pytest.mark.parametrize("key", ["profile", "assumeRoles", "skipCredentialsValidation", "allowedAccountIds"])
def test_keys_the_provider_documents_are_accepted(key: str) -> None:
    parse_stack_config(prod_config(**{f"aws:{key}": "x"}), "Pulumi.prod.yaml")


def test_the_known_keys_are_the_installed_providers() -> None:
    """The list in infra/config.py is the one pulumi-aws declares (sdk/python/pulumi_aws/config/vars.py)."""
    import pulumi_aws

    source = (Path(pulumi_aws.__file__).parent / "config" / "vars.py").read_text()
    declared = sorted(set(re.findall(r"__config__\.get\w*\('(\w+)'\)", source)))
    assert declared and list(AWS_PROVIDER_KEYS) == declared

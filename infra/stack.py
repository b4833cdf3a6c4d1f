"""Composition: which components a stack gets, wired from its configuration sections.

Each component plugs in here with its section of `StackConfig`; a component's module never reads
configuration itself, so it stays reusable in other programs.
"""

from __future__ import annotations

import pulumi

from components.operations import Operations, OperationsArgs
from infra.config import SECTION_KEYS, StackConfig

# Sections whose component this version of the program does not deploy yet, with the issue that adds it.
PENDING_COMPONENTS = {
    "collector": 3,
    "dashboard": 4,
    "analytics": 5,
    "quota": 6,
    "bearerTokenIngest": 7,
}


def enabled_sections(settings: StackConfig) -> list[str]:
    """Config keys of the component sections this stack enables, in SECTION_KEYS order."""
    by_alias = {field.alias: name for name, field in StackConfig.model_fields.items()}
    return [key for key in SECTION_KEYS if getattr(settings, by_alias[key]).enabled]


def compose(settings: StackConfig, stack: str) -> dict[str, pulumi.Input[object]]:
    """Declare the stack's resources; return its outputs."""
    prefix = f"{settings.name_prefix}-{stack}"
    operations = Operations(f"{prefix}-ops", OperationsArgs(alarm_emails=list(settings.alarm_emails)))

    enabled = enabled_sections(settings)
    for section in enabled:
        if section in PENDING_COMPONENTS:
            pulumi.log.warn(
                f"{section} is enabled in Pulumi.{stack}.yaml, but this version of the program "
                f"does not deploy it yet (issue #{PENDING_COMPONENTS[section]}); nothing is "
                "created for it"
            )

    return {
        "region": settings.region,
        "operationsTopicArn": operations.topic_arn,
        "enabledComponents": enabled,
    }

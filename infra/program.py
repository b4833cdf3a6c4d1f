"""Read and validate the stack's configuration, then declare the stack."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env

from infra.config import ConfigError, StackConfig, parse_stack_config, stack_file_name
from infra.stack import compose


class InvalidStackConfig(pulumi.RunError):
    """Reported by the Pulumi CLI as a plain error message, without a Python traceback."""


def raw_stack_config() -> dict[str, Any]:
    """All configuration the engine handed to this program: `{"namespace:key": value}`."""
    config: dict[str, Any] = dict(get_config_env())
    config.update(CONFIG.get())
    return config


def load_stack_config() -> StackConfig:
    stack_file = stack_file_name(pulumi.get_stack())
    try:
        return parse_stack_config(raw_stack_config(), stack_file)
    except ConfigError as error:
        raise InvalidStackConfig(str(error)) from None


def run() -> None:
    settings = load_stack_config()
    for name, value in compose(settings, pulumi.get_stack()).items():
        pulumi.export(name, value)

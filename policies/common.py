"""What every rule family shares: configuration with defaults, values unknown during preview, names.

The Pulumi CLI fills a policy's configuration from its schema defaults; offline runs and older CLIs do not.
So each rule declares its settings once (`Setting`), the schema is generated from them, and the rule reads
them through `settings()`, which applies the same defaults in code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pulumi_policy import PolicyConfigSchema, PolicyResource, ReportViolation
from pulumi_policy.proxy import UnknownValueError

T = TypeVar("T")


@dataclass(frozen=True)
class Setting:
    """One configuration property of a rule: its JSON schema (without the default) and its default."""

    name: str
    schema: Mapping[str, Any]
    default: Any


def config_schema(*settings: Setting) -> PolicyConfigSchema:
    return PolicyConfigSchema(
        properties={setting.name: {**setting.schema, "default": setting.default} for setting in settings}
    )


def settings(config: Mapping[str, Any] | None, *declared: Setting) -> dict[str, Any]:
    """The rule's configuration, with the declared default for every property the stack did not set."""
    given = dict(config or {})
    return {setting.name: given.get(setting.name, setting.default) for setting in declared}


class UncheckedValuesError(UnknownValueError):
    """Raised by a stack rule after it reported what it could check: the engine turns it into an advisory."""

    def __init__(self, unchecked: Iterable[str]) -> None:
        Exception.__init__(self)
        self.unknown_type_sentinel = ""
        self.props = []
        self.message = (
            "could not check " + "; ".join(unchecked) + " (unknown until the update runs; the rule runs again then)"
        )


class UnknownValues:
    """Collects what a stack rule could not check, so one unknown value does not stop the whole rule."""

    def __init__(self) -> None:
        self.unchecked: list[str] = []

    def attempt(self, resource_name: str, default: T, check: Callable[..., T], *args: Any) -> T:
        """`check(*args)`, or `default` after noting what was unknown."""
        try:
            return check(*args)
        except UnknownValueError as error:
            self.unchecked.append(f"{resource_name} ({error.message})")
            return default

    def raise_if_any(self) -> None:
        if self.unchecked:
            raise UncheckedValuesError(self.unchecked)


def report_each(
    resources: Sequence[PolicyResource],
    types: Iterable[str],
    problem: Callable[[PolicyResource, Sequence[PolicyResource]], str | None],
    report_violation: ReportViolation,
) -> None:
    """A stack rule's loop: `problem(resource, resources)` for each resource of `types`, reported on it.

    A resource whose values are unknown during preview is set aside; after the others are reported, one
    advisory names everything that could not be checked.
    """
    wanted = set(types)
    unknowns = UnknownValues()
    for resource in resources:
        if resource.resource_type in wanted:
            found = unknowns.attempt(resource.name, None, problem, resource, resources)
            if found:
                report_violation(found, resource.urn)
    unknowns.raise_if_any()


_PREFIXES = ("@resource.", "@attributes.", "resource.", "attributes.", "$.")


def normalized_name(name: str) -> str:
    """An attribute or dimension name reduced to compare spellings: `user.email`, `UserEmail`, `user_email`,
    `@resource.user.email` and `$.user.email` all give `useremail`."""
    text = re.sub(r"\[[\"']?([^\"'\]]*)[\"']?\]", r".\1", name.strip())
    text = re.sub(r"[\"']", "", text).lower()
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if text.startswith(prefix):
                text, changed = text[len(prefix) :], True
    return re.sub(r"[^a-z0-9]", "", text)


def forbidden_names(names: Iterable[str]) -> dict[str, str]:
    """Normalized name -> the spelling the configuration gave, for messages."""
    return {normalized_name(name): name for name in names if normalized_name(name)}

"""Quota policies: what they are, which one applies to a user, how they are stored in DynamoDB, and the rules
a limit and a list of thresholds must follow.

Shared by the stack configuration (infra/config.py, which checks the quota section with the rules below), the
Quota component (which writes one item per policy on `pulumi up`), the quota monitor (which reads them at run
time and checks every item again with the same rules) and the Athena quota query. Precedence: the user's own
policy, else the policy of the user's team, else of the user's department, else the default. The chosen policy
applies whole: its limits and thresholds, with no limit borrowed from a policy further down. A limit that is
missing or 0 is off.

Reading is total: `read_policy` turns any item, however malformed, into either a policy or a `SkippedPolicy`
with the reason, and never raises. The users a skipped policy would have applied to are held (not checked
against some other policy: the run cannot know the limits that were meant); everyone else is checked.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

SCOPES = ("user", "team", "department", "default")
"""Policy scopes, highest precedence first."""
GROUP_SCOPES = ("team", "department")
LIMITS = ("daily_tokens", "monthly_tokens", "daily_usd", "monthly_usd")
WHOLE_NUMBER_LIMITS = ("daily_tokens", "monthly_tokens")
LIMIT_LABELS = {
    "daily_tokens": "daily token limit",
    "monthly_tokens": "monthly token limit",
    "daily_usd": "daily USD limit",
    "monthly_usd": "monthly USD limit",
}
DEFAULT_THRESHOLDS = (80, 90, 100)
POLICY_PK = "POLICY"
ALERT_PK_PREFIX = "ALERT#"
"""Alert claims are keyed ALERT#<user>: the monitor may write only those in the quota table."""

QUOTA_QUALITY_SK = "QUALITY"
"""The monitor's data-quality item in the rollup table, beside the near-quota list: QUOTA#<day> / QUALITY holds
the policy items the latest run skipped (with the reasons), the users it held, and the alerts in doubt."""
MONITOR_METRICS_NAMESPACE = "ClaudeCodeMonitoring/Quota"
"""The monitor's own metrics, written as embedded metric format in its run log line (no PutMetricData grant):
dimension FunctionName. The Quota component alarms on the two below."""
POLICIES_SKIPPED_METRIC = "PoliciesSkipped"
ALERTS_IN_DOUBT_METRIC = "AlertsInDoubt"


# The rules: one place each, used by the configuration, the component and the monitor -----------------------

LIMIT_MIN = 0
THRESHOLD_MIN, THRESHOLD_MAX = 1, 100
THRESHOLDS_RULE = f"strictly ascending percentages from {THRESHOLD_MIN} to {THRESHOLD_MAX}, such as [80, 90, 100]"
THRESHOLD_RULE = f"an integer from {THRESHOLD_MIN} to {THRESHOLD_MAX}"
"""One threshold; the configuration states it as Field(ge=THRESHOLD_MIN, le=THRESHOLD_MAX) on each item."""


def limit_rule(limit: str) -> str:
    """What a limit may be: token limits are whole numbers, USD limits any number; 0 (off) or more."""
    return f"{'an integer' if limit in WHOLE_NUMBER_LIMITS else 'a number'} of at least {LIMIT_MIN}"


def limit_problem(limit: str, value: object) -> str | None:
    """None when `value` is a valid setting of `limit` (None: not set), else the rule it breaks. A number must
    be finite and usable as a float: NaN, infinity or 1e400 would compare with usage as no limit at all."""
    if value is None:
        return None
    number = _number(value)
    if (
        number is None
        or number < LIMIT_MIN
        or (limit in WHOLE_NUMBER_LIMITS and number != number.to_integral_value())
        or math.isinf(float(number))
        or (number != 0 and float(number) == 0)  # so small that it reads as 0, which is off
    ):
        return limit_rule(limit)
    return None


def threshold_problem(value: object) -> str | None:
    """None when `value` is a valid alert threshold, else the rule it breaks."""
    if isinstance(value, bool) or not isinstance(value, int) or not THRESHOLD_MIN <= value <= THRESHOLD_MAX:
        return THRESHOLD_RULE
    return None


def thresholds_problem(values: Sequence[object]) -> str | None:
    """None when `values` is a valid list of thresholds (each valid, at least one, strictly ascending)."""
    whole = [value for value in values if threshold_problem(value) is None and isinstance(value, int)]
    if not values or len(whole) != len(values) or any(a >= b for a, b in itertools.pairwise(whole)):
        return THRESHOLDS_RULE
    return None


def _number(value: object) -> Decimal | None:
    """`value` as a finite Decimal, or None when it is not a number (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    number = Decimal(value)
    return number if number.is_finite() else None


# Policies ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaPolicy:
    """Limits of one policy: None or 0 is no limit."""

    scope: str
    """user, team, department or default."""
    name: str = ""
    """The user's email (or user id), the team id, the department; empty for the default."""
    daily_tokens: float | None = None
    monthly_tokens: float | None = None
    daily_usd: float | None = None
    monthly_usd: float | None = None
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    """Percentages of a limit at which an alert is sent, ascending."""

    @property
    def key(self) -> str:
        return policy_key(self.scope, self.name)

    def limit(self, name: str) -> float | None:
        """The limit, or None when it is off (missing or 0)."""
        value = getattr(self, name)
        return float(value) if value else None

    def describe(self) -> str:
        return "the default policy" if self.scope == "default" else f"the {self.scope} policy for {self.name}"


def policy_key(scope: str, name: str) -> str:
    """The policy's sort key in the quota table and its name in the dashboard: default, or <scope>#<name>."""
    return "default" if scope == "default" else f"{scope}#{name}"


@dataclass(frozen=True)
class SkippedPolicy:
    """A stored policy item the monitor could not use, and why."""

    key: str | None
    """The policy the item is stored as (its sort key), when that is a policy key: the users that policy would
    apply to are held. None when not even that can be read: the item applies to nobody."""
    reason: str

    def describe(self) -> str:
        return f"policy item {self.key!r}" if self.key else "a policy item without a valid key"


@dataclass(frozen=True)
class PolicyBook:
    """The policies of a stack, looked up by scope and name, and the items that were skipped."""

    policies: Mapping[str, QuotaPolicy] = field(default_factory=dict)
    skipped: tuple[SkippedPolicy, ...] = ()

    @classmethod
    def of(cls, policies: Iterable[QuotaPolicy | SkippedPolicy]) -> PolicyBook:
        found = list(policies)
        return cls(
            {policy.key: policy for policy in found if isinstance(policy, QuotaPolicy)},
            tuple(policy for policy in found if isinstance(policy, SkippedPolicy)),
        )

    @classmethod
    def read(cls, items: Iterable[object]) -> PolicyBook:
        """The book of the stored items: each item a policy, or skipped with its reason."""
        return cls.of(read_policy(item) for item in items)

    def effective(self, user: str, team: str | None, department: str | None) -> QuotaPolicy | SkippedPolicy:
        """The policy that applies to this user (a default without limits when the book has none), or the
        skipped item that would have applied: then the user is not checked against another policy."""
        held = {skipped.key: skipped for skipped in self.skipped if skipped.key}
        candidates = [policy_key("user", user)]
        candidates += [policy_key("team", team)] if team else []
        candidates += [policy_key("department", department)] if department else []
        for candidate in [*candidates, "default"]:
            if candidate in self.policies:
                return self.policies[candidate]
            if candidate in held:
                return held[candidate]
        return QuotaPolicy("default")


def policy_problems(policies: Sequence[QuotaPolicy]) -> list[str]:
    """What is wrong with a set of policies, in words a user can act on."""
    problems = []
    seen: set[str] = set()
    for policy in policies:
        where = policy.describe()
        if policy.scope not in SCOPES:
            problems.append(f"{where}: scope must be one of {', '.join(SCOPES)}, got {policy.scope!r}")
        if policy.scope != "default" and not policy.name:
            problems.append(f"a {policy.scope} policy needs a name")
        if policy.key in seen:
            problems.append(f"{where} is given more than once")
        seen.add(policy.key)
        for limit in LIMITS:
            value = getattr(policy, limit)
            problem = limit_problem(limit, value)
            if problem:
                problems.append(f"{where}: {limit} must be {problem}, got {value}")
        problem = thresholds_problem(policy.thresholds)
        if problem:
            problems.append(f"{where}: thresholds must be {problem}, got {list(policy.thresholds)}")
    return problems


# DynamoDB items (low-level form, as TableItem writes them and the monitor reads them) ----------------------


def policy_item(policy: QuotaPolicy) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": POLICY_PK},
        "sk": {"S": policy.key},
        "scope": {"S": policy.scope},
        "name": {"S": policy.name},
        "thresholds": {"L": [{"N": str(t)} for t in policy.thresholds]},
    }
    for limit in LIMITS:
        value = getattr(policy, limit)
        if value is not None:
            item[limit] = {"N": format(Decimal(str(value)).normalize(), "f")}
    return item


class PolicyItemError(ValueError):
    """A stored policy item breaks a rule; the message says which, in the configuration's words."""


SHOWN_CHARACTERS = 80


def shown(value: object) -> str:
    """A stored value for a message: JSON, cut short (an item may hold 400 KB of anything)."""
    text = json.dumps(value, default=str, ensure_ascii=True)
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 3] + "..."


def read_policy(item: object) -> QuotaPolicy | SkippedPolicy:
    """The policy a stored item holds, or why it cannot be used. Never raises."""
    if not isinstance(item, Mapping):
        return SkippedPolicy(None, f"not a DynamoDB item: {shown(item)}")
    stored = _typed(item.get("sk"), "S")
    key = stored if isinstance(stored, str) and _is_policy_key(stored) else None
    try:
        return policy_from_item(item)
    except PolicyItemError as problem:
        return SkippedPolicy(key, str(problem))


def policy_from_item(item: Mapping[str, Any]) -> QuotaPolicy:
    """The policy a stored item holds, checked with the rules of the stack configuration; PolicyItemError
    names the first rule it breaks."""
    scope = _typed(item.get("scope"), "S")
    if "scope" not in item:
        raise PolicyItemError("scope is missing")
    if scope not in SCOPES:
        raise PolicyItemError(f"scope must be one of {', '.join(SCOPES)}, got {shown(item['scope'])}")
    name = _typed(item.get("name", {"S": ""}), "S")
    if not isinstance(name, str):
        raise PolicyItemError(f"name must be a string, got {shown(item['name'])}")
    if scope != "default" and not name:
        raise PolicyItemError(f"a {scope} policy needs a name")
    limits = {limit: _limit(limit, item[limit]) for limit in LIMITS if limit in item}
    thresholds = _thresholds(item["thresholds"]) if "thresholds" in item else DEFAULT_THRESHOLDS
    policy = QuotaPolicy(scope, name, thresholds=thresholds, **limits)
    stored = _typed(item.get("sk"), "S")
    if stored != policy.key:
        raise PolicyItemError(f"its sort key {shown(item.get('sk'))} is not its scope and name ({shown(policy.key)})")
    return policy


def _is_policy_key(text: str) -> bool:
    scope, separator, name = text.partition("#")
    return text == "default" or (scope in SCOPES[:3] and separator == "#" and bool(name))


def _typed(value: object, kind: str) -> Any:
    """The content of a low-level attribute value of this kind ({"S": "x"} -> "x"), or None."""
    if isinstance(value, Mapping) and len(value) == 1 and kind in value:
        return value[kind]
    return None


def _stored_number(value: object) -> Decimal | None:
    text = _typed(value, "N")
    if not isinstance(text, str):
        return None
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _limit(limit: str, value: object) -> float | None:
    if _typed(value, "NULL") is True:
        return None  # as a missing limit, which the configuration writes as null
    number = _stored_number(value)
    problem = limit_problem(limit, number) if number is not None else limit_rule(limit)
    if problem or number is None:
        raise PolicyItemError(f"{limit} must be {problem}, got {shown(value)}")
    return float(number)


def _thresholds(value: object) -> tuple[int, ...]:
    stored = _typed(value, "L")
    if not isinstance(stored, list):
        raise PolicyItemError(f"thresholds must be a list of {THRESHOLDS_RULE}, got {shown(value)}")
    thresholds = []
    for index, element in enumerate(stored):
        number = _stored_number(element)
        if number is None or not THRESHOLD_MIN <= number <= THRESHOLD_MAX or number != number.to_integral_value():
            raise PolicyItemError(f"thresholds[{index}] must be {THRESHOLD_RULE}, got {shown(element)}")
        thresholds.append(int(number))
    problem = thresholds_problem(thresholds)
    if problem:
        raise PolicyItemError(f"thresholds must be {problem}, got {shown(thresholds)}")
    return tuple(thresholds)

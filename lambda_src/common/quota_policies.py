"""Quota policies: what they are, which one applies to a user, and how they are stored in DynamoDB.

Shared by the Quota component (which writes one item per policy on `pulumi up`), the quota monitor (which
reads them at run time) and the Athena quota query. Precedence: the user's own policy, else the policy of the
user's team, else of the user's department, else the default. The chosen policy applies whole: its limits
and thresholds, with no limit borrowed from a policy further down. A limit that is missing or 0 is off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

SCOPES = ("user", "team", "department", "default")
"""Policy scopes, highest precedence first."""
GROUP_SCOPES = ("team", "department")
LIMITS = ("daily_tokens", "monthly_tokens", "daily_usd", "monthly_usd")
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
        return "default" if self.scope == "default" else f"{self.scope}#{self.name}"

    def limit(self, name: str) -> float | None:
        """The limit, or None when it is off (missing or 0)."""
        value = getattr(self, name)
        return float(value) if value else None

    def describe(self) -> str:
        return "the default policy" if self.scope == "default" else f"the {self.scope} policy for {self.name}"


@dataclass(frozen=True)
class PolicyBook:
    """The policies of a stack, looked up by scope and name."""

    policies: Mapping[str, QuotaPolicy] = field(default_factory=dict)

    @classmethod
    def of(cls, policies: Iterable[QuotaPolicy]) -> PolicyBook:
        return cls({policy.key: policy for policy in policies})

    def effective(self, user: str, team: str | None, department: str | None) -> QuotaPolicy:
        """The policy that applies to this user (a default without limits when the book has none)."""
        candidates = [f"user#{user}"]
        candidates += [f"team#{team}"] if team else []
        candidates += [f"department#{department}"] if department else []
        for candidate in candidates:
            if candidate in self.policies:
                return self.policies[candidate]
        return self.policies.get("default", QuotaPolicy("default"))


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
            if value is not None and value < 0:
                problems.append(f"{where}: {limit} must be 0 (off) or more, got {value}")
        thresholds = list(policy.thresholds)
        if not thresholds or any(not 1 <= t <= 100 for t in thresholds) or thresholds != sorted(set(thresholds)):
            problems.append(f"{where}: thresholds must be ascending percentages from 1 to 100, got {thresholds}")
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


def policy_from_item(item: Mapping[str, Any]) -> QuotaPolicy:
    limits = {limit: float(item[limit]["N"]) for limit in LIMITS if limit in item}
    thresholds = tuple(int(value["N"]) for value in item.get("thresholds", {}).get("L", []))
    return QuotaPolicy(
        item["scope"]["S"], item.get("name", {}).get("S", ""), thresholds=thresholds or DEFAULT_THRESHOLDS, **limits
    )

"""Quota policies: precedence, storage round trip, the problems a user is told about, and reading stored items
with the configuration's rules (hostile items are skipped with a reason, never raised)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.config import PROJECT, ConfigError, parse_stack_config
from lambda_src.common.quota_policies import (
    LIMITS,
    SCOPES,
    PolicyBook,
    QuotaPolicy,
    SkippedPolicy,
    limit_problem,
    policy_from_item,
    policy_item,
    policy_problems,
    read_policy,
    thresholds_problem,
)

BOOK = PolicyBook.of(
    [
        QuotaPolicy("default", monthly_usd=500),
        QuotaPolicy("department", "research", monthly_usd=1500),
        QuotaPolicy("team", "interns", monthly_tokens=50_000_000),
        QuotaPolicy("user", "lead@example.com", monthly_usd=2000),
    ]
)


def test_the_user_policy_wins_then_the_team_then_the_department_then_the_default() -> None:
    assert BOOK.effective("lead@example.com", "interns", "research").key == "user#lead@example.com"
    assert BOOK.effective("ann@example.com", "interns", "research").key == "team#interns"
    assert BOOK.effective("ann@example.com", "ml", "research").key == "department#research"
    assert BOOK.effective("ann@example.com", None, None).key == "default"


def test_the_chosen_policy_applies_whole() -> None:
    intern = BOOK.effective("ann@example.com", "interns", "research")
    assert isinstance(intern, QuotaPolicy)
    assert intern.limit("monthly_usd") is None  # not borrowed from the department or the default
    assert intern.limit("monthly_tokens") == 50_000_000


def test_zero_and_missing_limits_are_off_and_a_book_without_policies_limits_nothing() -> None:
    assert QuotaPolicy("default", daily_usd=0).limit("daily_usd") is None
    assert QuotaPolicy("default").limit("monthly_tokens") is None
    assert PolicyBook().effective("ann@example.com", "t", "d") == QuotaPolicy("default")


def test_a_policy_survives_the_round_trip_through_its_dynamodb_item() -> None:
    policy = QuotaPolicy("team", "interns", daily_usd=12.5, monthly_tokens=50_000_000, thresholds=(50, 75, 100))
    item = policy_item(policy)
    assert item["pk"] == {"S": "POLICY"} and item["sk"] == {"S": "team#interns"}
    assert item["monthly_tokens"] == {"N": "50000000"} and "monthly_usd" not in item
    assert policy_from_item(item) == policy


def test_problems_name_the_policy_and_what_is_allowed() -> None:
    problems = policy_problems(
        [
            QuotaPolicy("default", daily_usd=-1),
            QuotaPolicy("squad", "a"),
            QuotaPolicy("team", "a", thresholds=(90, 80)),
            QuotaPolicy("team", "a"),
            QuotaPolicy("user", "b", thresholds=(50, 120)),
            QuotaPolicy("user", "c", monthly_tokens=1.5, daily_usd=math.inf),
        ]
    )
    assert problems == [
        "the default policy: daily_usd must be a number of at least 0, got -1",
        "the squad policy for a: scope must be one of user, team, department, default, got 'squad'",
        "the team policy for a: thresholds must be strictly ascending percentages from 1 to 100, such as "
        "[80, 90, 100], got [90, 80]",
        "the team policy for a is given more than once",
        "the user policy for b: thresholds must be strictly ascending percentages from 1 to 100, such as "
        "[80, 90, 100], got [50, 120]",
        "the user policy for c: monthly_tokens must be an integer of at least 0, got 1.5",
        "the user policy for c: daily_usd must be a number of at least 0, got inf",
    ]


# One rule, three places: the stack configuration, the component's arguments, the monitor's read ------------


def config_problems(quota: dict[str, Any]) -> list[str]:
    try:
        parse_stack_config({"aws:region": "eu-west-1", f"{PROJECT}:quota": quota}, "Pulumi.prod.yaml")
    except ConfigError as error:
        return error.problems
    return []


@pytest.mark.parametrize(
    ("limit", "value"),
    [
        ("monthlyUsd", -5),
        ("monthlyUsd", math.nan),
        ("monthlyUsd", math.inf),
        ("monthlyUsd", -0.01),
        ("monthlyTokens", -1),
    ],
)
def test_a_limit_the_configuration_refuses_is_skipped_when_read(limit: str, value: float) -> None:
    assert config_problems({"default": {limit: value}}), f"the configuration accepts {limit}={value}"
    stored = "monthly_usd" if limit == "monthlyUsd" else "monthly_tokens"
    item = {**policy_item(QuotaPolicy("default")), stored: {"N": str(value)}}
    skipped = read_policy(item)
    assert isinstance(skipped, SkippedPolicy) and skipped.key == "default"
    assert skipped.reason.startswith(f"{stored} must be a")


@pytest.mark.parametrize("thresholds", [[], [0, 50], [50, 50], [90, 80], [80, 101], [80.5, 90]])
def test_thresholds_the_configuration_refuses_are_skipped_when_read(thresholds: list[float]) -> None:
    assert config_problems({"thresholds": thresholds}), f"the configuration accepts {thresholds}"
    item = {**policy_item(QuotaPolicy("default")), "thresholds": {"L": [{"N": str(t)} for t in thresholds]}}
    skipped = read_policy(item)
    assert isinstance(skipped, SkippedPolicy) and skipped.reason.startswith("thresholds")


@pytest.mark.parametrize(("limit", "value"), [("monthlyUsd", 0), ("monthlyUsd", 0.5), ("monthlyTokens", 10**12)])
def test_a_limit_the_configuration_accepts_is_read_back(limit: str, value: float) -> None:
    assert config_problems({"default": {limit: value}}) == []
    stored = "monthly_usd" if limit == "monthlyUsd" else "monthly_tokens"
    policy = read_policy({**policy_item(QuotaPolicy("default")), stored: {"N": str(value)}})
    assert isinstance(policy, QuotaPolicy) and getattr(policy, stored) == value


def test_the_rules_are_the_functions_the_configuration_calls() -> None:
    assert limit_problem("daily_usd", 0) is None and limit_problem("daily_usd", 1e-400) is None  # 0.0: off
    assert limit_problem("daily_usd", 10**400) == "a number of at least 0"  # beyond a double
    assert limit_problem("daily_tokens", 2.5) == "an integer of at least 0"
    assert limit_problem("daily_usd", True) == "a number of at least 0"
    assert thresholds_problem([80, 90, 100]) is None and thresholds_problem([True]) is not None


# Reading stored items ----------------------------------------------------------------------------------------


def good(**changes: Any) -> dict[str, Any]:
    """The stored item of the interns' team policy, with some attributes changed (None removes one)."""
    item = policy_item(QuotaPolicy("team", "interns", daily_usd=10, monthly_tokens=1000))
    for name, value in changes.items():
        if value is None:
            item.pop(name, None)
        else:
            item[name] = value
    return item


INTERNS = "team#interns"
HOSTILE: list[tuple[str, Any, str | None, str]] = [
    ("scope missing", good(scope=None), INTERNS, "scope is missing"),
    (
        "scope a number",
        good(scope={"N": "1"}),
        INTERNS,
        'scope must be one of user, team, department, default, got {"N"',
    ),
    ("scope unknown", good(scope={"S": "squad"}), INTERNS, "scope must be one of"),
    ("name missing", good(name=None), INTERNS, "a team policy needs a name"),
    ("name a list", good(name={"L": []}), INTERNS, "name must be a string"),
    (
        "limit as text",
        good(daily_usd={"S": "10"}),
        INTERNS,
        'daily_usd must be a number of at least 0, got {"S": "10"}',
    ),
    ("limit a boolean", good(daily_usd={"BOOL": True}), INTERNS, "daily_usd must be a number of at least 0"),
    ("negative limit", good(daily_usd={"N": "-5"}), INTERNS, "daily_usd must be a number of at least 0"),
    ("NaN limit", good(daily_usd={"N": "NaN"}), INTERNS, "daily_usd must be a number of at least 0"),
    ("infinite limit", good(daily_usd={"N": "Infinity"}), INTERNS, "daily_usd must be a number of at least 0"),
    ("limit beyond a double", good(daily_usd={"N": "1e400"}), INTERNS, "daily_usd must be a number"),
    ("limit that reads as 0", good(daily_usd={"N": "1e-400"}), INTERNS, "daily_usd must be a number"),
    ("exponent beyond Decimal", good(daily_usd={"N": "1e99999999999999999999"}), INTERNS, "daily_usd must"),
    ("fractional token limit", good(monthly_tokens={"N": "1000.5"}), INTERNS, "monthly_tokens must be an integer"),
    ("fractional threshold", good(thresholds={"L": [{"N": "80.5"}]}), INTERNS, "thresholds[0] must be an integer"),
    ("threshold 0", good(thresholds={"L": [{"N": "0"}, {"N": "50"}]}), INTERNS, "thresholds[0] must be"),
    ("threshold over 100", good(thresholds={"L": [{"N": "80"}, {"N": "120"}]}), INTERNS, "thresholds[1] must be"),
    ("huge threshold", good(thresholds={"L": [{"N": "1e999999999"}]}), INTERNS, "thresholds[0] must be"),
    ("descending", good(thresholds={"L": [{"N": "90"}, {"N": "80"}]}), INTERNS, "thresholds must be strictly"),
    ("repeated", good(thresholds={"L": [{"N": "80"}, {"N": "80"}]}), INTERNS, "thresholds must be strictly"),
    ("thresholds empty", good(thresholds={"L": []}), INTERNS, "thresholds must be strictly ascending"),
    ("thresholds a number set", good(thresholds={"NS": ["80", "90"]}), INTERNS, "thresholds must be a list"),
    ("threshold as text", good(thresholds={"L": [{"S": "80"}]}), INTERNS, "thresholds[0] must be"),
    ("sort key of another policy", good(sk={"S": "team#seniors"}), "team#seniors", "its sort key"),
    ("sort key unreadable", good(sk={"N": "7"}), None, "its sort key"),
    ("sort key missing", good(sk=None), None, "its sort key null"),
    ("not an item", ["POLICY"], None, "not a DynamoDB item"),
    ("huge text", good(daily_usd={"S": "x" * 300_000}), INTERNS, "..."),
]


@pytest.mark.parametrize(("case", "item", "key", "reason"), HOSTILE, ids=[case for case, *_ in HOSTILE])
def test_a_hostile_item_is_skipped_with_the_rule_it_breaks(case: str, item: Any, key: str | None, reason: str) -> None:
    skipped = read_policy(item)
    assert isinstance(skipped, SkippedPolicy), case
    assert skipped.key == key
    assert reason in skipped.reason
    assert len(skipped.reason) < 250  # a 300 KB value is cut short in the message


def test_missing_thresholds_and_null_limits_read_as_the_configuration_writes_them() -> None:
    policy = read_policy(good(thresholds=None, daily_usd={"NULL": True}))
    assert policy == QuotaPolicy("team", "interns", monthly_tokens=1000)


def test_the_users_of_a_skipped_policy_are_held_and_everyone_else_is_checked() -> None:
    book = PolicyBook.read(
        [
            policy_item(QuotaPolicy("default", daily_usd=5)),
            good(daily_usd={"N": "-1"}),  # the interns' team policy, broken
            policy_item(QuotaPolicy("department", "research", daily_usd=50)),
            {**policy_item(QuotaPolicy("user", "lead@example.com")), "scope": {"S": "boss"}},
            {"pk": {"S": "POLICY"}, "sk": {"S": "???"}},  # applies to nobody
        ]
    )
    assert [s.key for s in book.skipped] == ["team#interns", "user#lead@example.com", None]
    assert isinstance(book.effective("ann@example.com", "interns", "research"), SkippedPolicy)  # not research's
    assert isinstance(book.effective("lead@example.com", "platform", "engineering"), SkippedPolicy)
    assert book.effective("bob@example.com", "ml", "research").key == "department#research"
    assert book.effective("eve@example.com", "platform", "engineering").key == "default"


def test_a_broken_default_holds_only_those_without_another_policy() -> None:
    book = PolicyBook.read([good(), {**policy_item(QuotaPolicy("default")), "daily_usd": {"S": "a lot"}}])
    assert isinstance(book.effective("eve@example.com", None, None), SkippedPolicy)
    assert book.effective("ann@example.com", "interns", None).key == "team#interns"


# Properties --------------------------------------------------------------------------------------------------

ODD_NUMBERS = "NaN -NaN sNaN Infinity -Infinity 1e400 -1e400 1e-400 1e99999999999999999999 80.5 -5 0 -0 100 1e125"
NUMBER_TEXTS = st.one_of(
    st.sampled_from([*ODD_NUMBERS.split(), "9" * 40, "", "abc", " 7 ", "1_000", "0x10", "1e2"]),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
)
LEAVES = st.one_of(
    st.builds(lambda v: {"S": v}, st.text(max_size=12)),
    st.builds(lambda v: {"N": v}, NUMBER_TEXTS),
    st.builds(lambda v: {"BOOL": v}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda v: {"NS": v}, st.lists(NUMBER_TEXTS, max_size=3)),
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.builds(lambda v: {"N": v}, st.integers()),  # a number where a string belongs
    st.builds(lambda v: {"S": "x", "N": v}, NUMBER_TEXTS),  # two types in one value
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.builds(lambda v: {"L": v}, st.lists(inner, max_size=4)),
        st.builds(lambda v: {"M": v}, st.dictionaries(st.text(max_size=5), inner, max_size=3)),
        st.lists(inner, max_size=3),
    ),
    max_leaves=8,
)
ATTRIBUTES = st.sampled_from(["pk", "sk", "scope", "name", "thresholds", *LIMITS, "extra"])
POLICIES = st.builds(
    lambda scope, name, thresholds, limits: QuotaPolicy(
        scope, "" if scope == "default" else name, thresholds=thresholds, **limits
    ),
    st.sampled_from(SCOPES),
    st.text(min_size=1, max_size=30),
    st.lists(st.integers(1, 100), min_size=1, max_size=5, unique=True).map(lambda t: tuple(sorted(t))),
    st.fixed_dictionaries(
        {},
        optional={
            "daily_tokens": st.integers(0, 10**15),
            "monthly_tokens": st.integers(0, 10**15),
            "daily_usd": st.decimals(0, 10**9, places=2).map(float),
            "monthly_usd": st.decimals(0, 10**9, places=2).map(float),
        },
    ),
)


@st.composite
def mangled_items(draw: st.DrawFn) -> Any:
    """A stored policy item with some attributes removed or replaced by anything at all; or anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(VALUES, st.dictionaries(ATTRIBUTES, VALUES, max_size=9)))
    item: dict[str, Any] = policy_item(draw(POLICIES))
    for name in draw(st.lists(ATTRIBUTES, max_size=3, unique=True)):
        if draw(st.booleans()):
            item.pop(name, None)
        else:
            item[name] = draw(VALUES)
    return item


@settings(max_examples=600, deadline=None)
@given(item=mangled_items())
def test_reading_any_item_never_raises_and_whatever_it_returns_keeps_the_rules(item: Any) -> None:
    found = read_policy(item)
    if isinstance(found, SkippedPolicy):
        assert found.reason and len(found.reason) < 250
        assert found.key is None or found.key == item["sk"]["S"]
    else:
        assert policy_problems([found]) == []  # the rules the configuration applies
        assert found.key == item["sk"]["S"]
        assert all(math.isfinite(getattr(found, limit) or 0) for limit in LIMITS)
    json.dumps(found.__dict__, default=str)  # loggable


@settings(max_examples=200, deadline=None)
@given(policy=POLICIES)
def test_a_policy_the_rules_accept_is_read_back_unchanged(policy: QuotaPolicy) -> None:
    assert policy_problems([policy]) == []
    assert read_policy(policy_item(policy)) == policy


BREAKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "scope missing": lambda item: item.pop("scope"),
    "scope a number": lambda item: item.update(scope={"N": "3"}),
    "limit as text": lambda item: item.update(monthly_usd={"S": "500"}),
    "negative limit": lambda item: item.update(daily_usd={"N": "-0.5"}),
    "NaN limit": lambda item: item.update(daily_usd={"N": "NaN"}),
    "infinite limit": lambda item: item.update(monthly_usd={"N": "Infinity"}),
    "limit beyond a double": lambda item: item.update(daily_tokens={"N": "1e400"}),
    "fractional token limit": lambda item: item.update(daily_tokens={"N": "0.5"}),
    "fractional threshold": lambda item: item.update(thresholds={"L": [{"N": "80.5"}, {"N": "90"}]}),
    "threshold over 100": lambda item: item.update(thresholds={"L": [{"N": "101"}]}),
    "huge threshold": lambda item: item.update(thresholds={"L": [{"N": "9" * 40}]}),
    "thresholds out of order": lambda item: item.update(thresholds={"L": [{"N": "90"}, {"N": "80"}]}),
    "thresholds not a list": lambda item: item.update(thresholds={"S": "80,90"}),
}


@settings(max_examples=300, deadline=None)
@given(
    good_policies=st.lists(POLICIES, max_size=6, unique_by=lambda p: p.key),
    broken=st.lists(st.tuples(POLICIES, st.sampled_from(sorted(BREAKS))), max_size=6, unique_by=lambda b: b[0].key),
)
def test_each_broken_item_is_skipped_with_a_reason_and_the_good_ones_all_apply(
    good_policies: list[QuotaPolicy], broken: list[tuple[QuotaPolicy, str]]
) -> None:
    broken_keys = {policy.key for policy, _ in broken}
    good_policies = [policy for policy in good_policies if policy.key not in broken_keys]  # one item per key
    items = [policy_item(policy) for policy in good_policies]
    for policy, how in broken:
        item = policy_item(policy)
        BREAKS[how](item)
        items.append(item)
    book = PolicyBook.read(items)
    assert dict(book.policies) == {policy.key: policy for policy in good_policies}
    assert sorted(str(s.key) for s in book.skipped) == sorted(broken_keys)
    assert all(s.reason for s in book.skipped)
    for policy in good_policies:
        if policy.scope == "user":
            assert book.effective(policy.name, None, None) == policy

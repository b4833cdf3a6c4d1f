"""Quota policies: precedence, storage round trip, and the problems a user is told about."""

from __future__ import annotations

from lambda_src.common.quota_policies import PolicyBook, QuotaPolicy, policy_from_item, policy_item, policy_problems

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
        ]
    )
    assert problems == [
        "the default policy: daily_usd must be 0 (off) or more, got -1",
        "the squad policy for a: scope must be one of user, team, department, default, got 'squad'",
        "the team policy for a: thresholds must be ascending percentages from 1 to 100, got [90, 80]",
        "the team policy for a is given more than once",
        "the user policy for b: thresholds must be ascending percentages from 1 to 100, got [50, 120]",
    ]

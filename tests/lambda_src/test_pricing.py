"""The price table: which reported model ids an entry prices, stack overrides, and the Lambda encoding."""

from __future__ import annotations

import pytest

from lambda_src.common.pricing import DEFAULT_PRICE_TABLE, ModelPrice, PriceTable, model_version


@pytest.mark.parametrize(
    ("reported", "normalised"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929"),
        ("global.anthropic.claude-opus-4-5-20251101-v1:0", "claude-opus-4-5-20251101"),
        ("anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku-20240307"),
        ("arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-haiku-4-5-20251001-v1:0",
         "claude-haiku-4-5-20251001"),
        ("claude-opus-5-5", "claude-opus-5-5"),  # the client's default: undated
        ("Claude-Sonnet-5-5[1m]", "claude-sonnet-5-5"),
        ("  ", None),
        (None, None),
    ],
)  # fmt: skip
def test_reported_model_ids_are_normalised(reported: str | None, normalised: str | None) -> None:
    assert model_version(reported) == normalised


@pytest.mark.parametrize(
    ("reported", "key"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-opus-4-7", None),  # an undated key never prices another model
        ("claude-opus-5-5", None),  # a model newer than the table: the client's cost stands
        ("gpt-4o", None),
    ],
)  # fmt: skip
def test_an_entry_prices_its_model_dated_or_not_and_nothing_else(reported: str, key: str | None) -> None:
    assert DEFAULT_PRICE_TABLE.key_for(reported) == key


def test_a_stack_adds_and_replaces_entries_and_prefixes_match_the_longest() -> None:
    table = PriceTable.with_overrides(
        {
            "claude-opus-5*": ModelPrice(4, 20, 0.4, 5),
            "claude-opus-5-5": ModelPrice(6, 30, 0.6, 7.5),
            "Claude-Sonnet-4-5": ModelPrice(2.7, 13.5, 0.27, 3.375),  # a contract rate for a known model
        }
    )
    assert table.key_for("claude-opus-5-5") == "claude-opus-5-5"  # exact beats a prefix
    assert table.key_for("claude-opus-5-1-20270101") == "claude-opus-5*"
    assert table.price(table.key_for("us.anthropic.claude-sonnet-4-5-20250929-v1:0"), "input") == 2.7
    assert table.price(table.key_for("claude-haiku-4-5"), "output") == 5.0  # the defaults stay
    assert table.price("claude-opus-5*", "cacheRead") == 0.4
    assert table.price("claude-opus-5*", "thinking") is None
    assert table.price(None, "input") is None


def test_the_table_survives_the_lambda_environment_exactly() -> None:
    table = PriceTable.with_overrides({"claude-opus-5*": ModelPrice(4, 20, 0.4, 5)})
    assert PriceTable.from_json(table.to_json()) == table
    assert PriceTable.from_json(None) is DEFAULT_PRICE_TABLE
    assert len(DEFAULT_PRICE_TABLE.to_json()) < 1024


def test_the_prices_table_rows_carry_every_entry_and_token_type() -> None:
    rows = list(DEFAULT_PRICE_TABLE.rows())
    assert len(rows) == 4 * len(DEFAULT_PRICE_TABLE.entries)
    assert {"model_version": "claude-sonnet-4-5", "token_type": "cacheCreation", "usd_per_million_tokens": 3.75} in rows

"""One price table for every cost the product computes: per model version and token type, in USD per million
tokens. The analytics prices table, the dashboard's cost rollups and the USD quotas all read it from here.

Token types are Claude Code's own `type` values on `claude_code.token.usage`: `input`, `output`, `cacheRead`
and `cacheCreation`. Cache writes are priced at the 5-minute cache write price (1.25 x input), which is what
Claude Code uses. Prices are list prices of the Anthropic API, which Amazon Bedrock matches for on-demand
global inference; regional endpoints of newer models cost more, so review the table against your contract.
A model that is not in the table has no price: its cost is unknown (NULL), never 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

TOKEN_TYPES = ("input", "output", "cacheRead", "cacheCreation")
TOKENS_PER_PRICE_UNIT = 1_000_000


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens of one model version."""

    input: float
    output: float
    cache_read: float
    cache_creation: float

    def per_token_type(self) -> dict[str, float]:
        return dict(zip(TOKEN_TYPES, (self.input, self.output, self.cache_read, self.cache_creation), strict=True))


def _priced(input_price: float, output_price: float) -> ModelPrice:
    """Anthropic's cache prices follow from the input price: reads 0.1 x, 5-minute writes 1.25 x."""
    return ModelPrice(input_price, output_price, round(input_price * 0.1, 6), round(input_price * 1.25, 6))


PRICES: Mapping[str, ModelPrice] = {
    "claude-opus-4-5-20251101": _priced(5.0, 25.0),
    "claude-opus-4-1-20250805": _priced(15.0, 75.0),
    "claude-opus-4-20250514": _priced(15.0, 75.0),
    "claude-sonnet-4-5-20250929": _priced(3.0, 15.0),
    "claude-sonnet-4-20250514": _priced(3.0, 15.0),
    "claude-3-7-sonnet-20250219": _priced(3.0, 15.0),
    "claude-3-5-sonnet-20241022": _priced(3.0, 15.0),
    "claude-haiku-4-5-20251001": _priced(1.0, 5.0),
    "claude-3-5-haiku-20241022": _priced(0.8, 4.0),
    "claude-3-haiku-20240307": _priced(0.25, 1.25),
}

# Names without a date that Claude Code may report, and the version each stands for.
ALIASES: Mapping[str, str] = {
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-opus-4": "claude-opus-4-20250514",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-sonnet-4": "claude-sonnet-4-20250514",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
}

# `us.anthropic.claude-sonnet-4-5-20250929-v1:0`, an inference profile ARN, or the plain name: the version is
# the `claude-...-YYYYMMDD` part; a `[1m]` context suffix or a Bedrock `-v1:0` does not change the price here.
_DATED_NAME = re.compile(r"claude-[a-z0-9.-]*?-\d{8}")
_ALIAS_NAME = re.compile(r"claude-[a-z]+-\d+(?:-\d+)?")


def model_version(model: str | None) -> str | None:
    """The canonical model version of a reported model name, or None when it names no Claude model."""
    if not model:
        return None
    name = model.strip().lower()
    dated = _DATED_NAME.search(name)
    if dated:
        return dated.group(0)
    alias = _ALIAS_NAME.search(name)
    if alias and alias.group(0) in ALIASES:
        return ALIASES[alias.group(0)]
    return None


def price_per_million(version: str | None, token_type: str, prices: Mapping[str, ModelPrice] = PRICES) -> float | None:
    if version is None or token_type not in TOKEN_TYPES or version not in prices:
        return None
    return prices[version].per_token_type()[token_type]


def token_cost_usd(
    model: str | None, token_type: str, tokens: float, prices: Mapping[str, ModelPrice] = PRICES
) -> float | None:
    """What `tokens` of `token_type` cost on `model` (a reported name), or None when the model has no price."""
    price = price_per_million(model_version(model), token_type, prices)
    return None if price is None else tokens * price / TOKENS_PER_PRICE_UNIT


def price_rows(prices: Mapping[str, ModelPrice] = PRICES) -> Iterator[dict[str, object]]:
    """The table as rows of (model_version, token_type, usd_per_million_tokens), the analytics prices table."""
    for version, price in sorted(prices.items()):
        for token_type, usd in price.per_token_type().items():
            yield {"model_version": version, "token_type": token_type, "usd_per_million_tokens": usd}

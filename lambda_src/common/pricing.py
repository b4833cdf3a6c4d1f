"""One price table for every cost the product computes, per model and token type, in USD per million tokens.
The analytics prices table, the dashboard's cost rollups and the USD quotas all read it from here.

The client prices its own usage (`claude_code.cost.usage`, `cost_usd` on api_request) and that cost is
always recorded. The table only re-prices: a stack sets its own entries (`pricing` in the stack file) for
contract or Bedrock rates, and they win over the defaults below. Usage of a model the table does not know is
costed at the client's own figure and counted as unpriced in data quality; it never reads as $0.

An entry's key is a model id as the client reports it once normalised (`model_version`): lower case, without
a Bedrock region prefix (`us.anthropic.`), version suffix (`-v1:0`) or context suffix (`[1m]`). A key
matches that id exactly, or the id without its date (`claude-sonnet-4-5` matches
`claude-sonnet-4-5-20250929`), or, when it ends in `*`, every id it starts (`claude-opus-5*`). An undated key
never matches a different model: `claude-opus-4` does not price `claude-opus-4-7`.

Token types are Claude Code's own `type` values on `claude_code.token.usage`. Cache writes are priced at the
5-minute cache write price (1.25 x input), which is what Claude Code uses. Defaults are list prices of the
Anthropic API, which Amazon Bedrock matches for on-demand global inference; regional endpoints of newer
models cost more, so review them against your contract.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from lambda_src.common.telemetry import TOKEN_TYPES

TOKENS_PER_PRICE_UNIT = 1_000_000
PRICE_TABLE_VARIABLE = "PRICE_TABLE"
"""Environment variable that carries a stack's table (JSON) to the functions that price usage."""
PRICE_TABLE_MAX_BYTES = 2048
"""The table's share of a Lambda environment (4 KB in all)."""


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens of one model."""

    input: float
    output: float
    cache_read: float
    cache_creation: float

    def per_token_type(self) -> dict[str, float]:
        return dict(zip(TOKEN_TYPES, (self.input, self.output, self.cache_read, self.cache_creation), strict=True))


def _priced(input_price: float, output_price: float) -> ModelPrice:
    """Anthropic's cache prices follow from the input price: reads 0.1 x, 5-minute writes 1.25 x."""
    return ModelPrice(input_price, output_price, round(input_price * 0.1, 6), round(input_price * 1.25, 6))


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    "claude-opus-4-5": _priced(5.0, 25.0),
    "claude-opus-4-1": _priced(15.0, 75.0),
    "claude-opus-4": _priced(15.0, 75.0),
    "claude-sonnet-4-5": _priced(3.0, 15.0),
    "claude-sonnet-4": _priced(3.0, 15.0),
    "claude-3-7-sonnet": _priced(3.0, 15.0),
    "claude-3-5-sonnet": _priced(3.0, 15.0),
    "claude-haiku-4-5": _priced(1.0, 5.0),
    "claude-3-5-haiku": _priced(0.8, 4.0),
    "claude-3-haiku": _priced(0.25, 1.25),
}

_BEDROCK_PREFIX = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.")
_VERSION_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")
_CONTEXT_SUFFIX = re.compile(r"\[[^\]]*\]$")
_DATE_SUFFIX = re.compile(r"-\d{8}$")


def model_version(model: str | None) -> str | None:
    """The reported model id, normalised; None when there is none. An inference profile ARN keeps its last part."""
    if not model or not model.strip():
        return None
    name = model.strip().lower().rsplit("/", 1)[-1]
    name = _CONTEXT_SUFFIX.sub("", name)
    name = _BEDROCK_PREFIX.sub("", name)
    return _VERSION_SUFFIX.sub("", name) or None


@dataclass(frozen=True)
class PriceTable:
    entries: Mapping[str, ModelPrice]

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, ModelPrice]) -> PriceTable:
        """The defaults, with a stack's entries added or replacing theirs."""
        return cls({**DEFAULT_PRICES, **{key.strip().lower(): price for key, price in overrides.items()}})

    def key_for(self, model: str | None) -> str | None:
        """The entry that prices this reported model: exact id, then undated id, then the longest `*` prefix."""
        version = model_version(model)
        if version is None:
            return None
        if version in self.entries:
            return version
        undated = _DATE_SUFFIX.sub("", version)
        if undated in self.entries:
            return undated
        prefixes = [key for key in self.entries if key.endswith("*") and version.startswith(key[:-1])]
        return max(prefixes, key=len) if prefixes else None

    def price(self, key: str | None, token_type: str) -> float | None:
        """USD per million tokens for an entry key (from `key_for`), or None when unpriced."""
        if key is None or key not in self.entries or token_type not in TOKEN_TYPES:
            return None
        return self.entries[key].per_token_type()[token_type]

    def rows(self) -> Iterator[dict[str, object]]:
        """(model_version, token_type, usd_per_million_tokens) rows: the analytics prices table."""
        for key, price in sorted(self.entries.items()):
            for token_type, usd in price.per_token_type().items():
                yield {"model_version": key, "token_type": token_type, "usd_per_million_tokens": usd}

    def to_json(self) -> str:
        """Compact: {key: [input, output, cacheRead, cacheCreation]} (a Lambda's environment holds 4 KB)."""
        table = {key: list(price.per_token_type().values()) for key, price in sorted(self.entries.items())}
        return json.dumps(table, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> PriceTable:
        """The table a function was deployed with; the defaults when the variable is unset."""
        if not text:
            return DEFAULT_PRICE_TABLE
        return cls({key: ModelPrice(*map(float, prices)) for key, prices in json.loads(text).items()})


DEFAULT_PRICE_TABLE = PriceTable(DEFAULT_PRICES)

"""`make bench` keeps the README's performance table: each benchmark's rows, in a fixed order, kept between runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.readme import HEADLINE_ORDER, write_headlines


def project(tmp_path: Path) -> Path:
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# X\n\n<!-- performance:start -->\nold\n<!-- performance:end -->\n\nrest\n")
    return tmp_path


def test_each_benchmark_replaces_its_own_rows_and_keeps_the_others_in_order(tmp_path: Path) -> None:
    root = project(tmp_path)
    write_headlines("quota", [("Quota", "56 s", "[Quota](docs/quota.md)")], root)
    write_headlines("dashboard", [("Aggregator", "1 log events per CPU second", "d")], root)
    write_headlines("dashboard", [("Aggregator", "2 log events per CPU second", "d")], root)
    readme = (root / "README.md").read_text()
    assert readme == (
        "# X\n\n<!-- performance:start -->\n| What | Measured | Details |\n|---|---|---|\n"
        "| Aggregator | 2 log events per CPU second | d |\n| Quota | 56 s | [Quota](docs/quota.md) |\n"
        "<!-- performance:end -->\n\nrest\n"
    )
    assert HEADLINE_ORDER.index("dashboard") < HEADLINE_ORDER.index("quota")


def test_an_unknown_benchmark_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one of collector-series, dashboard"):
        write_headlines("typo", [], project(tmp_path))

"""`make bench` keeps each benchmark's results: the README's performance table (each benchmark's rows, in a fixed
order, kept between runs) and the measures the cost model prices."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.readme import HEADLINE_ORDER, measured, write_results


def project(tmp_path: Path) -> Path:
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# X\n\n<!-- performance:start -->\nold\n<!-- performance:end -->\n\nrest\n")
    return tmp_path


def test_each_benchmark_replaces_its_own_rows_and_keeps_the_others_in_order(tmp_path: Path) -> None:
    root = project(tmp_path)
    write_results("quota", [("Quota", "56 s", "[Quota](docs/quota.md)")], {"seconds_per_user_run": 0.5}, root)
    write_results("dashboard", [("Aggregator", "1 log events per CPU second", "d")], {"rate": 1.0}, root)
    write_results("dashboard", [("Aggregator", "2 log events per CPU second", "d")], {"rate": 2.0}, root)
    readme = (root / "README.md").read_text()
    assert readme == (
        "# X\n\n<!-- performance:start -->\n| What | Measured | Details |\n|---|---|---|\n"
        "| Aggregator | 2 log events per CPU second | d |\n| Quota | 56 s | [Quota](docs/quota.md) |\n"
        "<!-- performance:end -->\n\nrest\n"
    )
    assert HEADLINE_ORDER.index("dashboard") < HEADLINE_ORDER.index("quota")
    assert (measured("dashboard", "rate", root), measured("quota", "seconds_per_user_run", root)) == (2.0, 0.5)


def test_a_measure_not_recorded_says_to_run_the_benchmarks(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="no dashboard measure 'rate': run make bench"):
        measured("dashboard", "rate", project(tmp_path))


def test_an_unknown_benchmark_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one of collector-series, dashboard"):
        write_results("typo", [], {}, project(tmp_path))

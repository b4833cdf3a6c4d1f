"""Write a benchmark's table into the docs (or the README), between its start and end markers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def write_section(name: str, text: str, root: Path = ROOT) -> None:
    """Replace what lies between `<!-- name:start -->` and `<!-- name:end -->` with `text`, in the one file of
    README.md and docs/*.md that has them."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    found = [
        path for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if pattern.search(path.read_text())
    ]
    if len(found) != 1:
        raise SystemExit(f"expected one file with a {start} ... {end} section, found {[str(p) for p in found]}")
    (document,) = found
    document.write_text(pattern.sub(lambda _: f"{start}\n{text}\n{end}", document.read_text()))


FLEETS = (100, 1_000, 10_000)
"""The fleet sizes (developers) the benchmarks measure and the cost model prices."""
RESULTS = ROOT / "benchmarks" / "results.json"
"""Each benchmark's last results: the README's headline rows and the measures the cost model (offline/cost.py)
prices, kept between runs so that one benchmark run alone keeps the others'."""
HEADLINE_ORDER = ("collector-series", "dashboard", "analytics-transform", "quota")


def read_results(root: Path = ROOT) -> dict[str, Any]:
    store = root / RESULTS.relative_to(ROOT)
    return json.loads(store.read_text()) if store.is_file() else {}


def measured(benchmark: str, measure: str, root: Path = ROOT) -> float:
    """One measure of the last `make bench`, as benchmarks/results.json keeps it."""
    try:
        return float(read_results(root)[benchmark]["measures"][measure])
    except KeyError:
        raise KeyError(f"benchmarks/results.json has no {benchmark} measure {measure!r}: run make bench") from None


def write_results(name: str, rows: list[tuple[str, str, str]], measures: dict[str, float], root: Path = ROOT) -> None:
    """Record a benchmark's headline rows (what, measured, where the details are) and measures, and rewrite the
    README's performance table from every benchmark's rows, in HEADLINE_ORDER."""
    if name not in HEADLINE_ORDER:
        raise ValueError(f"unknown benchmark {name!r}: one of {', '.join(HEADLINE_ORDER)}")
    results = read_results(root)
    results[name] = {"headlines": [list(row) for row in rows], "measures": measures}
    (root / RESULTS.relative_to(ROOT)).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    lines = ["| What | Measured | Details |", "|---|---|---|"]
    for benchmark in HEADLINE_ORDER:
        lines += [
            f"| {what} | {value} | {details} |"
            for what, value, details in results.get(benchmark, {}).get("headlines", [])
        ]
    write_section("performance", "\n".join(lines), root)

"""Write a benchmark's table into the docs (or the README), between its start and end markers."""

from __future__ import annotations

import json
import re
from pathlib import Path

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


HEADLINES = ROOT / "benchmarks" / "headlines.json"
"""Each benchmark's headline rows, kept between runs so that one benchmark run alone keeps the others' rows."""
HEADLINE_ORDER = ("collector-series", "dashboard", "analytics-transform", "quota")


def write_headlines(name: str, rows: list[tuple[str, str, str]], root: Path = ROOT) -> None:
    """Record a benchmark's headline rows (what, measured, where the details are) and rewrite the README's
    performance table from every benchmark's rows, in HEADLINE_ORDER."""
    if name not in HEADLINE_ORDER:
        raise ValueError(f"unknown benchmark {name!r}: one of {', '.join(HEADLINE_ORDER)}")
    store = root / HEADLINES.relative_to(ROOT)
    headlines = json.loads(store.read_text()) if store.is_file() else {}
    headlines[name] = [list(row) for row in rows]
    store.write_text(json.dumps(headlines, indent=2, ensure_ascii=False) + "\n")
    lines = ["| What | Measured | Details |", "|---|---|---|"]
    for benchmark in HEADLINE_ORDER:
        lines += [f"| {what} | {value} | {details} |" for what, value, details in headlines.get(benchmark, [])]
    write_section("performance", "\n".join(lines), root)

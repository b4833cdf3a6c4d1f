"""Write a benchmark's table into the docs (or the README), between its start and end markers."""

from __future__ import annotations

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

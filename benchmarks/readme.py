"""Write a benchmark's table into the README, between its start and end markers."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def write_section(name: str, text: str, readme: Path = README) -> None:
    """Replace what lies between `<!-- name:start -->` and `<!-- name:end -->` with `text`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    content = readme.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(content):
        raise SystemExit(f"{readme} has no {start} ... {end} section to update")
    readme.write_text(pattern.sub(lambda _: f"{start}\n{text}\n{end}", content))

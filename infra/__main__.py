"""Pulumi entry point (`main: infra/` in Pulumi.yaml)."""

import sys
from pathlib import Path

# The program imports its sibling packages (components/, lambda_src/) from the project root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.program import run

run()

"""The real collector binary of `components/collector_release.py`, built once by `collector/build.py` and cached.

`make collector` (a prerequisite of `make pytest`) builds it ahead; the fixture builds it when missing, so
`pytest` alone works too. `CCM_COLLECTOR_AWS_EXPORTERS=1` builds the awsemf and awscloudwatchlogs exporters
in, where the Go module proxy serves them (see `components/collector_release.py`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from collector.build import CollectorBuildError, build

AWS_EXPORTERS_VARIABLE = "CCM_COLLECTOR_AWS_EXPORTERS"


@pytest.fixture(scope="session")
def collector_binary() -> Path:
    try:
        return build(aws_exporters=os.environ.get(AWS_EXPORTERS_VARIABLE) == "1")
    except CollectorBuildError as error:
        pytest.fail(f"the collector could not be built (python -m collector.build):\n{error}", pytrace=False)


@pytest.fixture(scope="session")
def collector_components(collector_binary: Path) -> dict[str, set[str]]:
    """Component types the binary has, by kind (`receivers`, `processors`, `exporters`, `extensions`, ...)."""
    listed = subprocess.run(
        [str(collector_binary), "components"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    document = yaml.safe_load(listed)
    return {
        kind: {str(entry["name"]) for entry in entries or []}
        for kind, entries in document.items()
        if kind in ("receivers", "processors", "exporters", "extensions", "connectors")
    }

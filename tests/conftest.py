"""Shared fixtures: the project root, example programs, and an offline preview of any stack file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from collector.build import CollectorBuildError, build
from offline.preview import PROJECT_ROOT, PreviewResult, Target, preview
from tests.clock import Clock

PROGRAMS = Path(__file__).parent / "programs"


def preview_stack(stack: str, out: Path) -> PreviewResult:
    policy_config = PROJECT_ROOT / "policies" / "config" / f"{stack}.json"
    return preview(Target(PROJECT_ROOT, PROJECT_ROOT / f"Pulumi.{stack}.yaml", out, policy_config))


def make_preview(name: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`make preview PROGRAM=tests/programs/<name> CONFIG=... OUT=...` exactly as the README shows it."""
    program = PROGRAMS / name
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "preview",
            f"PROGRAM={program}",
            f"CONFIG={program / 'Pulumi.test.yaml'}",
            f"OUT={out}",
            *extra,
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def preview_program(name: str, out: Path) -> PreviewResult:
    program = PROGRAMS / name
    return preview(Target(program, program / "Pulumi.test.yaml", out, None))


@pytest.fixture(scope="session")
def dev_preview(tmp_path_factory: pytest.TempPathFactory) -> PreviewResult:
    return preview_stack("dev", tmp_path_factory.mktemp("dev"))


@pytest.fixture(scope="session")
def prod_preview(tmp_path_factory: pytest.TempPathFactory) -> PreviewResult:
    return preview_stack("prod", tmp_path_factory.mktemp("prod"))


@pytest.fixture
def clock() -> Clock:
    """The only time a test gives code under test (see tests/clock.py): fixed, moved only by the test."""
    return Clock()


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# The real collector binary of components/collector_release.py, built once by collector/build.py and cached in
# .tools/otelcol/ (`make collector` builds it ahead, so `pytest` alone works too). CCM_COLLECTOR_AWS_EXPORTERS=1
# builds the awsemf and awscloudwatchlogs exporters in, where the Go module proxy serves them.
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

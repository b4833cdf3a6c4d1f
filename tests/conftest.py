"""Shared fixtures: the project root, example programs, and an offline preview of any stack file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

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

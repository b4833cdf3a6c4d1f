"""The Lambda packages: each holds everything its code imports, the compiled libraries built for the platform the
functions run (CPython 3.12 on arm64), from the wheel uv.lock pins."""

from __future__ import annotations

import ast
import io
import sys
import zipfile
from pathlib import Path

import pytest

from components import lambda_code
from components.lambda_code import (
    LAMBDA_DEPENDENCIES,
    RUNTIME_PROVIDED,
    LockedWheel,
    archive_files,
    dependency_files,
    locked_wheel,
    package_files,
    runs_on_lambda,
)

FUNCTIONS = sorted(path.parent.name for path in lambda_code.LAMBDA_SRC.glob("*/handler.py"))
EM_AARCH64 = 183


def package_zip(function: str) -> zipfile.ZipFile:
    """The package as Pulumi uploads it: every archive file at its path."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in sorted(archive_files(function).items()):
            archive.write(path, name)
    return zipfile.ZipFile(io.BytesIO(buffer.getvalue()))


def test_the_lock_pins_one_wheel_of_orjson_for_the_functions_platform() -> None:
    wheel = locked_wheel("orjson")
    python, abi, platforms = wheel.tags
    assert (python, abi) == ("cp312", "cp312")
    assert "manylinux2014_aarch64" in platforms or "manylinux_2_17_aarch64" in platforms
    assert len(wheel.sha256) == 64
    assert f'version = "{wheel.version}"' in (lambda_code.PROJECT_ROOT / "uv.lock").read_text()
    assert f'"orjson=={wheel.version}"' in (lambda_code.PROJECT_ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize(
    ("filename", "runs"),
    [
        ("orjson-3.13.0-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", True),
        ("orjson-3.13.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", False),
        ("orjson-3.13.0-cp312-cp312-musllinux_1_2_aarch64.whl", False),
        ("orjson-3.13.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", False),
        ("orjson-3.13.0-cp313-cp313-manylinux_2_17_aarch64.whl", False),
        ("orjson-3.13.0-cp312-cp312-manylinux_2_39_aarch64.whl", False),  # newer than Amazon Linux 2023
        ("orjson-3.13.0-cp312-cp312-macosx_15_0_arm64.whl", False),
        ("x-1.0-cp39-abi3-manylinux_2_28_aarch64.whl", True),
        ("y-1.0-py3-none-any.whl", True),
    ],
)
def test_which_wheels_run_on_the_functions_platform(filename: str, runs: bool) -> None:
    assert runs_on_lambda(LockedWheel("x", "1", filename, "0" * 64)) is runs


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_package_holds_the_wheel_built_for_the_functions_platform(function: str) -> None:
    package = package_zip(function)
    names = set(package.namelist())
    wheel = locked_wheel("orjson")
    tags = [
        line.removeprefix("Tag: ")
        for line in package.read(f"orjson-{wheel.version}.dist-info/WHEEL").decode().splitlines()
        if line.startswith("Tag: ")
    ]
    assert tags and all(tag.startswith("cp312-cp312-manylinux") and tag.endswith("_aarch64") for tag in tags)
    (library,) = [name for name in names if name.startswith("orjson/") and name.endswith(".so")]
    assert library == "orjson/orjson.cpython-312-aarch64-linux-gnu.so"
    header = package.read(library)[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == EM_AARCH64
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert {name for name in names if name.startswith("lambda_src/")} == set(package_files(function))


def imported_modules(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_package_holds_everything_its_code_imports(function: str) -> None:
    files = archive_files(function)
    top_level = {name.split("/")[0].removesuffix(".py") for name in files}
    for name, path in files.items():
        if not name.endswith(".py") or not name.startswith("lambda_src/"):
            continue
        for module in imported_modules(path.read_text()):
            assert module in sys.stdlib_module_names or module in RUNTIME_PROVIDED or module in top_level, (
                f"{name} imports {module}, which the {function} package does not hold"
            )


def test_the_dependencies_are_what_the_code_imports_beyond_the_runtime() -> None:
    imported = set()
    for path in lambda_code.LAMBDA_SRC.rglob("*.py"):
        imported |= imported_modules(path.read_text())
    outside = {m for m in imported if m not in sys.stdlib_module_names and m not in RUNTIME_PROVIDED} - {"lambda_src"}
    assert outside == set(LAMBDA_DEPENDENCIES)


def test_the_wheel_is_installed_once_then_read_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    dependency_files()  # installed by now

    def no_install(*_: object, **__: object) -> None:
        raise AssertionError("the wheel was installed again")

    monkeypatch.setattr(lambda_code.subprocess, "run", no_install)
    files = dependency_files()
    assert all(path.is_file() and lambda_code.DEPENDENCY_CACHE in path.parents for path in files.values())


def test_a_wheel_that_cannot_be_had_fails_the_package_with_uvs_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_OFFLINE", "1")  # uv's cache has no such wheel; the package index is never asked
    missing = LockedWheel("orjson", "0.0.1", "orjson-0.0.1-cp312-cp312-manylinux2014_aarch64.whl", "0" * 64)
    with pytest.raises(RuntimeError, match=r"could not install orjson-0\.0\.1"):
        lambda_code.dependency_folder(missing, cache=tmp_path)
    assert not any(tmp_path.iterdir())

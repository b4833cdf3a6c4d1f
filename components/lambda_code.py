"""The deployment package of one function in lambda_src/: its folder and the shared code, nothing else."""

from __future__ import annotations

from pathlib import Path

import pulumi

LAMBDA_SRC = Path(__file__).resolve().parent.parent / "lambda_src"
SHARED_PACKAGES = ("common",)


def package_files(function: str) -> dict[str, Path]:
    """Archive path -> file, so the handler imports as `lambda_src.<function>.handler`."""
    folders = [LAMBDA_SRC / function, *(LAMBDA_SRC / shared for shared in SHARED_PACKAGES)]
    if not (LAMBDA_SRC / function / "handler.py").is_file():
        raise ValueError(f"lambda_src/{function}/handler.py does not exist")
    files = {"lambda_src/__init__.py": LAMBDA_SRC / "__init__.py"}
    for folder in folders:
        for path in sorted(folder.glob("*.py")):
            files[f"lambda_src/{folder.name}/{path.name}"] = path
    return files


def function_code(function: str) -> pulumi.AssetArchive:
    return pulumi.AssetArchive({name: pulumi.FileAsset(str(path)) for name, path in package_files(function).items()})


def handler_name(function: str) -> str:
    return f"lambda_src.{function}.handler.handler"

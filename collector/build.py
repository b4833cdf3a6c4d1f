"""Build the collector of `components/collector_release.py` with the OpenTelemetry Collector Builder.

    python -m collector.build                  # prints the binary's path; builds only when the manifest changed
    python -m collector.build --aws-exporters  # with awsemf and awscloudwatchlogs, where the proxy serves them

The manifest is rendered into `.tools/otelcol/<hash of the manifest>/` and the builder compiles the binary
there, so a changed release or module list builds anew and an unchanged one is reused at no cost. The builder
of the same release is installed into `.tools/go/bin` (it fixes the `otelcol` module version). Go's module
and build caches stay where Go keeps them (`go env GOMODCACHE GOCACHE`), so a rebuild after a manifest change
recompiles only what changed. A build goes into a scratch folder renamed into place when it succeeded, under
a lock, so an interrupted or concurrent build never leaves a half-built binary at the cached path.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from components.collector_release import (
    BUILDER_MODULE,
    COLLECTOR_RELEASE,
    DISTRIBUTION_NAME,
    builder_manifest_yaml,
    builder_version,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TOOLS = PROJECT_ROOT / ".tools"
GOBIN = TOOLS / "go" / "bin"
CACHE = TOOLS / "otelcol"
MANIFEST_FILE = "manifest.yaml"
BUILD_LOG = "build.log"
BUILD_TIMEOUT_SECONDS = 3600


class CollectorBuildError(RuntimeError):
    """The builder or `go install` failed; the message carries their output."""


def manifest_text(release: str = COLLECTOR_RELEASE, *, aws_exporters: bool = False) -> str:
    """The manifest as written to the cache folder (output_path `.`: the builder runs inside that folder)."""
    return builder_manifest_yaml(".", release, aws_exporters=aws_exporters)


def manifest_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_dir(release: str = COLLECTOR_RELEASE, cache: Path = CACHE, *, aws_exporters: bool = False) -> Path:
    return cache / manifest_hash(manifest_text(release, aws_exporters=aws_exporters))


def binary_path(release: str = COLLECTOR_RELEASE, cache: Path = CACHE, *, aws_exporters: bool = False) -> Path:
    """Where the binary of this release's manifest is (or will be, once built)."""
    return build_dir(release, cache, aws_exporters=aws_exporters) / DISTRIBUTION_NAME


def go_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for `go` and the builder: modules may update go.mod (`-mod=mod`)."""
    env = dict(os.environ)
    flags = env.get("GOFLAGS", "").split()
    if not any(flag.startswith("-mod=") for flag in flags):
        flags.append("-mod=mod")
    env["GOFLAGS"] = " ".join(flags)
    env.update(extra or {})
    return env


def _run(command: list[str], *, cwd: Path, env: Mapping[str, str], log: Path | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - fixed programs (go, the builder), no shell
        command,
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    output = result.stdout + result.stderr
    if log is not None:
        log.write_text(output)
    if result.returncode != 0:
        raise CollectorBuildError(f"{' '.join(command)} failed with exit code {result.returncode}:\n{output}")
    return output


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise CollectorBuildError("the go command is not on PATH: the collector is built from Go modules")
    return go


def ensure_builder(release: str = COLLECTOR_RELEASE, gobin: Path = GOBIN) -> Path:
    """The builder of this release, installed with `go install` into `gobin` unless it is there already."""
    version = builder_version(release)
    builder = gobin / "builder"
    if builder.exists():
        installed = _run([str(builder), "version"], cwd=PROJECT_ROOT, env=go_env())
        if installed.strip().endswith(f"version {version}"):
            return builder
    gobin.mkdir(parents=True, exist_ok=True)
    _run([_go(), "install", f"{BUILDER_MODULE}@{version}"], cwd=PROJECT_ROOT, env=go_env({"GOBIN": str(gobin)}))
    return builder


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(
    release: str = COLLECTOR_RELEASE, cache: Path = CACHE, gobin: Path = GOBIN, *, aws_exporters: bool = False
) -> Path:
    """The collector binary of this release's manifest, built unless the cache has it."""
    text = manifest_text(release, aws_exporters=aws_exporters)
    binary = cache / manifest_hash(text) / DISTRIBUTION_NAME
    if binary.exists():
        return binary
    with _locked(cache):
        if binary.exists():  # built by a concurrent caller while this one waited
            return binary
        builder = ensure_builder(release, gobin)
        scratch = cache / f"{binary.parent.name}.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        (scratch / MANIFEST_FILE).write_text(text)
        try:
            _run(
                [str(builder), f"--config={MANIFEST_FILE}", "--skip-strict-versioning=false"],
                cwd=scratch,
                env=go_env(),
                log=scratch / BUILD_LOG,
            )
            if not (scratch / DISTRIBUTION_NAME).exists():
                raise CollectorBuildError(f"the builder succeeded but left no {DISTRIBUTION_NAME} in {scratch}")
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        shutil.rmtree(binary.parent, ignore_errors=True)  # a folder without its binary: left by hand
        scratch.rename(binary.parent)
        _prune(cache, keep={binary.parent, build_dir(release, cache, aws_exporters=not aws_exporters)})
    return binary


def _prune(cache: Path, keep: set[Path]) -> None:
    """Builds of manifests no longer current (an older release or module list): about 100 MB each."""
    for folder in cache.iterdir():
        if folder.is_dir() and folder not in keep and (folder / MANIFEST_FILE).exists():
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--aws-exporters",
        action="store_true",
        help="also build in the awsemf and awscloudwatchlogs exporters (the Go module proxy must serve them)",
    )
    arguments = parser.parse_args(argv)
    try:
        binary = build(aws_exporters=arguments.aws_exporters)
    except CollectorBuildError as error:
        print(error, file=sys.stderr)
        return 1
    print(binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

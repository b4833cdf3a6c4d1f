"""The one OpenTelemetry Collector release of the project: the deployed image and the collector the tests build.

`COLLECTOR_RELEASE` is the only place the release is written. The default image of the collector service and
every Go module of the builder manifest (`collector/build.py` builds a collector binary from it with the
OpenTelemetry Collector Builder, and `tests/collector` validates every rendered configuration with that
binary) come from it, so the configuration the tests accept is the one the deployed image runs.

Why 0.161.0: the newest release at which the modules of the test build resolve through the Go module proxy
this project reaches. Later ones need contrib modules it does not serve: at 0.165.1 the transform processor
(`pkg/ottl/contexts/xprofile`, `pkg/expohisto`) and the file exporter (`extension/encoding/
otlpencodingextension`); 0.162.0 to 0.164.1 fail for the transform processor too. All modules stay at one
release.

The awsemf and awscloudwatchlogs exporters (`aws_exporter_modules`) are in the contrib image but not in the
default test build: that proxy does not serve them (nor their `internal/aws/*` modules) at any release tried,
0.140.1 to 0.165.1. `python -m collector.build --aws-exporters` builds them in where they are served.

No Pulumi import here: `collector/build.py` and the tests use this module without the Pulumi SDK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

COLLECTOR_RELEASE = "0.161.0"
"""The contrib release (image tag); core modules are `0.<minor>.0` and the core stable ones `1.<minor - 94>.0`."""

COLLECTOR_IMAGE_REPOSITORY = "ghcr.io/open-telemetry/opentelemetry-collector-releases/opentelemetry-collector-contrib"
COLLECTOR_IMAGE = f"{COLLECTOR_IMAGE_REPOSITORY}:{COLLECTOR_RELEASE}"

BUILDER_MODULE = "go.opentelemetry.io/collector/cmd/builder"
DISTRIBUTION_NAME = "otelcol-ccm"

CORE = "go.opentelemetry.io/collector"
CONTRIB = "github.com/open-telemetry/opentelemetry-collector-contrib"

# The core modules that reached 1.x are released beside each 0.x core release: 1.0.0 came with 0.94.0.
_STABLE_MINOR_OFFSET = 94

_RELEASE_PATTERN = re.compile(r"^0\.(?P<minor>[0-9]+)\.(?P<patch>[0-9]+)$")


@dataclass(frozen=True)
class ModuleVersions:
    """The Go module versions that make up one collector release."""

    contrib: str
    core: str
    stable: str


def module_versions(release: str = COLLECTOR_RELEASE) -> ModuleVersions:
    """`0.161.0` -> contrib v0.161.0, core v0.161.0, core stable v1.67.0 (a contrib patch release keeps core at .0)."""
    match = _RELEASE_PATTERN.match(release)
    if match is None:
        raise ValueError(f"collector release {release!r} is not 0.<minor>.<patch>")
    minor = int(match["minor"])
    if minor < _STABLE_MINOR_OFFSET:
        raise ValueError(f"collector release {release!r} predates the 1.x core modules")
    return ModuleVersions(contrib=f"v{release}", core=f"v0.{minor}.0", stable=f"v1.{minor - _STABLE_MINOR_OFFSET}.0")


def builder_version(release: str = COLLECTOR_RELEASE) -> str:
    """The builder is released with the core modules; its version also fixes the `otelcol` module it uses."""
    return module_versions(release).core


@dataclass(frozen=True)
class BuilderModules:
    """gomod strings (`<module path> <version>`) of the builder manifest, by component kind."""

    receivers: tuple[str, ...]
    processors: tuple[str, ...]
    exporters: tuple[str, ...]
    extensions: tuple[str, ...]
    providers: tuple[str, ...]

    def all(self) -> tuple[str, ...]:
        return (*self.receivers, *self.processors, *self.exporters, *self.extensions, *self.providers)


def aws_exporter_modules(release: str = COLLECTOR_RELEASE) -> tuple[str, ...]:
    """The exporters the rendered configurations write to CloudWatch with (types awsemf, awscloudwatchlogs)."""
    versions = module_versions(release)
    return (
        f"{CONTRIB}/exporter/awsemfexporter {versions.contrib}",
        f"{CONTRIB}/exporter/awscloudwatchlogsexporter {versions.contrib}",
    )


def builder_modules(release: str = COLLECTOR_RELEASE, *, aws_exporters: bool = False) -> BuilderModules:
    """What the rendered configurations use, plus the debug and file exporters for tests.

    receivers otlp; processors memory_limiter, batch, resource, transform; exporters debug, file and, with
    `aws_exporters`, awsemf and awscloudwatchlogs; extensions health_check and oidc (a policy example's
    configuration authenticates with it); the env, file and yaml confmap
    providers, so the binary reads `--config=env:OTELCOL_CONFIG` as the task does, and files.
    """
    versions = module_versions(release)
    return BuilderModules(
        receivers=(f"{CORE}/receiver/otlpreceiver {versions.core}",),
        processors=(
            f"{CORE}/processor/memorylimiterprocessor {versions.core}",
            f"{CORE}/processor/batchprocessor {versions.core}",
            f"{CONTRIB}/processor/resourceprocessor {versions.contrib}",
            f"{CONTRIB}/processor/transformprocessor {versions.contrib}",
        ),
        exporters=(
            *(aws_exporter_modules(release) if aws_exporters else ()),
            f"{CORE}/exporter/debugexporter {versions.core}",
            f"{CONTRIB}/exporter/fileexporter {versions.contrib}",
        ),
        extensions=(
            f"{CONTRIB}/extension/healthcheckextension {versions.contrib}",
            # Not used by the rendered configurations: the policy example tests/programs/per_user_emf_dimension.
            f"{CONTRIB}/extension/oidcauthextension {versions.contrib}",
        ),
        providers=(
            f"{CORE}/confmap/provider/envprovider {versions.stable}",
            f"{CORE}/confmap/provider/fileprovider {versions.stable}",
            f"{CORE}/confmap/provider/yamlprovider {versions.stable}",
        ),
    )


def builder_manifest(
    output_path: str = ".", release: str = COLLECTOR_RELEASE, *, aws_exporters: bool = False
) -> dict[str, object]:
    """The builder manifest as a mapping.

    The builder takes the `otelcol` module version from its own release (there is no manifest key for it:
    an `otelcol_version` key is ignored), so `collector/build.py` runs the builder of the same release;
    `dist.version` is what `<binary> --version` prints.
    """
    modules = builder_modules(release, aws_exporters=aws_exporters)

    def entries(gomods: tuple[str, ...]) -> list[dict[str, str]]:
        return [{"gomod": gomod} for gomod in gomods]

    return {
        "dist": {
            "module": f"claude-code-monitoring/{DISTRIBUTION_NAME}",
            "name": DISTRIBUTION_NAME,
            "description": f"Claude Code monitoring: components of the contrib collector {release} it uses",
            "output_path": output_path,
            "version": release,
        },
        "receivers": entries(modules.receivers),
        "processors": entries(modules.processors),
        "exporters": entries(modules.exporters),
        "extensions": entries(modules.extensions),
        "providers": entries(modules.providers),
    }


def builder_manifest_yaml(
    output_path: str = ".", release: str = COLLECTOR_RELEASE, *, aws_exporters: bool = False
) -> str:
    manifest = builder_manifest(output_path, release, aws_exporters=aws_exporters)
    return yaml.safe_dump(manifest, sort_keys=False, width=1000)

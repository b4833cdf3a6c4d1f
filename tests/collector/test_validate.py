"""Every collector configuration the project renders, checked by a real collector of the deployed release.

`<binary> validate` loads the configuration with the components' own decoders (an unknown or misspelt key
is an error), runs their `Validate`, compiles the OTTL statements and builds the pipelines, as the collector
does at start. The binary comes from `collector/build.py` (the release of `components/collector_release.py`,
the tag of the default image).

Stand-ins: an exporter whose type the binary lacks (awsemf and awscloudwatchlogs, unless built with
`CCM_COLLECTOR_AWS_EXPORTERS=1`; the Go module proxy here does not serve them) is replaced by a `debug`
exporter of the same name, so everything else is still validated. Nothing else is ever replaced: a missing
receiver, processor or extension fails (`test_only_the_aws_exporters_are_ever_stood_in`).

The end-to-end tests start the collector with a rendered configuration (loopback ports, file exporters as
stand-ins) and check what its processors make of one OTLP request.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from pulumi_policy.deserialize import deserialize_properties

from collector.build import build_dir
from components.collector import DEFAULT_COLLECTOR_IMAGE
from components.collector_config import (
    BEARER_ATTRIBUTE,
    CONFIG_ENV_VAR,
    UNATTRIBUTED,
    CollectorPipelineSettings,
    collector_config_yaml,
    render_collector_config,
)
from components.collector_release import (
    COLLECTOR_IMAGE_REPOSITORY,
    COLLECTOR_RELEASE,
    builder_manifest,
)
from offline.engine import Registration
from offline.preview import PROJECT_ROOT, PreviewResult
from policies.documents import TASK_DEFINITION_TYPE, collector_configs
from tests.collector.running import (
    FORGED,
    TIMEOUT_SECONDS,
    attributes,
    collector_env,
    copied,
    dump,
    exported,
    logs_request,
    metrics_request,
    post,
    running_collector,
)
from tests.components.collector_settings import settings_for as shared_settings_for
from tests.conftest import PROGRAMS, preview_program

STAND_IN_EXPORTER = "debug"
CORE = "go.opentelemetry.io/collector/"
CONTRIB = "github.com/open-telemetry/opentelemetry-collector-contrib/"
STACKS = ("dev", "prod")
# Example programs of the policy tests whose source holds a collector configuration.
PROGRAMS_WITH_COLLECTOR_CONFIG = sorted(
    program.name for program in PROGRAMS.iterdir() if "receivers" in (program / "__main__.py").read_text()
)


def settings_for(mode: str, grpc: bool) -> CollectorPipelineSettings:
    """The shared test settings in environment `test` (the identity tests read it back), over gRPC or not."""
    return shared_settings_for(mode, grpc=grpc, environment="test")


# Validation ---------------------------------------------------------------------------------------------


def with_stand_ins(original: Mapping[str, Any], components: Mapping[str, set[str]]) -> tuple[dict[str, Any], list[str]]:
    """The configuration with a `debug` exporter for each exporter of a type the binary lacks, and their ids."""
    config = copied(original)
    exporters: dict[str, Any] = config.get("exporters") or {}
    renamed = {
        exporter_id: f"{STAND_IN_EXPORTER}/{exporter_id.replace('/', '-')}"
        for exporter_id in exporters
        if exporter_id.split("/")[0] not in components["exporters"]
    }
    if not renamed:
        return config, []
    config["exporters"] = {renamed.get(key, key): ({} if key in renamed else value) for key, value in exporters.items()}
    for pipeline in (config.get("service") or {}).get("pipelines", {}).values():
        pipeline["exporters"] = [renamed.get(name, name) for name in pipeline.get("exporters", [])]
    return config, sorted(renamed)


@dataclass(frozen=True)
class Validated:
    what: str
    result: subprocess.CompletedProcess[str]
    stand_ins: Sequence[str]

    def check(self) -> None:
        stood_in = f" (exporters {', '.join(self.stand_ins)} stood in by debug)" if self.stand_ins else ""
        output = self.result.stderr + self.result.stdout
        assert self.result.returncode == 0, (
            f"the collector {COLLECTOR_RELEASE} rejects {self.what}{stood_in}:\n{output}"
        )


def validate(
    binary: Path,
    components: Mapping[str, set[str]],
    what: str,
    config_text: str,
    *,
    args: Sequence[str] = (f"--config=env:{CONFIG_ENV_VAR}",),
    variable: str = CONFIG_ENV_VAR,
    env: Mapping[str, str] | None = None,
    workdir: Path | None = None,
) -> Validated:
    """`<binary> validate <args>` with the configuration in `variable` or, for `file:` arguments, in a file."""
    config, stand_ins = with_stand_ins(yaml.safe_load(config_text), components)
    text = dump(config) if stand_ins else config_text
    arguments = list(args)
    if any(argument.startswith("--config=file:") for argument in arguments):
        assert workdir is not None
        path = workdir / "collector-config.yaml"
        path.write_text(text)
        arguments = [f"--config=file:{path}" if a.startswith("--config=file:") else a for a in arguments]
    result = subprocess.run(
        [str(binary), "validate", *arguments],
        env=collector_env({**(env or {}), variable: text}),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    return Validated(what, result, stand_ins)


@pytest.mark.parametrize("grpc", [False, True], ids=["http", "grpc"])
@pytest.mark.parametrize("mode", ["jwt", "none"])
def test_rendered_config_is_valid(
    collector_binary: Path, collector_components: dict[str, set[str]], mode: str, grpc: bool
) -> None:
    text = collector_config_yaml(settings_for(mode, grpc))
    validate(collector_binary, collector_components, f"the {mode} identity config (grpc {grpc})", text).check()


def task_containers(preview: PreviewResult) -> Iterator[tuple[str, dict[str, Any]]]:
    for registration in preview.run.registrations:
        if registration.type == TASK_DEFINITION_TYPE:
            for container in json.loads(registration.inputs()["containerDefinitions"]):
                yield f"{registration.name}/{container.get('name')}", container


@pytest.mark.parametrize("stack", STACKS)
def test_stack_task_definition_configs_are_valid(
    collector_binary: Path, collector_components: dict[str, set[str]], request: pytest.FixtureRequest, stack: str
) -> None:
    """The configuration exactly as the task gets it: the container's command and environment."""
    preview: PreviewResult = request.getfixturevalue(f"{stack}_preview")
    checked = 0
    for where, container in task_containers(preview):
        environment = {variable["name"]: variable["value"] for variable in container.get("environment") or []}
        if CONFIG_ENV_VAR not in environment:
            continue
        assert container["image"] == DEFAULT_COLLECTOR_IMAGE
        other = {name: value for name, value in environment.items() if name != CONFIG_ENV_VAR}
        validate(
            collector_binary,
            collector_components,
            f"{stack} {where}",
            environment[CONFIG_ENV_VAR],
            args=container["command"],
            env=other,
        ).check()
        checked += 1
    assert checked, f"the {stack} preview has no container with {CONFIG_ENV_VAR}"


@pytest.mark.parametrize("stack", STACKS)
def test_stack_config_artifacts_are_valid(
    collector_binary: Path,
    collector_components: dict[str, set[str]],
    request: pytest.FixtureRequest,
    stack: str,
    tmp_path: Path,
) -> None:
    """The `build/<stack>/collector-*.yaml` files `make preview` writes for reviewers."""
    preview: PreviewResult = request.getfixturevalue(f"{stack}_preview")
    artifacts = [path for path in preview.artifacts if path.name.startswith("collector-")]
    assert artifacts, f"the {stack} preview wrote no collector configuration"
    for path in artifacts:
        validate(
            collector_binary,
            collector_components,
            f"{stack} {path.name}",
            path.read_text(),
            args=[f"--config=file:{path}"],
            workdir=tmp_path,
        ).check()


def unmasked_inputs(registration: Registration) -> dict[str, Any]:
    """The inputs as the policy pack reads them: secrets unwrapped (`inputs()` shows them as "[secret]")."""
    return deserialize_properties(json_format.MessageToDict(registration.properties))


@pytest.mark.parametrize("program", PROGRAMS_WITH_COLLECTOR_CONFIG)
def test_example_program_configs_are_valid(
    collector_binary: Path, collector_components: dict[str, set[str]], program: str, tmp_path: Path
) -> None:
    """Collector configurations the policy examples store (a task's environment, an SSM parameter, ...)."""
    preview = preview_program(program, tmp_path / "out")
    stored = [
        (registration.name, document)
        for registration in preview.run.registrations
        for document in collector_configs(registration.type, unmasked_inputs(registration))
    ]
    assert stored, f"tests/programs/{program} mentions receivers but stores no collector configuration"
    for name, document in stored:
        what = f"tests/programs/{program}: {name} {document.where}"
        validate(collector_binary, collector_components, what, dump(document.document)).check()


def test_example_programs_with_collector_configs_are_found() -> None:
    assert {"open_collector", "per_user_emf_dimension"} <= set(PROGRAMS_WITH_COLLECTOR_CONFIG)


def test_only_the_aws_exporters_are_ever_stood_in(collector_components: dict[str, set[str]]) -> None:
    """Every receiver, processor and extension the configurations use is in the binary; of the exporters,
    at most awsemf and awscloudwatchlogs are missing (the Go module proxy here serves neither at any release
    tried; see components/collector_release.py) and replaced by debug stand-ins of the same name."""
    config = render_collector_config(settings_for("jwt", True))
    for kind in ("receivers", "processors", "extensions"):
        used = {name.split("/")[0] for name in config[kind]}
        assert used <= collector_components[kind], kind
    used = {name.split("/")[0] for name in config["exporters"]}
    assert used - collector_components["exporters"] <= {"awsemf", "awscloudwatchlogs"}


def test_validation_reports_the_collectors_message(
    collector_binary: Path, collector_components: dict[str, set[str]]
) -> None:
    """A configuration the collector rejects fails with its own words (here: a misspelt OTTL function)."""
    text = collector_config_yaml(settings_for("jwt", False)).replace("ParseJSON(", "ParseJSN(")
    validated = validate(collector_binary, collector_components, "a broken config", text)
    with pytest.raises(AssertionError, match='undefined function "ParseJSN"'):
        validated.check()


# One release -------------------------------------------------------------------------------------------


def release_versions(release: str) -> tuple[str, set[str]]:
    """(contrib version, allowed core versions) of a contrib release, worked out here and not imported."""
    major, minor, _patch = (int(part) for part in release.split("."))
    assert major == 0
    return f"v{release}", {f"v0.{minor}.0", f"v1.{minor - 94}.0"}


def test_default_image_and_builder_modules_are_one_release() -> None:
    repository, tag = DEFAULT_COLLECTOR_IMAGE.rsplit(":", 1)
    assert repository == COLLECTOR_IMAGE_REPOSITORY
    assert tag == COLLECTOR_RELEASE, "the default image is not the release the tests build"
    contrib, core = release_versions(tag)
    manifest = builder_manifest(aws_exporters=True)
    gomods = [
        entry["gomod"]
        for kind in ("receivers", "processors", "exporters", "extensions", "providers")
        for entry in manifest[kind]  # type: ignore[attr-defined]
    ]
    assert any("awsemfexporter" in gomod for gomod in gomods)
    for gomod in gomods:
        module, version = gomod.split()
        if module.startswith(CONTRIB):
            assert version == contrib, f"{gomod}: not the release of the default image {tag}"
        else:
            assert module.startswith(CORE), gomod
            assert version in core, f"{gomod}: not the core release of {tag} ({sorted(core)})"
    assert manifest["dist"]["version"] == tag  # type: ignore[index]


def test_the_collector_doc_names_the_default_image() -> None:
    readme = (PROJECT_ROOT / "docs" / "collector.md").read_text()
    named = set(re.findall(re.escape(COLLECTOR_IMAGE_REPOSITORY.rsplit("/", 1)[1]) + r":([0-9][0-9.]*[0-9])", readme))
    assert named == {COLLECTOR_RELEASE}
    assert f"| `image` | contrib {COLLECTOR_RELEASE} |" in readme


def test_built_collector_is_of_the_release(collector_binary: Path) -> None:
    """The builder resolved every collector module to the release: none was raised by a dependency."""
    version = subprocess.run(
        [str(collector_binary), "--version"], capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=True
    ).stdout
    assert version.strip().endswith(f"version {COLLECTOR_RELEASE}")
    assert collector_binary.parent in {build_dir(), build_dir(aws_exporters=True)}
    contrib, core = release_versions(COLLECTOR_RELEASE)
    go_mod = (collector_binary.parent / "go.mod").read_text()
    required = dict(re.findall(r"^\s*(\S+) (v\S+)", go_mod, re.MULTILINE))
    collector_modules = {m: v for m, v in required.items() if m.startswith((CORE, CONTRIB)) and "/cmd/" not in m}
    assert f"{CORE}otelcol" in collector_modules
    wrong = {
        module: version
        for module, version in collector_modules.items()
        if version not in ({contrib} if module.startswith(CONTRIB) else core)
    }
    assert not wrong, f"modules not at the release {COLLECTOR_RELEASE}: {wrong}"


# End to end --------------------------------------------------------------------------------------------


def test_collector_takes_identity_from_the_verified_token(collector_binary: Path, tmp_path: Path) -> None:
    """jwt: the token's claims replace what the client sent; a claim it lacks leaves no client value."""
    claims = {"email": "ada@example.com", "sub": "u-ada", "department": "engineering", "team": "platform"}
    token = jwt.encode(claims, "a test key, never checked by the collector", algorithm="HS256")
    with running_collector(collector_binary, render_collector_config(settings_for("jwt", False)), tmp_path) as c:
        headers = {"Authorization": f"Bearer {token}"}
        post(f"{c.otlp_http}/v1/metrics", metrics_request(), headers)
        post(f"{c.otlp_http}/v1/logs", logs_request(), headers)
    for kind, path in (("metrics", c.metrics_file), ("logs", c.events_file)):
        resource, record = exported(path, kind)
        assert resource["user.email"] == "ada@example.com", kind
        assert resource["user.id"] == "u-ada", kind
        assert resource["department"] == "engineering", kind
        assert resource["team.id"] == "platform", kind
        assert resource["cost_center"] == UNATTRIBUTED, kind  # not in the token: the client's CC-999 is gone
        assert resource["organization.id"] == "org-1", kind  # telemetry, kept as sent
        assert resource["deployment.environment"] == "test", kind
        assert BEARER_ATTRIBUTE not in resource, kind
        assert "user.email" not in record, kind
        assert token not in path.read_text(), kind


def test_collector_keeps_client_attributes_without_identity(collector_binary: Path, tmp_path: Path) -> None:
    """none: identity attributes stay as sent; organisation dimensions a client left out become unattributed."""
    forged_without_team = {key: value for key, value in FORGED.items() if key != "team.id"}
    with running_collector(collector_binary, render_collector_config(settings_for("none", False)), tmp_path) as c:
        body = ExportMetricsServiceRequest.FromString(metrics_request())
        resource = body.resource_metrics[0].resource
        del resource.attributes[:]
        resource.attributes.extend(attributes(forged_without_team))
        post(f"{c.otlp_http}/v1/metrics", body.SerializeToString(), {})
    resource_attributes, point = exported(c.metrics_file, "metrics")
    assert resource_attributes["user.email"] == "mallory@example.com"
    assert resource_attributes["department"] == "finance"
    assert resource_attributes["team.id"] == UNATTRIBUTED
    assert point["user.email"] == "mallory@example.com"
    assert point["type"] == "input"

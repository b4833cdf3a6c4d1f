"""Run a Pulumi Python program under the mock runtime and record what the engine would receive.

The recording keeps each resource's registration exactly as the SDK sent it (a protobuf Struct with
camelCase keys, numbers as floats and secrets still marked), so the policy pack can be fed the very
request the Pulumi engine would build.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.config import set_all_config
from pulumi.runtime.rpc import UNKNOWN
from pulumi.runtime.stack import run_pulumi_func
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY

from offline.awsx import MODELS, SOURCE, ModelError, is_remote_component
from offline.mocks import PlausibleMocks

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"
SECRET_PLACEHOLDER = "offline-placeholder-secret"


class OfflineError(Exception):
    """The program could not be previewed; the message says why and what to do."""


class StackFileError(OfflineError):
    """A stack or project file the Pulumi CLI would refuse to read (such as a key given twice)."""


@dataclass(frozen=True)
class Program:
    """A Pulumi Python program: its project name and the directory holding `__main__.py`."""

    project: str
    main_dir: Path
    root: Path

    @staticmethod
    def load(directory: Path) -> Program:
        directory = directory.resolve()
        project_file = directory / "Pulumi.yaml"
        if project_file.is_file():
            project = load_yaml_file(project_file) or {}
            runtime = project.get("runtime")
            runtime_name = runtime.get("name") if isinstance(runtime, dict) else runtime
            if runtime_name != "python":
                raise OfflineError(
                    f"{project_file}: runtime is {runtime_name!r}; the offline preview runs Python programs only"
                )
            main_dir = (directory / project.get("main", ".")).resolve()
            name = str(project.get("name") or directory.name)
        else:
            main_dir, name = directory, directory.name
        if not (main_dir / "__main__.py").is_file():
            raise OfflineError(f"{main_dir}: no __main__.py; point PROGRAM at a Pulumi Python program directory")
        return Program(project=name, main_dir=main_dir, root=directory)

    def project_defaults(self) -> dict[str, Any]:
        """Defaults declared in Pulumi.yaml's `config:` block, applied as the CLI applies them."""
        project_file = self.root / "Pulumi.yaml"
        if not project_file.is_file():
            return {}
        declared = (load_yaml_file(project_file) or {}).get("config") or {}
        defaults: dict[str, Any] = {}
        for key, declaration in declared.items():
            full_key = key if ":" in key else f"{self.project}:{key}"
            if isinstance(declaration, dict) and "default" in declaration:
                defaults[full_key] = declaration["default"]
            elif isinstance(declaration, dict) and "value" in declaration:
                defaults[full_key] = declaration["value"]
            elif not isinstance(declaration, dict):
                defaults[full_key] = declaration
        return defaults


class StackFileLoader(yaml.SafeLoader):
    """YAML as the Pulumi CLI reads a stack file.

    - An unquoted value that looks like a date or a timestamp stays the text it was written as (Go's YAML decoder
      keeps timestamps as strings in untyped values), so the program gets a string it can validate and name the
      key of, as under the CLI.
    - A key given twice in one mapping is an error, as in the CLI (Go's yaml.v3: "mapping key already defined"),
      where PyYAML would silently keep the last value.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges; the keys it brings in may be overridden, as YAML allows
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base constructor reports it
            line = key_node.start_mark.line + 1
            if first is not None:
                raise DuplicateKeyError(key, line, first)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"line {line}: the key {key!r} is given twice in one mapping (first on line {first_line})")
        self.key = key
        self.line = line
        self.first_line = first_line


def _timestamp_as_text(loader: StackFileLoader, node: yaml.ScalarNode) -> Any:
    return loader.construct_scalar(node)


StackFileLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def load_yaml_file(path: Path) -> Any:
    """A Pulumi project or stack file, read as the CLI reads it; a duplicate key or bad YAML is a StackFileError."""
    try:
        return yaml.load(path.read_text(), Loader=StackFileLoader)  # noqa: S506  a SafeLoader
    except DuplicateKeyError as error:
        raise StackFileError(
            f"{path.name}, line {error.line}: the key {_key_text(error.key)} is given twice in the same mapping "
            f"(first on line {error.first_line}); YAML would keep only the last value and the Pulumi CLI refuses "
            "the file: keep one"
        ) from None
    except yaml.YAMLError as error:
        raise StackFileError(f"{path.name}: not readable YAML: {error}") from None


def _key_text(key: Any) -> str:
    return f"`{key}`" if isinstance(key, str) else repr(key)


@dataclass(frozen=True)
class StackConfigFile:
    """A `Pulumi.<stack>.yaml` file as the CLI hands it to a program."""

    stack: str
    path: Path
    values: dict[str, str]
    secret_keys: list[str]

    @staticmethod
    def load(path: Path, program: Program) -> StackConfigFile:
        if not path.is_file():
            raise OfflineError(f"{path}: no such stack configuration file")
        stack = path.name.removeprefix("Pulumi.").rsplit(".", 1)[0] if path.name.startswith("Pulumi.") else path.stem
        document = load_yaml_file(path) or {}
        if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
            raise StackFileError(f"{path}: expected a mapping with a `config:` mapping")
        raw: dict[str, Any] = dict(program.project_defaults())
        for key, value in (document.get("config") or {}).items():
            raw[key if ":" in key else f"{program.project}:{key}"] = value
        values: dict[str, str] = {}
        secret_keys: list[str] = []
        for key, value in raw.items():
            replaced, had_secret = _replace_secure(value)
            if had_secret:
                secret_keys.append(key)
            values[key] = replaced if isinstance(replaced, str) else json.dumps(replaced)
        return StackConfigFile(stack=stack, path=path, values=values, secret_keys=secret_keys)


def _replace_secure(value: Any) -> tuple[Any, bool]:
    """Swap every `secure:` value for a placeholder (no passphrase or KMS key is at hand offline)."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER, True
        items = {k: _replace_secure(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, any(s for _, s in items.values())
    if isinstance(value, list):
        items_list = [_replace_secure(v) for v in value]
        return [v for v, _ in items_list], any(s for _, s in items_list)
    return value, False


@dataclass
class Registration:
    """One resource as the engine saw its registration."""

    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    properties: struct_pb2.Struct
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    provider: str
    protect: bool
    ignore_changes: list[str]
    delete_before_replace: bool | None
    additional_secret_outputs: list[str]
    resource_id: str = ""
    """The id the mocks gave the resource (what another resource's input refers to)."""
    output_properties: struct_pb2.Struct | None = None
    modelled_by: str | None = None
    """For a child of a remote component (awsx), which the mock runtime never sees: the component's type. Such a
    child is modelled from the component's documented behaviour (offline/awsx.py), not registered by the program."""

    def inputs(self) -> dict[str, Any]:
        """Inputs with secrets shown as "[secret]", for reports and plan.json."""
        return _mask_secrets(json_format.MessageToDict(self.properties))

    def outputs(self) -> dict[str, Any]:
        """Outputs as the mocks answered them, secrets shown as "[secret]"."""
        if self.output_properties is None:
            return {}
        return _mask_secrets(json_format.MessageToDict(self.output_properties))


def _mask_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SPECIAL_SIG_KEY) == SPECIAL_SECRET_SIG:
            return "[secret]"
        return {k: _mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_secrets(v) for v in value]
    return value


def _contains_unknown(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_contains_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_unknown(v) for v in value)
    return value == UNKNOWN


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, keeping every registration in order and naming URNs as the engine does.

    A remote component (awsx) registers its children from its own provider process, which the mock runtime does
    not run: for the types offline/awsx.py models, the children are added here, after their component, marked as
    modelled; any other remote component is listed in `unmodelled`, so that the preview says what it cannot show.
    """

    def __init__(self, mocks: PlausibleMocks) -> None:
        super().__init__(mocks)
        self.zones = mocks.availability_zones()
        self.registrations: list[Registration] = []
        self.modelled: list[Registration] = []
        self.unmodelled: list[str] = []
        self.model_errors: list[str] = []

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # As the engine: the parent's whole qualified type, then this type; the root stack is left out (the SDK's
        # mock keeps the stack and only the parent's last type).
        if parent:
            qualified = parent.split("::")[2]
            if qualified.split("$")[-1] != ROOT_STACK_TYPE:
                type_ = f"{qualified}${type_}"
        return "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), type_, name])

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        urn = response.urn
        self.registrations.append(
            Registration(
                urn=urn,
                type=request.type,
                name=request.name,
                parent=request.parent or None,
                custom=bool(request.custom),
                properties=request.object,
                dependencies=list(request.dependencies),
                property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
                provider=request.provider,
                protect=bool(request.protect),
                ignore_changes=list(request.ignoreChanges),
                delete_before_replace=request.deleteBeforeReplace if request.deleteBeforeReplaceDefined else None,
                additional_secret_outputs=list(request.additionalSecretOutputs),
                resource_id=response.id,
                output_properties=response.object,
            )
        )
        if not request.custom and is_remote_component(request.type):
            self._model_children(request, urn)
        return response

    def _model_children(self, request: Any, urn: str) -> None:
        model_of = MODELS.get(request.type)
        if model_of is None:
            self.unmodelled.append(urn)
            return
        try:
            model = model_of(request.name, json_format.MessageToDict(request.object), self.zones)
        except ModelError as error:
            self.model_errors.append(f"{urn}: {error}")
            return
        urns: list[str] = []
        for child in model.children:
            parent = urn if child.parent is None else urns[child.parent]
            child_urn = self.make_urn(parent, child.type, child.name)
            urns.append(child_urn)
            properties = struct_pb2.Struct()
            properties.update(child.inputs)
            outputs = struct_pb2.Struct()
            outputs.update({**child.inputs, "id": child.id})
            self.modelled.append(
                Registration(
                    urn=child_urn,
                    type=child.type,
                    name=child.name,
                    parent=parent,
                    custom=True,
                    properties=properties,
                    dependencies=[parent],
                    property_dependencies={},
                    provider="",
                    protect=False,
                    ignore_changes=[],
                    delete_before_replace=None,
                    additional_secret_outputs=[],
                    resource_id=child.id,
                    output_properties=outputs,
                    modelled_by=model.component,
                )
            )


@dataclass
class ProgramRun:
    """What one run of a program produced."""

    project: str
    stack: str
    registrations: list[Registration]
    """What the program registered, exactly as the SDK sent it."""
    outputs: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    modelled: list[Registration] = field(default_factory=list)
    """Children of remote components (awsx), modelled: registered by the component's provider, not the program."""
    unmodelled: list[str] = field(default_factory=list)
    """URNs of remote components whose children are neither registered nor modelled."""

    def resources(self) -> list[Registration]:
        """Every resource of the plan: the registrations, each remote component followed by its modelled children."""
        children: dict[str, list[Registration]] = {}
        for child in self.modelled:
            children.setdefault(_component_of(child, self.modelled), []).append(child)
        merged: list[Registration] = []
        for registration in self.registrations:
            merged.append(registration)
            merged.extend(children.get(registration.urn, []))
        return merged


def _component_of(child: Registration, modelled: list[Registration]) -> str:
    """The URN of the remote component a modelled child belongs to (its nearest ancestor that is not modelled)."""
    by_urn = {r.urn: r for r in modelled}
    parent = str(child.parent)
    while parent in by_urn:
        parent = str(by_urn[parent].parent)
    return parent


class _CollectingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_program(program: Program, config: StackConfigFile, *, preview: bool = False) -> ProgramRun:
    """Run `program` under mocks with `config`; raise OfflineError or the program's own error.

    `preview=True` reproduces the mock runtime's preview mode, in which apply callbacks never run; it
    exists so that the check for that failure can itself be tested.
    """
    context = contextvars.Context()
    return context.run(_run_isolated, program, config, preview)


def _run_isolated(program: Program, config: StackConfigFile, preview: bool) -> ProgramRun:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    logger = logging.getLogger(f"offline-preview.{config.stack}")
    logger.propagate = False
    handler = _CollectingHandler()
    logger.handlers = [handler]
    region = config.values.get("aws:region", "us-east-1")
    mocks = PlausibleMocks(region)
    monitor = RecordingMonitor(mocks)
    set_all_config(dict(config.values), list(config.secret_keys))
    pulumi_mocks.set_mocks(
        mocks, project=program.project, stack=config.stack, preview=preview, logger=logger, monitor=monitor
    )

    added_path = str(program.root)
    sys.path.insert(0, added_path)
    try:

        def execute_program() -> None:
            runpy.run_path(str(program.main_dir), run_name="__main__")

        loop.run_until_complete(run_pulumi_func(execute_program))
        root = pulumi.runtime.settings.get_root_resource()
        outputs = loop.run_until_complete(_resolve_outputs(getattr(root, "outputs", {})))
    finally:
        sys.path.remove(added_path)
        loop.close()
        asyncio.set_event_loop(None)

    if monitor.model_errors:
        raise OfflineError(
            f"the children of these awsx components cannot be modelled (from {SOURCE}): awsx refuses their "
            "inputs, or the model does not cover them:\n" + "\n".join(monitor.model_errors)
        )
    unknown = [r.urn for r in monitor.registrations if _contains_unknown(json_format.MessageToDict(r.properties))]
    if unknown:
        raise OfflineError(
            "the mock runtime skipped apply callbacks (it does in preview mode for outputs a mock leaves out), "
            f"so inputs of {len(unknown)} resources are unknown, e.g. {unknown[0]}; run with preview=False"
        )
    return ProgramRun(
        project=program.project,
        stack=config.stack,
        registrations=monitor.registrations,
        outputs=outputs,
        warnings=handler.messages,
        modelled=monitor.modelled,
        unmodelled=monitor.unmodelled,
    )


async def _resolve_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for name, value in outputs.items():
        output = pulumi.Output.from_input(value)
        is_secret = await output.is_secret()
        plain = await output.future()
        resolved[name] = "[secret]" if is_secret else plain
    return resolved

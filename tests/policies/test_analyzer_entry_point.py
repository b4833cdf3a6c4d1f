"""The pack as the Pulumi CLI runs it: `python -u policies` starts a gRPC analyzer on 127.0.0.1 and prints its port."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policies.pack import POLICIES

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    process = subprocess.Popen(
        [sys.executable, "-u", "policies"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        assert line.isdigit(), (
            f"the pack printed {line!r}; stderr: {process.stderr.read().decode() if process.stderr else ''}"
        )
        with grpc.insecure_channel(f"127.0.0.1:{line}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=30)


def struct(values: dict) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def test_the_pack_describes_every_rule_with_schema_defaults(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "claude-code-monitoring-policies"
    assert [policy.name for policy in info.policies] == [policy.name for policy in POLICIES]
    by_name = {policy.name: policy for policy in info.policies}
    schema = json_format.MessageToDict(by_name["service-credentials-expire"].configSchema.properties)
    assert schema["maximumCredentialAgeDays"]["default"] == 90


def test_the_stacks_policy_config_reaches_the_rules(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    prod = json.loads((PROJECT_ROOT / "policies" / "config" / "prod.json").read_text())
    maximum = prod["service-credentials-expire"]["maximumCredentialAgeDays"]
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    request.policyConfig["service-credentials-expire"].CopyFrom(
        analyzer_pb2.PolicyConfig(
            enforcementLevel=analyzer_pb2.MANDATORY, properties=struct({"maximumCredentialAgeDays": maximum})
        )
    )
    analyzer.Configure(request)
    token = "aws:iam/serviceSpecificCredential:ServiceSpecificCredential"
    response = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type=token,
            name="team-a-key",
            urn=f"urn:pulumi:prod::p::{token}::team-a-key",
            properties=struct({"serviceName": "cloudwatch.amazonaws.com", "credentialAgeDays": float(maximum + 1)}),
        )
    )
    (diagnostic,) = response.diagnostics
    assert diagnostic.policyName == "service-credentials-expire"
    assert diagnostic.enforcementLevel == analyzer_pb2.MANDATORY
    assert f"more than the allowed {maximum} days" in diagnostic.message

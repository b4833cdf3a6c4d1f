"""Collector under mocks: every property the issue names, read from the resource inputs as `pulumi up` sends them."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.collector import (
    DEFAULT_COLLECTOR_IMAGE,
    TLS_POLICY,
    CollectorArgs,
    IdentityArgs,
    InvalidCollectorArgs,
)
from components.collector_config import OTLP_GRPC_PORT, CollectorPipelineSettings, render_collector_config
from offline.engine import Registration
from offline.preview import PROJECT_ROOT, PreviewResult, Target, preview

PROJECT = "claude-code-monitoring"


def of_type(result: PreviewResult, token: str) -> list[Registration]:
    """The Collector's resources of this type (other components of the stack are not under test here)."""
    return [r for r in result.run.registrations if r.type == token and "index:Collector$" in r.urn]


def one(result: PreviewResult, token: str, name: str | None = None) -> dict[str, Any]:
    found = [r for r in of_type(result, token) if name is None or r.name == name]
    assert len(found) == 1, [r.name for r in of_type(result, token)]
    return found[0].inputs()


def container(result: PreviewResult) -> dict[str, Any]:
    (definition,) = json.loads(one(result, "aws:ecs/taskDefinition:TaskDefinition")["containerDefinitions"])
    return definition


def rendered_config(result: PreviewResult) -> dict[str, Any]:
    (variable,) = container(result)["environment"]
    return yaml.safe_load(variable["value"])


def preview_prod_with(tmp_path: Path, **collector: Any) -> PreviewResult:
    """Pulumi.prod.yaml with some collector keys replaced, previewed by the real program."""
    document = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())
    section = copy.deepcopy(document["config"][f"{PROJECT}:collector"])
    section.update(collector)
    document["config"][f"{PROJECT}:collector"] = section
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    return preview(Target(PROJECT_ROOT, stack_file, tmp_path / "out", None))


# Network ---------------------------------------------------------------------------------------------


def test_new_vpc_has_a_nat_gateway_per_zone_in_prod_and_one_in_dev(
    prod_preview: PreviewResult, dev_preview: PreviewResult
) -> None:
    prod_vpc = one(prod_preview, "awsx:ec2:Vpc")
    assert prod_vpc["natGateways"] == {"strategy": "OnePerAz"}
    assert prod_vpc["numberOfAvailabilityZones"] == 3
    assert {spec["type"] for spec in prod_vpc["subnetSpecs"]} == {"Public", "Private"}
    assert one(dev_preview, "awsx:ec2:Vpc")["natGateways"] == {"strategy": "Single"}


EXISTING_SUBNETS = {
    "vpcId": "vpc-0abc1234567890def",
    "privateSubnetIds": ["subnet-0aaa1111111111111", "subnet-0bbb2222222222222"],
    "publicSubnetIds": ["subnet-0ccc3333333333333", "subnet-0ddd4444444444444"],
}


def test_existing_vpc_is_used_as_given(tmp_path: Path) -> None:
    result = preview_prod_with(tmp_path, network=EXISTING_SUBNETS)
    assert of_type(result, "awsx:ec2:Vpc") == []
    service = one(result, "aws:ecs/service:Service")
    assert service["networkConfiguration"]["subnets"] == EXISTING_SUBNETS["privateSubnetIds"]
    assert one(result, "aws:lb/loadBalancer:LoadBalancer")["subnets"] == EXISTING_SUBNETS["publicSubnetIds"]
    assert {r.inputs()["vpcId"] for r in of_type(result, "aws:ec2/securityGroup:SecurityGroup")} == {
        EXISTING_SUBNETS["vpcId"]
    }


def test_existing_subnets_in_one_zone_fail_with_the_subnets_named(tmp_path: Path) -> None:
    same_zone = {**EXISTING_SUBNETS, "privateSubnetIds": ["subnet-0aaa1111111111111", "subnet-0aaa1111111111111"]}
    with pytest.raises(InvalidCollectorArgs) as failure:
        preview_prod_with(tmp_path, network=same_zone)
    assert "network.private_subnet_ids needs subnets in at least 2 availability zones" in str(failure.value)
    assert "subnet-0aaa1111111111111" in str(failure.value)


# Cluster, tasks, service, autoscaling ------------------------------------------------------------------


def test_container_insights_on_in_prod_off_in_dev(prod_preview: PreviewResult, dev_preview: PreviewResult) -> None:
    assert one(prod_preview, "aws:ecs/cluster:Cluster")["settings"] == [
        {"name": "containerInsights", "value": "enabled"}
    ]
    assert one(dev_preview, "aws:ecs/cluster:Cluster")["settings"] == [
        {"name": "containerInsights", "value": "disabled"}
    ]


def test_service_runs_in_private_subnets_without_public_ips_and_rolls_back(prod_preview: PreviewResult) -> None:
    service = one(prod_preview, "aws:ecs/service:Service")
    (vpc,) = of_type(prod_preview, "awsx:ec2:Vpc")
    assert service["launchType"] == "FARGATE"
    assert service["networkConfiguration"]["assignPublicIp"] is False
    assert service["networkConfiguration"]["subnets"] == vpc.outputs()["privateSubnetIds"]
    assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service["desiredCount"] == 2
    (registration,) = of_type(prod_preview, "aws:ecs/service:Service")
    assert registration.ignore_changes == ["desiredCount"]  # autoscaling owns the count after creation


def test_task_definition_pins_the_image_and_carries_the_configuration(prod_preview: PreviewResult) -> None:
    task = one(prod_preview, "aws:ecs/taskDefinition:TaskDefinition")
    assert (task["cpu"], task["memory"]) == ("1024", "2048")
    assert task["requiresCompatibilities"] == ["FARGATE"] and task["networkMode"] == "awsvpc"
    assert task["runtimePlatform"] == {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"}
    definition = container(prod_preview)
    assert definition["image"] == DEFAULT_COLLECTOR_IMAGE
    assert definition["command"] == ["--config=env:OTELCOL_CONFIG"]
    assert definition["readonlyRootFilesystem"] is True
    assert rendered_config(prod_preview) == render_collector_config(
        CollectorPipelineSettings(
            region="eu-west-1",
            environment="prod",
            metrics_namespace="ClaudeCode",
            metrics_log_group="/ccm-prod-collector/metrics",
            events_log_group="/ccm-prod-collector/events",
            identity_mode="jwt",
        )
    )


def test_a_configuration_change_changes_the_task_definition(prod_preview: PreviewResult, tmp_path: Path) -> None:
    """ECS starts new tasks when the task definition changes: the configuration is part of it."""
    changed = preview_prod_with(tmp_path, metricsNamespace="ClaudeCode/Prod")
    before = one(prod_preview, "aws:ecs/taskDefinition:TaskDefinition")["containerDefinitions"]
    after = one(changed, "aws:ecs/taskDefinition:TaskDefinition")["containerDefinitions"]
    assert before != after
    assert rendered_config(changed)["exporters"]["awsemf"]["namespace"] == "ClaudeCode/Prod"


def test_autoscaling_on_cpu_and_requests_per_target_within_configured_bounds(prod_preview: PreviewResult) -> None:
    target = one(prod_preview, "aws:appautoscaling/target:Target")
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 6)
    assert target["scalableDimension"] == "ecs:service:DesiredCount"
    policies = {
        p.inputs()["targetTrackingScalingPolicyConfiguration"]["predefinedMetricSpecification"][
            "predefinedMetricType"
        ]: p.inputs()["targetTrackingScalingPolicyConfiguration"]
        for p in of_type(prod_preview, "aws:appautoscaling/policy:Policy")
    }
    assert set(policies) == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}
    assert policies["ECSServiceAverageCPUUtilization"]["targetValue"] == 60
    label = policies["ALBRequestCountPerTarget"]["predefinedMetricSpecification"]["resourceLabel"]
    assert label.startswith("app/") and "/targetgroup/" in label


# Load balancer ------------------------------------------------------------------------------------------


def listeners(result: PreviewResult) -> dict[int, dict[str, Any]]:
    return {int(r.inputs()["port"]): r.inputs() for r in of_type(result, "aws:lb/listener:Listener")}


def test_https_listener_validates_the_token_before_forwarding_in_prod(prod_preview: PreviewResult) -> None:
    https = listeners(prod_preview)[443]
    assert https["protocol"] == "HTTPS" and https["sslPolicy"] == TLS_POLICY
    validate, forward = sorted(https["defaultActions"], key=lambda action: action["order"])
    assert validate["type"] == "jwt-validation"
    assert validate["jwtValidation"] == {
        "issuer": "https://login.example.com/oauth2/default",
        "jwksEndpoint": "https://login.example.com/oauth2/default/v1/keys",
        "additionalClaims": [{"name": "aud", "format": "single-string", "values": ["claude-code-telemetry"]}],
    }
    assert forward["type"] == "forward"


def test_dev_without_identity_provider_forwards_directly(dev_preview: PreviewResult) -> None:
    (action,) = listeners(dev_preview)[443]["defaultActions"]
    assert action["type"] == "forward"


@pytest.mark.parametrize("fixture", ["dev_preview", "prod_preview"])
def test_port_80_only_redirects_to_https(fixture: str, request: pytest.FixtureRequest) -> None:
    (action,) = listeners(request.getfixturevalue(fixture))[80]["defaultActions"]
    assert action == {"type": "redirect", "redirect": {"port": "443", "protocol": "HTTPS", "statusCode": "HTTP_301"}}


def test_load_balancer_settings(prod_preview: PreviewResult, dev_preview: PreviewResult) -> None:
    prod = one(prod_preview, "aws:lb/loadBalancer:LoadBalancer")
    assert prod["internal"] is False
    assert prod["idleTimeout"] == 300
    assert prod["dropInvalidHeaderFields"] is True
    assert prod["accessLogs"]["enabled"] is True and prod["accessLogs"]["bucket"]
    assert "accessLogs" not in one(dev_preview, "aws:lb/loadBalancer:LoadBalancer")


def test_health_check_targets_the_collector_health_endpoint(prod_preview: PreviewResult) -> None:
    health = one(prod_preview, "aws:lb/targetGroup:TargetGroup")["healthCheck"]
    assert (health["port"], health["path"], health["matcher"]) == ("13133", "/", "200")


def test_certificate_is_validated_through_the_zone_and_named_by_the_alias(prod_preview: PreviewResult) -> None:
    certificate = one(prod_preview, "aws:acm/certificate:Certificate")
    assert certificate == {**certificate, "domainName": "otel.example.com", "validationMethod": "DNS"}
    records = {r.name: r.inputs() for r in of_type(prod_preview, "aws:route53/record:Record")}
    validation = records["ccm-prod-collector-certificate-validation"]
    assert validation["zoneId"] == "Z0123456789PRODEXAMPLE" and validation["type"] == "CNAME"
    alias = records["ccm-prod-collector-alias"]
    assert (alias["name"], alias["type"]) == ("otel.example.com", "A")
    assert alias["aliases"][0]["name"].endswith(".elb.amazonaws.com")
    assert one(prod_preview, "aws:acm/certificateValidation:CertificateValidation")["validationRecordFqdns"]


def test_a_given_certificate_is_used_instead_of_a_new_one(tmp_path: Path) -> None:
    arn = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-0a1b-4c3d-8e9f-0a1b2c3d4e5f"
    result = preview_prod_with(tmp_path, certificateArn=arn, hostedZoneId=None)
    assert of_type(result, "aws:acm/certificate:Certificate") == []
    assert of_type(result, "aws:route53/record:Record") == []
    assert listeners(result)[443]["certificateArn"] == arn


def test_access_log_bucket_is_private_encrypted_and_tls_only(prod_preview: PreviewResult) -> None:
    block = one(prod_preview, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(block[key] is True for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls"))
    encryption = one(
        prod_preview, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    assert encryption["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    policy = json.loads(one(prod_preview, "aws:s3/bucketPolicy:BucketPolicy")["policy"])
    writers = {s["Sid"]: s["Principal"] for s in policy["Statement"] if s["Effect"] == "Allow"}
    assert writers == {
        "LoadBalancerWritesAccessLogs": {"AWS": "arn:aws:iam::156460612806:root"},
        "LogDeliveryWritesAccessLogs": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
    }
    deny = next(s for s in policy["Statement"] if s["Effect"] == "Deny")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_grpc_only_when_enabled(prod_preview: PreviewResult, tmp_path: Path) -> None:
    assert "grpc" not in rendered_config(prod_preview)["receivers"]["otlp"]["protocols"]
    result = preview_prod_with(tmp_path, grpc=True)
    assert rendered_config(result)["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == f"0.0.0.0:{OTLP_GRPC_PORT}"
    groups = {r.inputs()["port"]: r.inputs() for r in of_type(result, "aws:lb/targetGroup:TargetGroup")}
    assert groups[OTLP_GRPC_PORT]["protocolVersion"] == "GRPC"
    rule = one(result, "aws:lb/listenerRule:ListenerRule")
    assert [action["type"] for action in sorted(rule["actions"], key=lambda a: a["order"])] == [
        "jwt-validation",
        "forward",
    ]


# Security groups -----------------------------------------------------------------------------------------


def rules(result: PreviewResult, token: str) -> list[dict[str, Any]]:
    return [r.inputs() for r in of_type(result, token)]


def group_id(result: PreviewResult, name: str) -> str:
    (group,) = [r for r in of_type(result, "aws:ec2/securityGroup:SecurityGroup") if r.name == name]
    return group.resource_id


def test_load_balancer_takes_443_and_80_from_configured_networks_only(prod_preview: PreviewResult) -> None:
    lb_group = group_id(prod_preview, "ccm-prod-collector-lb-sg")
    ingress = [r for r in rules(prod_preview, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
               if r["securityGroupId"] == lb_group]  # fmt: skip
    assert sorted((r["fromPort"], r["toPort"], r["cidrIpv4"]) for r in ingress) == [
        (80, 80, "0.0.0.0/0"),
        (443, 443, "0.0.0.0/0"),
    ]


def test_tasks_take_only_collector_ports_from_the_load_balancer(prod_preview: PreviewResult) -> None:
    lb_group = group_id(prod_preview, "ccm-prod-collector-lb-sg")
    task_group = group_id(prod_preview, "ccm-prod-collector-task-sg")
    ingress = [r for r in rules(prod_preview, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
               if r["securityGroupId"] == task_group]  # fmt: skip
    assert sorted(r["fromPort"] for r in ingress) == [4318, 13133]
    assert all(r["referencedSecurityGroupId"] == lb_group and "cidrIpv4" not in r for r in ingress)
    egress = [r for r in rules(prod_preview, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
              if r["securityGroupId"] == task_group]  # fmt: skip
    assert [(r["fromPort"], r["toPort"]) for r in egress] == [(443, 443)]


# Logs and IAM --------------------------------------------------------------------------------------------


def test_log_groups_with_configured_retention(prod_preview: PreviewResult) -> None:
    groups = {
        r.inputs()["name"]: r.inputs()["retentionInDays"]
        for r in of_type(prod_preview, "aws:cloudwatch/logGroup:LogGroup")
        if r.inputs()["name"].startswith("/ccm-prod-collector/")
    }
    assert groups == {
        "/ccm-prod-collector/metrics": 90,
        "/ccm-prod-collector/events": 90,
        "/ccm-prod-collector/collector": 90,
    }
    assert prod_preview.run.outputs["collectorLogGroups"] == {
        "metrics": "/ccm-prod-collector/metrics",
        "events": "/ccm-prod-collector/events",
        "collector": "/ccm-prod-collector/collector",
    }


def role_policies(result: PreviewResult) -> dict[str, dict[str, Any]]:
    return {r.name: json.loads(r.inputs()["policy"]) for r in of_type(result, "aws:iam/rolePolicy:RolePolicy")}


def test_task_role_writes_only_its_two_log_groups(prod_preview: PreviewResult) -> None:
    (statement,) = role_policies(prod_preview)["ccm-prod-collector-task"]["Statement"]
    assert sorted(statement["Action"]) == ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    assert sorted(statement["Resource"]) == sorted(
        f"arn:aws:logs:eu-west-1:123456789012:log-group:/ccm-prod-collector/{kind}{suffix}"
        for kind in ("metrics", "events")
        for suffix in ("", ":log-stream:*")
    )


def test_execution_role_writes_only_the_container_log_group(prod_preview: PreviewResult) -> None:
    (statement,) = role_policies(prod_preview)["ccm-prod-collector-execution"]["Statement"]
    assert sorted(statement["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert all("/ccm-prod-collector/collector" in resource for resource in statement["Resource"])


def test_roles_trust_only_ecs_tasks_of_this_account(prod_preview: PreviewResult) -> None:
    for role in of_type(prod_preview, "aws:iam/role:Role"):
        (statement,) = json.loads(role.inputs()["assumeRolePolicy"])["Statement"]
        assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


# Alarms, managed settings, outputs ----------------------------------------------------------------------------


def test_alarms_go_to_the_operations_topic(prod_preview: PreviewResult) -> None:
    alarms = {
        r.name.removeprefix("ccm-prod-collector-"): r.inputs()
        for r in of_type(prod_preview, "aws:cloudwatch/metricAlarm:MetricAlarm")
    }
    assert set(alarms) == {"no-healthy-targets", "lb-5xx", "target-5xx", "response-time", "cpu-high", "memory-high"}
    topic = prod_preview.run.outputs["operationsTopicArn"]
    assert all(alarm["alarmActions"] == [topic] for alarm in alarms.values())
    assert alarms["no-healthy-targets"]["metricName"] == "HealthyHostCount"
    assert alarms["no-healthy-targets"]["treatMissingData"] == "breaching"
    assert alarms["memory-high"]["namespace"] == "AWS/ECS"


def test_managed_settings_are_stored_and_exported(prod_preview: PreviewResult) -> None:
    parameter = one(prod_preview, "aws:ssm/parameter:Parameter")
    settings = json.loads(parameter["insecureValue"])
    assert parameter["name"] == "/ccm-prod-collector/claude-code/managed-settings"
    assert settings == prod_preview.run.outputs["managedSettings"]
    assert settings["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://otel.example.com"
    assert settings["env"]["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert settings["otelHeadersHelper"] == "/usr/local/bin/claude-otel-token"
    assert prod_preview.run.outputs["collectorEndpoint"] == "https://otel.example.com"
    assert prod_preview.run.outputs["collectorLoadBalancerDnsName"].endswith(".elb.amazonaws.com")


def test_managed_settings_carry_the_token_helpers_settings_from_the_identity(
    prod_preview: PreviewResult, dev_preview: PreviewResult
) -> None:
    """With jwt, the env block holds what scripts/claude-otel-token needs, from collector.identity: the issuer and
    audience the load balancer checks, and the claim names the collector reads. Without token checks, none."""
    identity = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())["config"][f"{PROJECT}:collector"][
        "identity"
    ]
    env = prod_preview.run.outputs["managedSettings"]["env"]
    assert {key: value for key, value in env.items() if key.startswith("CLAUDE_OTEL_")} == {
        "CLAUDE_OTEL_ISSUER": identity["issuer"],
        "CLAUDE_OTEL_CLIENT_ID": identity["clientId"],
        "CLAUDE_OTEL_SCOPES": "openid offline_access",
        "CLAUDE_OTEL_AUDIENCE": identity["audience"],
        "CLAUDE_OTEL_TOKEN": "access_token",
        "CLAUDE_OTEL_REQUIRED_CLAIMS": ",".join(
            identity["claims"][key] for key in ("email", "userId", "department", "team", "costCenter")
        ),
        "CLAUDE_OTEL_FLOW": "auto",
    }
    dev_env = dev_preview.run.outputs["managedSettings"]["env"]
    assert not [key for key in dev_env if key.startswith("CLAUDE_OTEL_")]


def test_the_token_helper_needs_nothing_but_the_rendered_settings(prod_preview: PreviewResult, tmp_path: Path) -> None:
    """scripts/claude-otel-token run as Claude Code runs it (the env block merged into its environment), and as
    `login` runs in a terminal (the settings file only): every setting it requires is there and valid, so it
    asks for the one-time sign-in instead of naming a missing or invalid variable (exit 2)."""
    settings = prod_preview.run.outputs["managedSettings"]
    settings_file = tmp_path / "managed-settings.json"
    settings_file.write_text(json.dumps(settings))
    machine = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "LANG": "C.UTF-8",
    }
    for env in (
        {**machine, **settings["env"], "CLAUDE_OTEL_MANAGED_SETTINGS": str(tmp_path / "none.json")},
        {**machine, "CLAUDE_OTEL_MANAGED_SETTINGS": str(settings_file)},
    ):
        helper = subprocess.run(
            [sys.executable, str(PROJECT_ROOT / "scripts" / "claude-otel-token")],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (helper.returncode, helper.stdout) == (3, ""), helper.stderr
        assert helper.stderr.startswith("claude-otel-token: not signed in: run `claude-otel-token login`")


def test_preview_writes_the_collector_configuration_and_settings(prod_preview: PreviewResult) -> None:
    names = {path.name for path in prod_preview.artifacts}
    assert "collector-ccm-prod-collector-task.yaml" in names
    written = next(path for path in prod_preview.artifacts if path.name == "collector-ccm-prod-collector-task.yaml")
    assert yaml.safe_load(written.read_text()) == rendered_config(prod_preview)
    assert "ssm--ccm-prod-collector-claude-code-managed-settings.json" in names


def test_arguments_from_other_programs_are_checked_too() -> None:
    """The component refuses what the stack schema refuses, for programs that use it without infra/config.py."""
    args = CollectorArgs(
        region="eu-west-1",
        environment="test",
        domain_name="otel.example.com",
        identity=IdentityArgs(mode="jwt", issuer="http://idp.example.com", jwks_uri=None, audience=None),
        image="otel/opentelemetry-collector-contrib:latest",
        min_count=3,
        desired_count=2,
        idle_timeout_seconds=60,
    )
    assert args.problems() == [
        "image must be pinned (repository:<version> or repository@sha256:<digest>), "
        "got 'otel/opentelemetry-collector-contrib:latest'",
        "min_count <= desired_count <= max_count is required, got 3 <= 2 <= 4",
        "certificate_arn, or hosted_zone_id to validate a new certificate, is required for HTTPS",
        "identity.issuer must be an https:// URL when mode is jwt, got 'http://idp.example.com'",
        "identity.jwks_uri must be an https:// URL when mode is jwt, got None",
        "identity.audience is required when mode is jwt",
        "identity.client_id is required when mode is jwt: the token helper's public client (CLAUDE_OTEL_CLIENT_ID "
        "in the managed settings)",
        "idle_timeout_seconds must be from 61 to 4000, got 60",
    ]


def test_load_balancer_waits_for_the_access_log_bucket_policy(prod_preview: PreviewResult) -> None:
    (policy,) = of_type(prod_preview, "aws:s3/bucketPolicy:BucketPolicy")
    (load_balancer,) = of_type(prod_preview, "aws:lb/loadBalancer:LoadBalancer")
    assert policy.urn in load_balancer.dependencies

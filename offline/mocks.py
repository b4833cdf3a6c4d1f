"""Mocks that answer like AWS would: ARNs, ids, names and DNS names per resource type, so every `apply` runs.

Outputs are the resource's inputs (as a provider echoes them) plus the computed attributes a program reads.
Values are deterministic: the same program gives the same plan.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pulumi

from offline.awsx import MODELS, ModelError

ACCOUNT_ID = "123456789012"

# The ARN's service segment where it differs from the provider module name.
_ARN_SERVICE = {
    "lb": "elasticloadbalancing",
    "alb": "elasticloadbalancing",
    "kinesis": "firehose",
    "cloudwatchlogs": "logs",
    "appautoscaling": "application-autoscaling",
}


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class PlausibleMocks(pulumi.runtime.Mocks):
    """Pulumi mocks for pulumi-aws and pulumi-awsx resources and invokes."""

    def __init__(self, region: str) -> None:
        self.region = region

    def availability_zones(self) -> list[str]:
        """The zones `getAvailabilityZones` answers with (awsx takes the first `numberOfAvailabilityZones`)."""
        return [f"{self.region}{letter}" for letter in "abc"]

    # Resources -------------------------------------------------------------------------------------

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        token = args.typ
        unique = _digest(f"{token}::{args.name}", 17)
        state: dict[str, Any] = dict(args.inputs)
        physical = args.inputs.get("name") or f"{args.name}-{unique[:7]}"
        package, module, kind = _split_token(token)

        if package == "awsx":
            # A component's outputs are not its inputs (awsx Vpc takes a NAT strategy, returns NAT gateways).
            return f"{args.name}-{unique[:8]}", self._awsx_outputs(token, args.name, dict(args.inputs), unique)

        resource_id, computed = self._computed(token, module, kind, args, physical, unique)
        return resource_id, {**state, **computed}

    def _arn(self, module: str, resource: str, regional: bool = True) -> str:
        service = _ARN_SERVICE.get(module, module)
        region = self.region if regional else ""
        return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"

    def _computed(
        self, token: str, module: str, kind: str, args: pulumi.runtime.MockResourceArgs, physical: str, unique: str
    ) -> tuple[str, dict[str, Any]]:
        inputs = args.inputs
        short = unique[:8]
        if token == "aws:kms/key:Key":
            key_id = f"{unique[:8]}-{unique[8:12]}-4{unique[12:15]}-a{unique[:3]}-{unique[3:15]}"
            return key_id, {"keyId": key_id, "arn": self._arn("kms", f"key/{key_id}")}
        if token == "aws:kms/alias:Alias":
            return physical, {"arn": self._arn("kms", physical), "targetKeyArn": self._arn("kms", "key/x")}
        if token == "aws:sns/topic:Topic":
            arn = self._arn("sns", physical)
            return arn, {"name": physical, "arn": arn}
        if token == "aws:sns/topicSubscription:TopicSubscription":
            arn = f"{inputs.get('topic', self._arn('sns', 'topic'))}:{unique[:8]}-{unique[8:12]}"
            return arn, {"arn": arn}
        if module in ("lb", "alb") and kind in ("LoadBalancer",):
            arn = self._arn(module, f"loadbalancer/app/{physical[:32]}/{unique[:16]}")
            return arn, {
                "arn": arn,
                "arnSuffix": arn.split(":loadbalancer/")[1],
                "name": physical[:32],
                "dnsName": f"{physical[:32]}-{int(unique[:8], 16) % 10**9}.{self.region}.elb.amazonaws.com",
                "zoneId": "Z32O12XQLNTSW2",
            }
        if module in ("lb", "alb") and kind == "TargetGroup":
            arn = self._arn(module, f"targetgroup/{physical[:32]}/{unique[:16]}")
            return arn, {"arn": arn, "arnSuffix": arn.split(":", 5)[5], "name": physical[:32]}
        if module in ("lb", "alb") and kind in ("Listener", "ListenerRule"):
            arn = self._arn(module, f"listener/app/lb/{unique[:16]}/{unique[:16]}")
            return arn, {"arn": arn}
        if token == "aws:iam/role:Role":
            return physical, {
                "name": physical,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{physical}",
                "uniqueId": f"AROA{unique.upper()}",
            }
        if token == "aws:iam/user:User":
            return physical, {
                "name": physical,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user{inputs.get('path', '/')}{physical}",
                "uniqueId": f"AIDA{unique.upper()}",
            }
        if token == "aws:iam/policy:Policy":
            arn = f"arn:aws:iam::{ACCOUNT_ID}:policy/{physical}"
            return arn, {"name": physical, "arn": arn}
        if token == "aws:iam/serviceSpecificCredential:ServiceSpecificCredential":
            credential_id = f"ACCA{unique.upper()}"
            return credential_id, {
                "serviceSpecificCredentialId": credential_id,
                "status": "Active",
                "serviceUserName": f"{inputs.get('userName', 'user')}-at-{ACCOUNT_ID}",
                "servicePassword": f"offline-{unique}",
                "serviceCredentialSecret": f"offline-{unique}",
            }
        if token == "aws:cloudwatch/logGroup:LogGroup":
            return physical, {"name": physical, "arn": self._arn("logs", f"log-group:{physical}")}
        if token == "aws:cloudwatch/dashboard:Dashboard":
            name = inputs.get("dashboardName", physical)
            return name, {"dashboardArn": f"arn:aws:cloudwatch::{ACCOUNT_ID}:dashboard/{name}"}
        if token == "aws:cloudwatch/metricAlarm:MetricAlarm":
            return physical, {"name": physical, "arn": self._arn("cloudwatch", f"alarm:{physical}")}
        if token == "aws:lambda/function:Function":
            arn = self._arn("lambda", f"function:{physical}")
            return physical, {
                "name": physical,
                "arn": arn,
                "qualifiedArn": f"{arn}:$LATEST",
                "version": "$LATEST",
                "invokeArn": f"arn:aws:apigateway:{self.region}:lambda:path/2015-03-31/functions/{arn}/invocations",
            }
        if token == "aws:dynamodb/table:Table":
            arn = self._arn("dynamodb", f"table/{physical}")
            return physical, {"name": physical, "arn": arn, "streamArn": f"{arn}/stream/2026-01-01T00:00:00.000"}
        if token in ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"):
            bucket = inputs.get("bucket") or physical.lower()
            return bucket, {
                "bucket": bucket,
                "arn": f"arn:aws:s3:::{bucket}",
                "bucketDomainName": f"{bucket}.s3.amazonaws.com",
                "bucketRegionalDomainName": f"{bucket}.s3.{self.region}.amazonaws.com",
            }
        if token == "aws:ecs/cluster:Cluster":
            arn = self._arn("ecs", f"cluster/{physical}")
            return arn, {"name": physical, "arn": arn}
        if token == "aws:ecs/taskDefinition:TaskDefinition":
            family = inputs.get("family", physical)
            arn = self._arn("ecs", f"task-definition/{family}:1")
            return arn, {"arn": arn, "revision": 1, "arnWithoutRevision": arn.rsplit(":", 1)[0]}
        if token == "aws:ecs/service:Service":
            return self._arn("ecs", f"service/{physical}"), {"name": physical}
        if token == "aws:acm/certificate:Certificate":
            domain = inputs.get("domainName", "example.com")
            arn = self._arn(
                "acm", f"certificate/{unique[:8]}-{unique[8:12]}-4{unique[12:15]}-a{unique[:3]}-{unique[3:15]}"
            )
            return arn, {
                "arn": arn,
                "domainValidationOptions": [
                    {
                        "domainName": domain,
                        "resourceRecordName": f"_{short}.{domain}.",
                        "resourceRecordType": "CNAME",
                        "resourceRecordValue": f"_{short}.acm-validations.aws.",
                    }
                ],
            }
        if token == "aws:route53/record:Record":
            return f"{inputs.get('zoneId', 'Z')}_{inputs.get('name', physical)}", {"fqdn": inputs.get("name", physical)}
        if token == "aws:ec2/vpc:Vpc":
            return f"vpc-{unique}", {
                "arn": self._arn("ec2", f"vpc/vpc-{unique}"),
                "defaultSecurityGroupId": f"sg-{unique}",
            }
        if token == "aws:ec2/subnet:Subnet":
            return f"subnet-{unique}", {"arn": self._arn("ec2", f"subnet/subnet-{unique}")}
        if token == "aws:ec2/securityGroup:SecurityGroup":
            return f"sg-{unique}", {"arn": self._arn("ec2", f"security-group/sg-{unique}"), "name": physical}
        if token == "aws:secretsmanager/secret:Secret":
            arn = self._arn("secretsmanager", f"secret:{physical}-{unique[:6]}")
            return arn, {"arn": arn, "name": physical}
        if token == "aws:ssm/parameter:Parameter":
            name = inputs.get("name", f"/{physical}")
            return name, {"name": name, "arn": self._arn("ssm", f"parameter/{name.lstrip('/')}")}
        if token == "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream":
            arn = self._arn("firehose", f"deliverystream/{physical}")
            return arn, {"arn": arn, "name": physical}
        if token == "aws:cloudwatch/eventRule:EventRule":
            return physical, {"name": physical, "arn": self._arn("events", f"rule/{physical}")}
        if token == "aws:athena/workgroup:Workgroup":
            return physical, {"name": physical, "arn": self._arn("athena", f"workgroup/{physical}")}
        if token == "aws:glue/catalogDatabase:CatalogDatabase":
            return f"{ACCOUNT_ID}:{physical}", {"name": physical, "arn": self._arn("glue", f"database/{physical}")}
        if token == "aws:glue/catalogTable:CatalogTable":
            return f"{ACCOUNT_ID}:{physical}", {"name": physical, "arn": self._arn("glue", f"table/{physical}")}
        if token == "aws:sqs/queue:Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{physical}", {
                "name": physical,
                "arn": self._arn("sqs", physical),
                "url": f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{physical}",
            }
        generic_arn = self._arn(module, f"{kind[:1].lower()}{kind[1:]}/{physical}")
        return f"{physical}", {"arn": inputs.get("arn", generic_arn)}

    def _awsx_outputs(self, token: str, name: str, inputs: dict[str, Any], unique: str) -> dict[str, Any]:
        """awsx components are remote: under mocks they register once, without children. Their outputs are those of
        the children offline/awsx.py models (the same ids the preview shows for them)."""
        if token in MODELS:
            try:
                return MODELS[token](name, inputs, self.availability_zones()).outputs
            except ModelError:
                return {}  # the recording monitor reports the error, with the component's URN
        if token == "awsx:lb:ApplicationLoadBalancer":
            return {
                "loadBalancer": {
                    "dnsName": f"alb-{unique[:8]}.{self.region}.elb.amazonaws.com",
                    "arn": self._arn("lb", f"loadbalancer/app/alb/{unique[:16]}"),
                    "zoneId": "Z32O12XQLNTSW2",
                }
            }
        return {}

    # Invokes ---------------------------------------------------------------------------------------

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return self._invoke(args), []

    def _invoke(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        token = args.token
        zones = self.availability_zones()
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/offline-preview",
                "userId": "AIDAOFFLINEPREVIEW",
                "id": ACCOUNT_ID,
            }
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "reverseDnsPrefix": "com.amazonaws", "id": "aws"}
        if token == "aws:index/getRegion:getRegion":
            return {
                "name": self.region,
                "region": self.region,
                "id": self.region,
                "endpoint": f"ec2.{self.region}.amazonaws.com",
                "description": self.region,
            }
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"names": zones, "zoneIds": [f"euw1-az{i}" for i in (1, 2, 3)], "id": self.region}
        if token == "aws:ec2/getSubnet:getSubnet":
            subnet_id = args.args.get("id", "subnet-0")
            return {
                "id": subnet_id,
                "availabilityZone": zones[int(_digest(subnet_id, 2), 16) % 3],
                "vpcId": args.args.get("vpcId", "vpc-0"),
            }
        if token == "aws:route53/getZone:getZone":
            return {
                "zoneId": args.args.get("zoneId", "Z0OFFLINE"),
                "name": args.args.get("name", "example.com"),
                "id": args.args.get("zoneId", "Z0OFFLINE"),
            }
        if token == "aws:elb/getServiceAccount:getServiceAccount":
            # Elastic Load Balancing's own account in the region (eu-west-1's; others get a stand-in).
            account = {"eu-west-1": "156460612806"}.get(self.region, "000000000000")
            return {"arn": f"arn:aws:iam::{account}:root", "id": account}
        if token == "aws:iam/getPolicyDocument:getPolicyDocument":
            return {
                "json": json.dumps({"Version": "2012-10-17", "Statement": args.args.get("statements", [])}),
                "id": "policy",
            }
        return dict(args.args)


def _split_token(token: str) -> tuple[str, str, str]:
    """`aws:sns/topic:Topic` -> ("aws", "sns", "Topic"); `awsx:ec2:Vpc` -> ("awsx", "ec2", "Vpc")."""
    package, _, rest = token.partition(":")
    module, _, kind = rest.partition(":")
    return package, module.split("/")[0], kind

"""CI access for the monitoring stacks, applied once per AWS account by an administrator.

Creates the Pulumi state bucket (versioned, encrypted, TLS only, private) and a KMS key for Pulumi secrets,
GitHub's OIDC identity provider, and two roles the workflows assume with GitHub's OIDC token (no long-lived
keys):

- preview (`AWS_PREVIEW_ROLE_ARN`): pull requests of this repository only; read-only access to the account
  and read/write on the state bucket's lock files, so `pulumi preview` can refresh and lock.
- deploy (`AWS_DEPLOY_ROLE_ARN`): jobs of this repository's deploy environments only (`dev`, `production`:
  put required reviewers on `production`); PowerUserAccess for the services the stacks use, and IAM only for
  roles, users and policies whose names start with the stacks' prefix.

Its outputs are the repository variables the workflows read.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

GITHUB_OIDC_URL = "https://token.actions.githubusercontent.com"
GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STATE_PREFIX = "claude-code-monitoring"

config = pulumi.Config()
repository = config.require("repository")
state_bucket_name = config.require("stateBucket")
prefix = config.get("namePrefix") or "ccm"
environments = config.get_object("deployEnvironments") or ["dev", "production"]
account = aws.get_caller_identity().account_id
partition = aws.get_partition().partition


def github_trust(subjects: list[str]) -> str:
    """Only GitHub's OIDC tokens for this audience and these subjects may assume the role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": f"arn:{partition}:iam::{account}:oidc-provider/{GITHUB_OIDC_HOST}"},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com"},
                        "ForAnyValue:StringEquals": {f"{GITHUB_OIDC_HOST}:sub": subjects},
                    },
                }
            ],
        }
    )


# State and secrets ---------------------------------------------------------------------------------------
state = aws.s3.Bucket("state", bucket=state_bucket_name)
aws.s3.BucketVersioning("state", bucket=state.id, versioning_configuration={"status": "Enabled"})
aws.s3.BucketServerSideEncryptionConfiguration(
    "state", bucket=state.id, rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"}}]
)
aws.s3.BucketPublicAccessBlock(
    "state",
    bucket=state.id,
    block_public_acls=True,
    block_public_policy=True,
    ignore_public_acls=True,
    restrict_public_buckets=True,
)
aws.s3.BucketPolicy(
    "state",
    bucket=state.id,
    policy=state.arn.apply(
        lambda arn: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [arn, f"{arn}/*"],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            }
        )
    ),
)
secrets_key = aws.kms.Key(
    "pulumi-secrets", description="Pulumi secrets of the monitoring stacks", enable_key_rotation=True
)
aws.kms.Alias("pulumi-secrets", name="alias/pulumi-secrets", target_key_id=secrets_key.key_id)

# GitHub's OIDC provider ------------------------------------------------------------------------------------
aws.iam.OpenIdConnectProvider("github", url=GITHUB_OIDC_URL, client_id_lists=["sts.amazonaws.com"])


def state_statements(bucket_arn: str, key_arn: str, write: bool) -> list[dict[str, object]]:
    objects = f"{bucket_arn}/{STATE_PREFIX}/*" if write else f"{bucket_arn}/{STATE_PREFIX}/.pulumi/locks/*"
    return [
        {"Sid": "ListState", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
        {"Sid": "ReadState", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{bucket_arn}/{STATE_PREFIX}/*"},
        {"Sid": "WriteState", "Effect": "Allow", "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": objects},
        {
            "Sid": "Secrets",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": key_arn,
        },
    ]


# Preview: pull requests, read-only -------------------------------------------------------------------------
preview = aws.iam.Role(
    "preview",
    description="pulumi preview on pull requests (read-only)",
    assume_role_policy=github_trust([f"repo:{repository}:pull_request"]),
    max_session_duration=3600,
)
aws.iam.RolePolicyAttachment(
    "preview-read-only", role=preview.name, policy_arn=f"arn:{partition}:iam::aws:policy/ReadOnlyAccess"
)
aws.iam.RolePolicy(
    "preview-state",
    role=preview.id,
    policy=pulumi.Output.all(state.arn, secrets_key.arn).apply(
        lambda args: json.dumps({"Version": "2012-10-17", "Statement": state_statements(args[0], args[1], False)})
    ),
)

# Deploy: the deploy workflow's environments ----------------------------------------------------------------
deploy = aws.iam.Role(
    "deploy",
    description="pulumi up from the deploy workflow's environments",
    assume_role_policy=github_trust([f"repo:{repository}:environment:{name}" for name in environments]),
    max_session_duration=3600,
)
aws.iam.RolePolicyAttachment(
    "deploy-services", role=deploy.name, policy_arn=f"arn:{partition}:iam::aws:policy/PowerUserAccess"
)
iam_resources = [
    f"arn:{partition}:iam::{account}:{kind}/{prefix}-*" for kind in ("role", "policy", "user/claude-code-ingest")
]
aws.iam.RolePolicy(
    "deploy-iam",
    role=deploy.id,
    policy=pulumi.Output.all(state.arn, secrets_key.arn).apply(
        lambda args: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    *state_statements(args[0], args[1], True),
                    {
                        "Sid": "StackIdentities",
                        "Effect": "Allow",
                        "Action": [
                            "iam:*Role*",
                            "iam:*Policy*",
                            "iam:*User*",
                            "iam:*ServiceSpecificCredential*",
                            "iam:PassRole",
                            "iam:TagRole",
                            "iam:TagUser",
                            "iam:TagPolicy",
                        ],
                        "Resource": iam_resources,
                    },
                    {
                        "Sid": "ServiceLinkedRoles",
                        "Effect": "Allow",
                        "Action": "iam:CreateServiceLinkedRole",
                        "Resource": f"arn:{partition}:iam::{account}:role/aws-service-role/*",
                    },
                ],
            }
        )
    ),
)

pulumi.export("PULUMI_BACKEND_URL", state.bucket.apply(lambda name: f"s3://{name}/{STATE_PREFIX}"))
pulumi.export("AWS_PREVIEW_ROLE_ARN", preview.arn)
pulumi.export("AWS_DEPLOY_ROLE_ARN", deploy.arn)
pulumi.export("secretsProvider", "awskms://alias/pulumi-secrets")

"""IAM documents more than one component needs."""

from __future__ import annotations

from typing import Any


def service_trust_policy(service: str, account_id: str) -> dict[str, Any]:
    """Trust `service` (e.g. `lambda.amazonaws.com`) to assume the role, on behalf of this account only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": service},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        ],
    }

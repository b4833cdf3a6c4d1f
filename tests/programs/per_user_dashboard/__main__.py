"""Violates dashboards-have-no-per-user-dimensions: a PromQL chart grouped by user."""

import json

import pulumi_aws as aws

query = 'sum by ("@resource.user.email") (increase(claude_code_token_usage[1h]))'
body = {
    "widgets": [
        {
            "type": "chart",
            "properties": {
                "title": "Tokens per developer",
                "region": "eu-west-1",
                "data": {
                    "queries": [{"type": "cloudwatch-metrics", "language": "PromQL", "query": query, "step": 300}]
                },
            },
        }
    ]
}
aws.cloudwatch.Dashboard("usage", dashboard_name="usage", dashboard_body=json.dumps(body))

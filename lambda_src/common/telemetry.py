"""What Claude Code sends, as the collector writes it to CloudWatch Logs, and how a record names its user.

Metrics log group: one EMF JSON object per log event (awsemf exporter). Metric values are numeric top-level
fields named after the metric; every attribute, resource attributes included, is a string field beside them;
`_aws.Timestamp` is the data point's time in milliseconds and `_aws.CloudWatchMetrics[].Metrics[]` names the
metrics with their unit. A metric no declaration names still appears, without `_aws`.

Events log group: one JSON object per log record (awscloudwatchlogs exporter, raw_log false) with `body`,
`severity_text`, `attributes` (the event's, `event.name` and `event.timestamp` included) and `resource`.

A record's user is its `user.email`; without one, its `user.id`; without that, its `user.account_uuid`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

USER_EMAIL, USER_ID, ACCOUNT_UUID = "user.email", "user.id", "user.account_uuid"
USER_ATTRIBUTION_ORDER = (USER_EMAIL, USER_ID, ACCOUNT_UUID)

METRIC_NAMES = (
    "claude_code.session.count",
    "claude_code.lines_of_code.count",
    "claude_code.pull_request.count",
    "claude_code.commit.count",
    "claude_code.cost.usage",
    "claude_code.token.usage",
    "claude_code.code_edit_tool.decision",
    "claude_code.active_time.total",
)
EVENT_NAMES = ("user_prompt", "tool_result", "api_request", "api_error", "tool_decision")


def user_key(attributes: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(who, which attribute said so): the first non-empty of user.email, user.id, user.account_uuid."""
    for name in USER_ATTRIBUTION_ORDER:
        value = attributes.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip(), name
    return None, None

"""Operational alarms of the form most components need: a metric above a threshold pages the operations topic
(and tells it when the metric is back to normal)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class Alarm:
    """An alarm when `statistic` of the metric over `period` seconds is above `threshold` for
    `evaluation_periods` periods in a row. No data is not a breach: an idle stack does not page."""

    suffix: str
    """Appended to the component's name to name the alarm."""
    description: str
    """What it means for the user and where to look."""
    namespace: str
    metric_name: str
    dimensions: Mapping[str, pulumi.Input[str]]
    statistic: str = "Sum"
    threshold: float = 0
    period: int = 300
    evaluation_periods: int = 1


def raise_alarms(
    name: str,
    alarms: Iterable[Alarm],
    topic_arn: pulumi.Input[str],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
) -> list[aws.cloudwatch.MetricAlarm]:
    return [
        aws.cloudwatch.MetricAlarm(
            f"{name}-{alarm.suffix}",
            alarm_description=alarm.description,
            namespace=alarm.namespace,
            metric_name=alarm.metric_name,
            dimensions=dict(alarm.dimensions),
            statistic=alarm.statistic,
            period=alarm.period,
            evaluation_periods=alarm.evaluation_periods,
            threshold=alarm.threshold,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
            tags=dict(tags),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for alarm in alarms
    ]

"""Settings of a rendered collector configuration for tests: the prod stack's shape, in either identity mode."""

from __future__ import annotations

from typing import Any

from components.collector_config import CollectorPipelineSettings


def settings_for(mode: str = "jwt", **overrides: Any) -> CollectorPipelineSettings:
    values: dict[str, Any] = {
        "region": "eu-west-1",
        "environment": "prod",
        "metrics_namespace": "ClaudeCode",
        "metrics_log_group": "/ccm-prod-collector/metrics",
        "events_log_group": "/ccm-prod-collector/events",
        "identity_mode": mode,
        **overrides,
    }
    return CollectorPipelineSettings(**values)
